//! `sample` on a workflow: fire for a fixed share of the matching events, chosen by a
//! stable hash of the workflow's name and the value of `sample_by`, so that the same
//! events are chosen on every run, on every node and by every version.
//!
//! The hash is 64-bit FNV-1a over the workflow's name, a zero byte and the value as text,
//! followed by MurmurHash3's 64-bit finaliser (FNV alone leaves the low bits of similar
//! values alike); the result maps to a bucket from 0 to 9 999 (hundredths of a percent).
//! An event is sampled when its bucket is below the share. Changing this changes which
//! events every configuration sends: it must not change.

use std::borrow::Cow;

use super::event::Event;
use super::field::FieldRef;
use super::value::{is_empty, text};

/// Buckets per 100%: shares have two decimals (`12.5%` is 1250 buckets).
pub const BUCKETS: u32 = 10_000;

/// A compiled `sample` with its `sample_by`.
#[derive(Debug)]
pub struct Sample {
    /// The share, in buckets (0 to [`BUCKETS`]).
    pub share: u32,
    /// `sample_by` as written (`@id` by default), for explanations.
    pub by_name: String,
    /// `sample_by`, compiled.
    pub by: FieldRef,
}

/// Reads `25%`, `12.5%`, `0.25%` as a number of buckets; 0% to 100%, two decimals at most.
pub fn parse_share(written: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "invalid sample {written:?}: write a percentage from 0% to 100% with at most two decimals, e.g. 25% or 12.5%"
        )
    };
    let number = written.trim().strip_suffix('%').ok_or_else(bad)?.trim();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 3
        || fraction.len() > 2
        || !digits(whole)
        || !digits(fraction)
    {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let fraction: u32 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    let share = whole * 100 + fraction;
    if share > BUCKETS {
        return Err(bad());
    }
    Ok(share)
}

/// A share in buckets as a percentage: `25`, `12.5`, `0.25`.
pub fn show_share(buckets: u32) -> String {
    let text = format!("{}.{:02}", buckets / 100, buckets % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The bucket (0 to 9 999) of `value` for `workflow`. See the module's documentation.
pub fn bucket(workflow: &str, value: &str) -> u32 {
    let hash = stable_hash(workflow.bytes().chain([0]).chain(value.bytes()));
    // Multiply-shift: the top bits decide, evenly.
    u32::try_from((u128::from(hash) * u128::from(BUCKETS)) >> 64).expect("below BUCKETS")
}

/// 64-bit FNV-1a, then MurmurHash3's fmix64: the same for the same bytes, forever.
pub fn stable_hash(bytes: impl Iterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash
}

/// A value as explanations show it: cut after 80 characters.
pub fn shortened(value: &str) -> Cow<'_, str> {
    if value.chars().count() <= 80 {
        return Cow::Borrowed(value);
    }
    Cow::Owned(value.chars().take(77).collect::<String>() + "...")
}

impl Sample {
    /// The value the event is sampled by: `sample_by`'s, or the event id when it has none
    /// (with what was used, for explanations).
    fn value<'e>(&self, event: &'e Event) -> (Cow<'e, str>, Cow<'_, str>) {
        let found = self.by.resolve(event);
        match found {
            Some(v) if !is_empty(Some(&v)) && !v.is_object() && !v.is_array() => (
                Cow::Owned(text(&v).into_owned()),
                Cow::Borrowed(&self.by_name),
            ),
            _ => (
                Cow::Borrowed(event.id.as_str()),
                Cow::Owned(format!("{} is empty: event id", self.by_name)),
            ),
        }
    }

    /// Whether the event is in the sampled share (the hot path: no explanation is built).
    pub fn chooses(&self, workflow: &str, event: &Event) -> bool {
        let (value, _) = self.value(event);
        bucket(workflow, &value) < self.share
    }

    /// Whether the event is sampled, and why: `sampled (lead_id 812 → 12.07 < 25%)`.
    pub fn explain(&self, workflow: &str, event: &Event) -> (bool, String) {
        let (value, by) = self.value(event);
        let bucket = bucket(workflow, &value);
        let chosen = bucket < self.share;
        let (verdict, sign) = if chosen {
            ("sampled", "<")
        } else {
            ("not sampled", "≥")
        };
        let value = shortened(&value);
        let reason = format!(
            "{verdict} ({by} {value} → {} {sign} {}%)",
            show_share(bucket),
            show_share(self.share)
        );
        (chosen, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_as_percentages_with_two_decimals() {
        assert_eq!(parse_share("25%"), Ok(2500));
        assert_eq!(parse_share("12.5%"), Ok(1250));
        assert_eq!(parse_share(" 0.25 %"), Ok(25));
        assert_eq!(parse_share("100%"), Ok(10_000));
        assert_eq!(parse_share("0%"), Ok(0));
        for bad in [
            "25", "0.25", "101%", "12.345%", "-5%", "%", "x%", "1e2%", ".5%",
        ] {
            assert!(parse_share(bad).is_err(), "{bad}");
        }
        assert_eq!(show_share(2500), "25");
        assert_eq!(show_share(1250), "12.5");
        assert_eq!(show_share(7123), "71.23");
        assert_eq!(show_share(0), "0");
    }

    #[test]
    fn buckets_are_fixed_forever() {
        // These numbers are the contract: a change here changes which events every
        // sampled workflow sends.
        let seen: Vec<u32> = ["812", "813", "lead-1", ""]
            .iter()
            .map(|v| bucket("sale-to-crm", v))
            .collect();
        assert_eq!(seen, [FIXED[0], FIXED[1], FIXED[2], FIXED[3]]);
        assert_ne!(bucket("a", "812"), bucket("b", "812"));
    }

    const FIXED: [u32; 4] = [3837, 4883, 1037, 6524];

    #[test]
    fn buckets_spread_evenly_over_sequential_values() {
        let mut counts = [0u32; 10];
        for i in 0..100_000 {
            counts[(bucket("w", &i.to_string()) / 1000) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }
}
