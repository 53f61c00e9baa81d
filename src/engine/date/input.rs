//! Input dates: the shapes call platforms send, to an instant.

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc,
};
use chrono_tz::Tz;

/// Unix times with this many or more digits (ignoring a minus sign) are milliseconds: 10^12 s
/// is ~31700 years away, 10^12 ms is September 2001.
const MILLIS_THRESHOLD: u64 = 1_000_000_000_000;

/// Parses an input date value. `input_tz` applies to values without an offset. None if unparseable.
///
/// Accepted: JSON numbers and digit strings as Unix seconds, or milliseconds from 13 digits on
/// (floats are fractional seconds, or milliseconds past the same threshold); after trimming
/// whitespace, `YYYY-MM-DD`, `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]` with an optional `Z`/`z`,
/// `±HH`, `±HHMM` or `±HH:MM` offset (a space before a numeric offset is allowed), and
/// `MM/DD/YYYY[ HH:MM[:SS]]` (month, day and hour may have one digit). Note that an 8-digit
/// string such as `20240315` is a Unix time, not a date.
///
/// A local time that occurs twice (clocks turned back) is read as the earlier instant. A local
/// time that does not exist (clocks jumped forward over it) is read as the earliest valid
/// instant after it: the moment of the jump, e.g. 02:30 on a US spring-forward day is 03:00 EDT.
pub fn parse_input(value: &serde_json::Value, input_tz: Tz) -> Option<DateTime<Utc>> {
    let at = match value {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => from_unix(i),
            None => from_unix_float(n.as_f64()?),
        },
        serde_json::Value::String(s) => parse_str(s.trim(), input_tz),
        _ => None,
    }?;
    // Years 0-9999 only: every zone can show them, and a date outside is a data error
    // (chrono panics converting instants near its limits into local time).
    (MIN_YEAR..=MAX_YEAR).contains(&at.year()).then_some(at)
}

/// The earliest year an input date may have.
const MIN_YEAR: i32 = 0;
/// The latest year an input date may have.
const MAX_YEAR: i32 = 9999;

