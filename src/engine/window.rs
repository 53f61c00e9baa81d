//! Sending windows (`window:` on an action): the days and hours, in a time zone, when an
//! action may send. A pure calculation over instants: whether a window is open at a time,
//! and when it next opens, correct across daylight saving time changes.
//!
//! A window is open at an instant when that instant's local wall time, in the window's
//! zone, is on a listed day from `from` (included) to `to` (excluded). `to` earlier than
//! `from` is an overnight window: it opens on a listed day and closes the next day. So a
//! `from` that falls in the hour a spring-forward skips opens when the skipped hour ends
//! (02:30 on 2026-03-08 in New York opens at 03:00 EDT), and a window over the hour a
//! fall-back repeats is open in both passes of it.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

use super::template::TemplateId;

/// The days of the week as written in a window, Monday first (chrono's order).
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The longest a search for an opening looks ahead, in days: a week and a day covers any
/// listed day; a second week covers an opening that a skipped hour swallowed.
const LOOK_AHEAD_DAYS: i64 = 16;

/// Where a window's zone comes from.
#[derive(Debug, Clone)]
pub enum WindowZone {
    /// A zone named in the file.
    Fixed(Tz),
    /// A template rendered against the event (the source, for explanations).
    Template(TemplateId, String),
}

/// A compiled window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Open on these days (index 0 = Monday).
    pub days: [bool; 7],
    /// Opens at this many seconds after local midnight.
    pub from: u32,
    /// Closes at this many seconds after local midnight (86 400: midnight at the day's
    /// end); less than `from`: the next day.
    pub to: u32,
    /// Its zone.
    pub zone: WindowZone,
}

/// Parses a window time, "HH:MM" (also "H:MM"); "24:00" only where `end` allows it.
/// Returns seconds after midnight.
pub fn parse_time(text: &str, end: bool) -> Result<u32, String> {
    let bad = || {
        format!(
            "{text:?} is not a time of day: write \"HH:MM\", 24-hour, such as \"09:00\" or \"20:30\"{}",
            if end {
                " (\"24:00\" is midnight at the day's end)"
            } else {
                ""
            }
        )
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) if end => Ok(86_400),
        (0..=23, 0..=59) => Ok(h * 3600 + m * 60),
        _ => Err(bad()),
    }
}

/// Parses a day name: `mon` … `sun`, or the whole name, in any case. Returns its index
/// (0 = Monday).
pub fn parse_day(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAYS.iter()
        .position(|d| *d == lower)
        .or_else(|| FULL.iter().position(|d| *d == lower))
        .ok_or_else(|| format!("unknown day {text:?} (known: {})", DAYS.join(", ")))
}

fn show_time(seconds: u32) -> String {
    format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60)
}

impl Window {
    fn overnight(&self) -> bool {
        self.to < self.from
    }

    /// The days and hours, as `render` and the log show them: `mon–fri 09:00–20:00`.
    pub fn show_hours(&self) -> String {
        format!(
            "{} {}–{}",
            show_days(&self.days),
            show_time(self.from),
            show_time(self.to)
        )
    }

    /// Whether the window is open at `at`, in `zone`.
    pub fn is_open(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&zone).naive_local();
        let day = local.weekday().num_days_from_monday() as usize;
        let second = local.time().num_seconds_from_midnight();
        if self.overnight() {
            (self.days[day] && second >= self.from)
                || (self.days[(day + 6) % 7] && second < self.to)
        } else {
            self.days[day] && second >= self.from && second < self.to
        }
    }

    /// The first instant at or after `at` when the window is open, in `zone` (`at` itself
    /// when it is open); None only if none comes within two weeks (a window that lies
    /// wholly in hours the zone skips).
    pub fn next_opening(&self, zone: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(zone, at) {
            return Some(at);
        }
        let today = at.with_timezone(&zone).date_naive();
        let mut best: Option<DateTime<Utc>> = None;
        for offset in -1..=LOOK_AHEAD_DAYS {
            let Some(date) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            if !self.days[date.weekday().num_days_from_monday() as usize] {
                continue;
            }
            for candidate in instants_from(zone, opening_on(date, self.from)) {
                if candidate >= at
                    && self.is_open(zone, candidate)
                    && best.is_none_or(|b| candidate < b)
                {
                    best = Some(candidate);
                }
            }
            if best.is_some_and(|b| b.with_timezone(&zone).date_naive() < date) {
                break;
            }
        }
        // Where a fall-back sets the clock back, local times come again: a window closed
        // before the change can be open again at the change itself.
        let limit = best.unwrap_or(at + Duration::days(LOOK_AHEAD_DAYS));
        if let Some(change) = fall_back_between(zone, at, limit)
            && self.is_open(zone, change)
        {
            best = Some(change);
        }
        best
    }
}

