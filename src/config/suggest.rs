//! "Did you mean …?": the known name closest to one the user wrote, when it is close
//! enough to be a likely typo. Pure; used by config and engine messages alike.

/// The candidate closest to `wanted` by edit distance (ASCII case folded, a swap of two
/// neighbours counting as one edit), if within `len/3` edits (at least 1); ties go to the
/// first candidate.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted: Vec<char> = wanted.chars().map(|c| c.to_ascii_lowercase()).collect();
    if wanted.is_empty() {
        return None;
    }
    let max_distance = (wanted.len() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&wanted, candidate);
        if distance <= max_distance && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, name)| name)
}

/// ` (did you mean `x`?)` when a candidate is close, else nothing.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(wanted, candidates) {
        Some(name) => format!(" (did you mean `{name}`?)"),
        None => String::new(),
    }
}

/// `unknown endpoint "crmm" (did you mean "crm"? known: crm, slack)`: a name that is not
/// among the `known` ones, with the nearest and all of them, sorted.
pub fn unknown<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let mut known: Vec<&str> = known.collect();
    known.sort_unstable();
    known.dedup();
    let list = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    let hint = closest(name, known.iter().copied())
        .map(|near| format!("did you mean {near:?}? "))
        .unwrap_or_default();
    format!("unknown {kind} {name:?} ({hint}known: {list})")
}

/// Optimal string alignment distance between lower-cased `a` and `b`: insertions,
/// deletions, substitutions and swaps of adjacent characters.
fn edit_distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_not_strangers() {
        assert_eq!(closest("e165", ["date", "digits", "e164"]), Some("e164"));
        assert_eq!(closest("adapter", ["endpoint", "adaptor"]), Some("adaptor"));
        assert_eq!(closest("nubmer", ["none", "number"]), Some("number"));
        assert_eq!(closest("rnage", ["range", "dict"]), Some("range"));
        assert_eq!(closest("yaml", ["json", "form", "xml", "query"]), None);
        assert_eq!(closest("zzzz", ["date", "e164"]), None);
    }
}
