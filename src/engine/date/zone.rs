//! Time zone names, with a suggestion for a misspelt one.

use chrono_tz::{TZ_VARIANTS, Tz};

/// Parses a zone name such as "America/New_York" or "UTC". Err: a message naming the bad value and,
/// when one exists, the closest valid name (e.g. `unknown time zone "America/NewYork" (did you mean "America/New_York"?)`).
///
/// Names match case-insensitively (`utc`, `europe/paris`), as in PHP and the tz database.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    if let Some(tz) = TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
    {
        return Ok(*tz);
    }
    Err(match closest_zone(name) {
        Some(suggestion) => format!("unknown time zone {name:?} (did you mean {suggestion:?}?)"),
        None => format!("unknown time zone {name:?}"),
    })
}

/// Names the tz database knows that are rarely what a user means: fixed offsets with no
/// daylight saving time (`EST` is UTC-5 all year, also in July) and the legacy POSIX
/// rule zones. Each with the zone to use instead.
#[rustfmt::skip]
const FIXED: &[(&str, &str)] = &[
    ("EST", "America/New_York"), ("MST", "America/Denver"), ("HST", "Pacific/Honolulu"),
    ("EST5EDT", "America/New_York"), ("CST6CDT", "America/Chicago"),
    ("MST7MDT", "America/Denver"), ("PST8PDT", "America/Los_Angeles"),
];

/// When `name` is a valid zone that is probably a mistake (a fixed offset such as `EST`,
/// or a legacy rule zone), the warning to give, naming the zone to use.
pub fn zone_warning(name: &str) -> Option<String> {
    let (written, zone) = FIXED
        .iter()
        .find(|(abbr, _)| abbr.eq_ignore_ascii_case(name.trim()))?;
    Some(if written.len() == 3 {
        format!(
            "time zone {name:?} is a fixed offset that ignores daylight saving time: use {zone:?} for local time"
        )
    } else {
        format!("time zone {name:?} is a legacy POSIX zone ({written}): use {zone:?}")
    })
}

/// Common abbreviations that are not zone names, mapped to a representative zone.
#[rustfmt::skip]
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("PST", "America/Los_Angeles"), ("PDT", "America/Los_Angeles"), ("PT", "America/Los_Angeles"),
    ("MDT", "America/Denver"), ("MT", "America/Denver"), ("CST", "America/Chicago"),
    ("CDT", "America/Chicago"), ("CT", "America/Chicago"), ("EDT", "America/New_York"),
    ("ET", "America/New_York"), ("BST", "Europe/London"), ("CEST", "Europe/Paris"),
    ("EEST", "Europe/Helsinki"), ("AEST", "Australia/Sydney"), ("AEDT", "Australia/Sydney"),
    ("JST", "Asia/Tokyo"),
];

/// The valid zone name closest to `name`, if one is close enough to be a likely typo: edit
/// distance over lower-cased names (spaces read as `_`), also against the city part alone when
/// `name` has no `/` (so `New York` finds `America/New_York`).
fn closest_zone(name: &str) -> Option<&'static str> {
    let trimmed = name.trim();
    if let Some((_, zone)) = ABBREVIATIONS
        .iter()
        .find(|(abbr, _)| abbr.eq_ignore_ascii_case(trimmed))
    {
        return Some(zone);
    }
    let wanted: Vec<char> = trimmed
        .chars()
        .map(|c| {
            if c == ' ' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let max_distance = 1 + wanted.len() / 5;
    let city_only = !wanted.contains(&'/');
    // Ranked by distance, then whole-name matches before city matches (so `UTX` suggests
    // `UTC`, not `Etc/UTC`), then list order.
    let mut best: Option<((usize, bool), &'static str)> = None;
    for tz in TZ_VARIANTS.iter() {
        let full = tz.name();
        let mut rank = (edit_distance(&wanted, full), false);
        if city_only && let Some((_, city)) = full.rsplit_once('/') {
            rank = rank.min((edit_distance(&wanted, city), true));
        }
        if rank.0 <= max_distance && best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, full));
        }
    }
    best.map(|(_, zone)| zone)
}

/// Levenshtein distance between lower-cased `a` and `b` (ASCII case folded).
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