/// The first instant in `(from, until)` where `zone`'s clock goes back (its offset to UTC
/// decreases), to the second.
fn fall_back_between(zone: Tz, from: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let offset = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .map(|t| t.with_timezone(&zone).offset().fix().local_minus_utc())
    };
    let (mut probe, end) = (from.timestamp(), until.timestamp());
    while probe < end {
        let next = (probe + 3600).min(end);
        if let (Some(before), Some(after)) = (offset(probe), offset(next))
            && after < before
        {
            let (mut lo, mut hi) = (probe, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == Some(before) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            return DateTime::from_timestamp(hi, 0);
        }
        probe = next;
    }
    None
}

fn opening_on(date: NaiveDate, seconds: u32) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).expect("midnight exists") + Duration::seconds(i64::from(seconds))
}

/// The instants whose local time in `zone` is `local`: one; two in a repeated hour; and in
/// a skipped hour, none — then the first instant after the gap (when the local clock
/// reaches a time at or past `local`).
fn instants_from(zone: Tz, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
        LocalResult::Ambiguous(a, b) => vec![a.with_timezone(&Utc), b.with_timezone(&Utc)],
        LocalResult::None => {
            // Gaps are whole minutes, and at most a day long (Samoa skipped 2011-12-30).
            let mut probe = local;
            for _ in 0..(26 * 60) {
                probe += Duration::minutes(1);
                let first = match zone.from_local_datetime(&probe) {
                    LocalResult::Single(t) => Some(t),
                    LocalResult::Ambiguous(a, _) => Some(a),
                    LocalResult::None => None,
                };
                if let Some(t) = first {
                    // Openings are whole minutes, so the first minute that exists again
                    // is where the gap ends.
                    return vec![t.with_timezone(&Utc)];
                }
            }
            Vec::new()
        }
    }
}

