//! Date patterns written for another library: Java's `SimpleDateFormat`/
//! `DateTimeFormatter`, ICU and moment.js (`MM/dd/yyyy hh:mm a`). As a PHP `date()`
//! pattern such a string formats without error but prints nonsense (`yyyy` is the
//! two-digit year four times), so loading warns and offers the PHP spelling.

/// The PHP `date()` equivalent of `spec` when it reads as a Java/ICU/moment pattern:
/// it has a run of a repeated date letter (`yyyy`, `MM`, `dd`, `HH`, `mm`, `ss`) that no
/// PHP pattern means. None when it does not look like one or cannot be translated.
pub fn php_equivalent(spec: &str) -> Option<String> {
    let runs = letter_runs(spec)?;
    let foreign = runs
        .iter()
        .any(|r| matches!(r, Run::Letter(c, n) if *n >= 2 && "yYMdDHhmsSE".contains(*c)));
    if !foreign {
        return None;
    }
    let mut out = String::with_capacity(spec.len());
    for run in runs {
        match run {
            Run::Letter(c, n) => out.push_str(translate(c, n)?),
            Run::Literal(text) => {
                for ch in text.chars() {
                    if ch.is_ascii_alphabetic() || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
            }
        }
    }
    Some(out)
}

enum Run {
    /// A pattern letter repeated `n` times.
    Letter(char, usize),
    /// Text printed as it is (punctuation, or `'quoted'` in Java, `[bracketed]` in moment).
    Literal(String),
}

/// Splits a Java-style pattern into letter runs and literal text; None if a quote is open.
fn letter_runs(spec: &str) -> Option<Vec<Run>> {
    let mut runs = Vec::new();
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '[' {
            let close = if c == '\'' { '\'' } else { ']' };
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some(ch) if ch == close => break,
                    Some(ch) => text.push(ch),
                    None => return None,
                }
            }
            // '' is a quote in Java.
            runs.push(Run::Literal(if text.is_empty() {
                "'".into()
            } else {
                text
            }));
        } else if c.is_ascii_alphabetic() {
            let mut n = 1;
            while chars.peek() == Some(&c) {
                chars.next();
                n += 1;
            }
            runs.push(Run::Letter(c, n));
        } else {
            runs.push(Run::Literal(c.to_string()));
        }
    }
    Some(runs)
}

/// One Java/moment letter run as PHP `date()` letters.
fn translate(c: char, n: usize) -> Option<&'static str> {
    Some(match (c, n) {
        ('y' | 'Y' | 'u', 2) => "y",
        ('y' | 'Y' | 'u', _) => "Y",
        ('M', 1) => "n",
        ('M', 2) => "m",
        ('M', 3) => "M",
        ('M', _) => "F",
        ('d' | 'D', 1) => "j",
        ('d' | 'D', 2) => "d",
        ('E', 4..) | ('d', 4..) => "l",
        ('E', _) | ('d', 3) => "D",
        ('H', 1) => "G",
        ('H', _) => "H",
        ('h', 1) => "g",
        ('h', _) => "h",
        ('m', _) => "i",
        ('s', _) => "s",
        ('S', _) => "v",
        ('a' | 'A', _) => "A",
        ('X' | 'x', 3..) => "P",
        ('Z', 1) | ('X' | 'x', _) => "O",
        ('z', _) => "T",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::php_equivalent;

    #[test]
    fn java_icu_and_moment_patterns_become_php() {
        let cases = [
            ("MM/dd/yyyy hh:mm a", Some("m/d/Y h:i A")),
            ("yyyy-MM-dd", Some("Y-m-d")),
            ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", Some("Y-m-d\\TH:i:s.vP")),
            ("YYYY-MM-DD HH:mm", Some("Y-m-d H:i")),
            ("EEE, d MMM yyyy", Some("D, j M Y")),
            // PHP patterns stay as they are.
            ("Y-m-d H:i:s", None),
            ("m/d/Y h:i A", None),
            ("D, d M Y", None),
        ];
        for (spec, php) in cases {
            assert_eq!(php_equivalent(spec).as_deref(), php, "{spec}");
        }
    }
}
