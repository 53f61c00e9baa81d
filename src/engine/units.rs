//! Small value languages of the configuration: durations (`500ms`, `10s`, `1h30m`), rate
//! limits (`20/s`), and status code sets (`201`, `"200-299"`, `"2xx"`).

use std::fmt;
use std::time::Duration;

use crate::config::spec::CodeSpec;

/// Parses `500ms`, `10s`, `5m`, `2h`, `1d`, or several joined: `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: write a number and a unit (ms, s, m, h, d), e.g. 500ms, 10s, 5m, 2h, 1d"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = unit
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Writes a duration the way the configuration does: `1h30m`, `10s`, `500ms`.
pub fn show_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let mut secs = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    let ms = d.subsec_millis();
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

/// At most `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in each period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

/// Parses `20/s`, `100/m`, `1000/h`.
pub fn parse_rate(text: &str) -> Result<RateLimit, String> {
    let bad = || format!("invalid rate_limit {text:?}: write N/s, N/m or N/h, e.g. 20/s");
    let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(format!(
            "invalid rate_limit {text:?}: the count must be at least 1"
        ));
    }
    Ok(RateLimit { count, per })
}

/// A set of HTTP status codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSet(Vec<(u16, u16)>);

impl CodeSet {
    /// The set of the given ranges.
    pub fn new(ranges: Vec<(u16, u16)>) -> CodeSet {
        CodeSet(ranges)
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }

    /// Parses a list of codes; the error names the item (0-based) and what is wrong.
    pub fn parse(items: &[CodeSpec]) -> Result<CodeSet, (usize, String)> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_code(item).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(CodeSet)
    }
}

impl fmt::Display for CodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

fn parse_code(item: &CodeSpec) -> Result<(u16, u16), String> {
    let check = |code: i64| match u16::try_from(code) {
        Ok(code) if (100..=599).contains(&code) => Ok(code),
        _ => Err(format!("{code} is not an HTTP status (100-599)")),
    };
    match item {
        CodeSpec::Code(code) => check(*code).map(|c| (c, c)),
        CodeSpec::Text(text) => {
            let t = text.trim();
            let bad = || format!("invalid status {text:?}: write 201, \"200-299\" or \"2xx\"");
            if let Some(class) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX")) {
                let d: u16 = class.parse().map_err(|_| bad())?;
                if !(1..=5).contains(&d) || class.len() != 1 {
                    return Err(bad());
                }
                return Ok((d * 100, d * 100 + 99));
            }
            if let Some((lo, hi)) = t.split_once('-') {
                let lo = check(lo.trim().parse().map_err(|_| bad())?)?;
                let hi = check(hi.trim().parse().map_err(|_| bad())?)?;
                if lo > hi {
                    return Err(format!("invalid status range {text:?}: {lo} is above {hi}"));
                }
                return Ok((lo, hi));
            }
            check(t.parse().map_err(|_| bad())?).map(|c| (c, c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "10", "s", "10x", "1.5h", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1s500ms");
    }

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("20/s"),
            Ok(RateLimit {
                count: 20,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(parse_rate("100/m").unwrap().per, Duration::from_secs(60));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("20 per second").is_err());
    }

    #[test]
    fn code_sets() {
        let set = CodeSet::parse(&[
            CodeSpec::Code(201),
            CodeSpec::Text("2xx".into()),
            CodeSpec::Text("400-404".into()),
        ])
        .unwrap();
        assert!(set.contains(201) && set.contains(299) && set.contains(404));
        assert!(!set.contains(300) && !set.contains(405));
        assert_eq!(set.to_string(), "201, 200-299, 400-404");
        assert_eq!(
            CodeSet::parse(&[CodeSpec::Code(200), CodeSpec::Text("6xx".into())])
                .unwrap_err()
                .0,
            1
        );
        assert!(CodeSet::parse(&[CodeSpec::Text("299-200".into())]).is_err());
        assert!(CodeSet::parse(&[CodeSpec::Code(99)]).is_err());
    }
}