fn from_unix(n: i64) -> Option<DateTime<Utc>> {
    if n.unsigned_abs() >= MILLIS_THRESHOLD {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
}

fn from_unix_float(f: f64) -> Option<DateTime<Utc>> {
    let seconds = if f.abs() >= MILLIS_THRESHOLD as f64 {
        f / 1000.0
    } else {
        f
    };
    let micros = (seconds * 1e6).round();
    // The range check also rejects NaN and infinities, so the cast below is exact-or-bounded.
    if !(-9.0e18..=9.0e18).contains(&micros) {
        return None;
    }
    DateTime::from_timestamp_micros(micros as i64)
}

fn parse_str(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (unsigned, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if all_digits(int_part) {
        return match frac_part {
            None => from_unix(s.parse().ok()?),
            Some(frac) if all_digits(frac) => from_unix_float(s.parse().ok()?),
            Some(_) => None,
        };
    }
    let mut cur = Cursor {
        s: s.as_bytes(),
        pos: 0,
    };
    let (naive, offset) = parse_iso(&mut cur).or_else(|| {
        cur.pos = 0;
        parse_us(&mut cur).map(|naive| (naive, None))
    })?;
    match offset {
        Some(seconds) => Some(
            naive
                .checked_sub_signed(TimeDelta::seconds(seconds))?
                .and_utc(),
        ),
        None => local_to_utc(naive, tz),
    }
}

/// `YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)fraction]][ ][offset]]`; returns the offset in seconds.
fn parse_iso(cur: &mut Cursor<'_>) -> Option<(NaiveDateTime, Option<i64>)> {
    let year = cur.number(4, 4)?;
    cur.expect(b'-')?;
    let month = cur.number(2, 2)?;
    cur.expect(b'-')?;
    let day = cur.number(2, 2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if cur.at_end() {
        return Some((date.and_time(NaiveTime::MIN), None));
    }
    if !matches!(cur.bump()?, b'T' | b't' | b' ') {
        return None;
    }
    let hour = cur.number(2, 2)?;
    cur.expect(b':')?;
    let minute = cur.number(2, 2)?;
    let (mut second, mut nanos) = (0, 0);
    if cur.eat(b':') {
        second = cur.number(2, 2)?;
        if cur.eat(b'.') || cur.eat(b',') {
            nanos = cur.fraction()?;
        }
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let offset = if cur.at_end() {
        None
    } else {
        Some(cur.offset()?)
    };
    if !cur.at_end() {
        return None;
    }
    Some((date.and_time(time), offset))
}

/// `M[M]/D[D]/YYYY[ H[H]:MM[:SS]]`, always local time.
fn parse_us(cur: &mut Cursor<'_>) -> Option<NaiveDateTime> {
    let month = cur.number(1, 2)?;
    cur.expect(b'/')?;
    let day = cur.number(1, 2)?;
    cur.expect(b'/')?;
    let year = cur.number(4, 4)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let mut time = NaiveTime::MIN;
    if cur.eat(b' ') {
        let hour = cur.number(1, 2)?;
        cur.expect(b':')?;
        let minute = cur.number(2, 2)?;
        let second = if cur.eat(b':') { cur.number(2, 2)? } else { 0 };
        time = NaiveTime::from_hms_opt(hour, minute, second)?;
    }
    cur.at_end().then(|| date.and_time(time))
}

/// A byte cursor over an ASCII date string; any non-ASCII byte simply fails to match.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = *self.s.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.pos) == Some(&b);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    /// Reads `min..=max` ASCII digits (greedily) as a number.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.pos;
        let mut value = 0u32;
        while self.pos - start < max {
            match self.s.get(self.pos) {
                Some(b) if b.is_ascii_digit() => value = value * 10 + u32::from(b - b'0'),
                _ => break,
            }
            self.pos += 1;
        }
        (self.pos - start >= min).then_some(value)
    }

    /// A fraction of a second after the separator: 1+ digits, as nanoseconds (digits past the
    /// ninth are dropped).
    fn fraction(&mut self) -> Option<u32> {
        let start = self.pos;
        let mut nanos = 0u32;
        while let Some(b) = self.s.get(self.pos).filter(|b| b.is_ascii_digit()) {
            if self.pos - start < 9 {
                nanos = nanos * 10 + u32::from(b - b'0');
            }
            self.pos += 1;
        }
        let digits = self.pos - start;
        (digits > 0).then(|| nanos * 10u32.pow(9 - digits.min(9) as u32))
    }

    /// `Z`, `z`, `±HH`, `±HHMM` or `±HH:MM` (optionally after one space) as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        if self.eat(b'Z') || self.eat(b'z') {
            return Some(0);
        }
        self.eat(b' ');
        let sign = match self.bump()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let hours = self.number(2, 2)?;
        let colon = self.eat(b':');
        let minutes = match self.number(2, 2) {
            Some(m) => m,
            None if !colon => 0,
            None => return None,
        };
        (hours < 24 && minutes < 60).then(|| sign * i64::from(hours * 3600 + minutes * 60))
    }
}

/// Reads a wall-clock time in `tz`, resolving DST overlaps and gaps as documented on
/// [`parse_input`].
fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Some(dt.to_utc()),
        LocalResult::Ambiguous(a, b) => Some(a.to_utc().min(b.to_utc())),
        LocalResult::None => gap_end(naive, tz),
    }
}

/// The instant the clocks jumped over the non-existent local time `naive`.
///
/// With offsets `before` and `after` around the jump at instant T, the skipped local times are
/// [T + before, T + after), so T lies in (naive - after, naive - before]; a binary search over
/// whole seconds finds the first instant that already has the new offset.
fn gap_end(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let offset_at = |unix: i64| -> Option<i64> {
        let utc = DateTime::from_timestamp(unix, 0)?.naive_utc();
        Some(i64::from(
            tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
        ))
    };
    let day = TimeDelta::days(1);
    // Offsets never reach a day, so a day either side is safely outside the jump.
    let before = offset_at(naive.checked_sub_signed(day)?.and_utc().timestamp())?;
    let after = offset_at(naive.checked_add_signed(day)?.and_utc().timestamp())?;
    let local = naive.and_utc().timestamp();
    let (mut lo, mut hi) = (local - after, local - before);
    if lo >= hi {
        // Not a plain forward jump (several transitions within a day): shift by the old
        // offset, as PHP does.
        return DateTime::from_timestamp(hi, 0);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(mid)? == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}