/// `mon–fri`, `every day`, `sat, sun`, `mon, wed–fri`.
pub fn show_days(days: &[bool; 7]) -> String {
    if days.iter().all(|d| *d) {
        return "every day".into();
    }
    let mut runs = Vec::new();
    let mut i = 0;
    while i < 7 {
        if !days[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 7 && days[i + 1] {
            i += 1;
        }
        runs.push(match i - start {
            0 => DAYS[start].to_string(),
            1 => format!("{}, {}", DAYS[start], DAYS[i]),
            _ => format!("{}–{}", DAYS[start], DAYS[i]),
        });
        i += 1;
    }
    runs.join(", ")
}

/// An opening as a person reads it: `Monday 09:00 EDT`, with the date when it is not
/// within the week after `now`.
pub fn show_opening(zone: Tz, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let local = at.with_timezone(&zone);
    if at - now < Duration::days(6) {
        local.format("%A %H:%M %Z").to_string()
    } else {
        local.format("%A %Y-%m-%d %H:%M %Z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> Tz {
        "America/New_York".parse().unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window(days: &[&str], from: &str, to: &str) -> Window {
        let mut set = [false; 7];
        for d in days {
            set[parse_day(d).unwrap()] = true;
        }
        Window {
            days: set,
            from: parse_time(from, false).unwrap(),
            to: parse_time(to, true).unwrap(),
            zone: WindowZone::Fixed(ny()),
        }
    }

    const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

    #[test]
    fn a_weekday_window_opens_at_nine_local_time_on_both_sides_of_each_2026_change() {
        let w = window(&WEEKDAYS, "09:00", "20:00");
        // Saturday 2026-03-07 (EST, UTC-5): the next opening is Monday 09:00 EDT (UTC-4),
        // across the spring-forward of Sunday 2026-03-08.
        assert_eq!(
            w.next_opening(ny(), t("2026-03-07T15:00:00Z")),
            Some(t("2026-03-09T13:00:00Z"))
        );
        // Friday 2026-03-06 20:00 EST is closed; 19:59 is open.
        assert!(!w.is_open(ny(), t("2026-03-07T01:00:00Z")));
        assert!(w.is_open(ny(), t("2026-03-07T00:59:00Z")));
        // Across the fall-back of Sunday 2026-11-01: Friday 10-30 21:00 EDT waits for
        // Monday 11-02 09:00 EST (UTC-5).
        assert_eq!(
            w.next_opening(ny(), t("2026-10-31T01:00:00Z")),
            Some(t("2026-11-02T14:00:00Z"))
        );
        // Inside the window: now.
        assert_eq!(
            w.next_opening(ny(), t("2026-11-02T15:00:00Z")),
            Some(t("2026-11-02T15:00:00Z"))
        );
        assert_eq!(w.show_hours(), "mon–fri 09:00–20:00");
    }

    #[test]
    fn a_from_in_the_skipped_hour_opens_when_the_hour_ends() {
        // 02:30 does not exist on 2026-03-08 in New York: 02:00 EST is 03:00 EDT.
        let w = window(&["sun"], "02:30", "04:00");
        assert_eq!(
            w.next_opening(ny(), t("2026-03-08T05:00:00Z")),
            Some(t("2026-03-08T07:00:00Z"))
        );
        assert!(w.is_open(ny(), t("2026-03-08T07:00:00Z")));
        // A window wholly in the skipped hour does not open that day: the next Sunday.
        let w = window(&["sun"], "02:10", "02:50");
        assert_eq!(
            w.next_opening(ny(), t("2026-03-08T05:00:00Z")),
            Some(t("2026-03-15T06:10:00Z"))
        );
    }

    #[test]
    fn a_window_over_the_repeated_hour_is_open_in_both_passes() {
        // 2026-11-01: 01:00–02:00 happens twice in New York (EDT, then EST).
        let w = window(&["sun"], "01:30", "02:00");
        assert_eq!(
            w.next_opening(ny(), t("2026-11-01T04:00:00Z")),
            Some(t("2026-11-01T05:30:00Z"))
        );
        // Between the passes (01:10 EST, the second time round): 01:30 EST.
        assert_eq!(
            w.next_opening(ny(), t("2026-11-01T06:10:00Z")),
            Some(t("2026-11-01T06:30:00Z"))
        );
        assert!(!w.is_open(ny(), t("2026-11-01T07:00:00Z")));
    }

    #[test]
    fn an_overnight_window_closes_the_next_day() {
        let w = window(&["fri"], "22:00", "06:00");
        // Saturday 05:00 EST is inside Friday's window; Saturday 06:00 is not.
        assert!(w.is_open(ny(), t("2026-11-07T10:00:00Z")));
        assert!(!w.is_open(ny(), t("2026-11-07T11:00:00Z")));
        assert_eq!(
            w.next_opening(ny(), t("2026-11-07T11:00:00Z")),
            Some(t("2026-11-14T03:00:00Z"))
        );
        assert_eq!(w.show_hours(), "fri 22:00–06:00");
    }

    #[test]
    fn days_and_times_are_read_strictly() {
        assert_eq!(parse_time("9:05", false), Ok(9 * 3600 + 300));
        assert_eq!(parse_time("24:00", true), Ok(86_400));
        assert!(parse_time("24:00", false).is_err());
        for bad in ["9", "09:5", "25:00", "12:60", "noon", "09:00:00", ""] {
            assert!(parse_time(bad, true).is_err(), "{bad}");
        }
        assert_eq!(parse_day("Friday"), Ok(4));
        assert_eq!(
            parse_day("fry"),
            Err("unknown day \"fry\" (known: mon, tue, wed, thu, fri, sat, sun)".into())
        );
        let mut days = [true; 7];
        assert_eq!(show_days(&days), "every day");
        days[1] = false;
        days[2] = false;
        assert_eq!(show_days(&days), "mon, thu–sun");
        days = [false, false, false, false, false, true, true];
        assert_eq!(show_days(&days), "sat, sun");
    }
}
