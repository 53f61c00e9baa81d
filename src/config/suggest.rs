//! "Did you mean …?": the known name closest to one the user wrote, when it is close
//! enough to be a likely typo. Pure; used by config and engine messages alike.

/// The candidate closest to `wanted` by edit distance (ASCII case folded), if within
/// `1 + len/4` edits; ties go to the first candidate.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted: Vec<char> = wanted.chars().map(|c| c.to_ascii_lowercase()).collect();
    if wanted.is_empty() {
        return None;
    }
    let max_distance = 1 + wanted.len() / 4;
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

/// Levenshtein distance between lower-cased `a` and `b`.
fn edit_distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_not_strangers() {
        assert_eq!(closest("e165", ["date", "digits", "e164"]), Some("e164"));
        assert_eq!(closest("adapter", ["endpoint", "adaptor"]), Some("adaptor"));
        assert_eq!(closest("zzzz", ["date", "e164"]), None);
    }
}
