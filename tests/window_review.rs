//! Review of sending windows across the fall-back of 2026-11-01 in New York (01:00–02:00
//! local happens twice: 05:00–06:00Z as EDT, 06:00–07:00Z as EST).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use switchboard::engine::window::{Window, WindowZone, parse_day, parse_time};

fn ny() -> Tz {
    "America/New_York".parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A window that ends inside the repeated hour is open again in its second pass
/// (docs/configuration.md: "a window over the repeated hour is open in both passes of
/// it"); a delivery that falls due between the passes waits for the second one, not for
/// next week's opening.
#[test]
fn a_window_closed_between_the_passes_of_a_repeated_hour_reopens_in_the_second() {
    let mut days = [false; 7];
    days[parse_day("sun").unwrap()] = true;
    let w = Window {
        days,
        from: parse_time("00:30", false).unwrap(),
        to: parse_time("01:15", true).unwrap(),
        zone: WindowZone::Fixed(ny()),
    };
    // 01:20 EDT: closed (the first pass of 01:15 went by).
    let at = t("2026-11-01T05:20:00Z");
    assert!(!w.is_open(ny(), at));
    // 01:00 EST, 40 minutes later: open again.
    assert!(w.is_open(ny(), t("2026-11-01T06:00:00Z")));
    assert_eq!(w.next_opening(ny(), at), Some(t("2026-11-01T06:00:00Z")));
}
