//! PHP `date()` patterns, reproduced byte for byte (PHP 8.2 `DateTime::format()`).

use std::fmt::{self, Write as _};

use chrono::{DateTime, Datelike, NaiveDateTime, Offset, Timelike, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

/// A compiled PHP `date()` pattern: literal runs and format characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhpPattern {
    pub(super) items: Vec<PhpItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PhpItem {
    /// Consecutive literal characters, merged so formatting pushes them in one go.
    Literal(Box<str>),
    Code(Code),
}

/// One PHP format character (see `CODES` for which).
#[rustfmt::skip]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    Day2, DayShort, Day, DayLong, IsoWeekday, Suffix, Weekday, DayOfYear, IsoWeek, MonthLong,
    Month2, MonthShort, Month, DaysInMonth, Leap, IsoYear, YearExpanded, YearMaybeSign, Year,
    Year2, AmPm, AmPmUpper, Swatch, Hour12, Hour24, Hour12Pad, Hour24Pad, Minute, Second, Micros,
    Millis, ZoneId, Dst, Offset, OffsetColon, OffsetColonZ, ZoneAbbr, OffsetSeconds, Iso8601,
    Rfc2822, Unix,
}

/// PHP 8.2's format characters; every other character is copied literally.
#[rustfmt::skip]
const CODES: [(char, Code); 41] = [
    ('d', Code::Day2), ('D', Code::DayShort), ('j', Code::Day), ('l', Code::DayLong),
    ('N', Code::IsoWeekday), ('S', Code::Suffix), ('w', Code::Weekday), ('z', Code::DayOfYear),
    ('W', Code::IsoWeek), ('F', Code::MonthLong), ('m', Code::Month2), ('M', Code::MonthShort),
    ('n', Code::Month), ('t', Code::DaysInMonth), ('L', Code::Leap), ('o', Code::IsoYear),
    ('X', Code::YearExpanded), ('x', Code::YearMaybeSign), ('Y', Code::Year), ('y', Code::Year2),
    ('a', Code::AmPm), ('A', Code::AmPmUpper), ('B', Code::Swatch), ('g', Code::Hour12),
    ('G', Code::Hour24), ('h', Code::Hour12Pad), ('H', Code::Hour24Pad), ('i', Code::Minute),
    ('s', Code::Second), ('u', Code::Micros), ('v', Code::Millis), ('e', Code::ZoneId),
    ('I', Code::Dst), ('O', Code::Offset), ('P', Code::OffsetColon), ('p', Code::OffsetColonZ),
    ('T', Code::ZoneAbbr), ('Z', Code::OffsetSeconds), ('c', Code::Iso8601), ('r', Code::Rfc2822),
    ('U', Code::Unix),
];

const DAY_SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
#[rustfmt::skip]
const DAY_LONG: [&str; 7] = [
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
];
const MONTH_SHORT: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
#[rustfmt::skip]
const MONTH_LONG: [&str; 12] = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
];

impl PhpPattern {
    /// Compiles a PHP `date()` pattern. Never fails: like PHP, every character that is not a
    /// format character is copied, and `\` copies the next character.
    pub fn compile(spec: &str) -> PhpPattern {
        let mut items = Vec::new();
        let mut literal = String::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                // PHP copies format[i + 1]; for a trailing backslash that is the string's
                // terminating NUL byte, so PHP really prints "\0" there. Reproduced on purpose.
                literal.push(chars.next().unwrap_or('\0'));
            } else if let Some(&(_, code)) = CODES.iter().find(|(ch, _)| *ch == c) {
                if !literal.is_empty() {
                    items.push(PhpItem::Literal(
                        std::mem::take(&mut literal).into_boxed_str(),
                    ));
                }
                items.push(PhpItem::Code(code));
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            items.push(PhpItem::Literal(literal.into_boxed_str()));
        }
        PhpPattern { items }
    }

    /// Appends the formatted instant to `out`.
    pub(super) fn write(&self, out: &mut String, t: DateTime<Utc>, tz: Tz) {
        let fields = Fields::new(t, tz);
        for item in &self.items {
            match item {
                PhpItem::Literal(text) => out.push_str(text),
                PhpItem::Code(code) => fields.write(out, *code),
            }
        }
    }
}

/// Everything a PHP format character may need, computed once per `format` call.
pub(super) struct Fields {
    zoned: DateTime<Tz>,
    local: NaiveDateTime,
    /// Total UTC offset in seconds (east positive), DST included.
    offset: i32,
    /// Floor of the Unix time in seconds, as PHP's `sse`.
    unix: i64,
    micros: u32,
}

impl Fields {
    pub(super) fn new(t: DateTime<Utc>, tz: Tz) -> Fields {
        let zoned = t.with_timezone(&tz);
        Fields {
            local: zoned.naive_local(),
            offset: zoned.offset().fix().local_minus_utc(),
            unix: t.timestamp(),
            // A leap-second instant reports >= 1_000_000; PHP has no such thing.
            micros: t.timestamp_subsec_micros().min(999_999),
            zoned,
        }
    }

    pub(super) fn write(&self, out: &mut String, code: Code) {
        let date = self.local.date();
        let time = self.local.time();
        let year = date.year();
        let weekday = date.weekday().num_days_from_monday() as usize;
        match code {
            Code::Day2 => pad(out, date.day(), 2),
            Code::DayShort => out.push_str(DAY_SHORT[weekday]),
            Code::Day => put(out, format_args!("{}", date.day())),
            Code::DayLong => out.push_str(DAY_LONG[weekday]),
            Code::IsoWeekday => put(out, format_args!("{}", weekday + 1)),
            Code::Suffix => out.push_str(english_suffix(date.day())),
            Code::Weekday => put(
                out,
                format_args!("{}", date.weekday().num_days_from_sunday()),
            ),
            Code::DayOfYear => put(out, format_args!("{}", date.ordinal0())),
            Code::IsoWeek => pad(out, date.iso_week().week(), 2),
            Code::MonthLong => out.push_str(MONTH_LONG[date.month0() as usize]),
            Code::Month2 => pad(out, date.month(), 2),
            Code::MonthShort => out.push_str(MONTH_SHORT[date.month0() as usize]),
            Code::Month => put(out, format_args!("{}", date.month())),
            Code::DaysInMonth => put(out, format_args!("{}", days_in_month(year, date.month()))),
            Code::Leap => out.push(flag(is_leap(year))),
            // PHP prints the ISO year unpadded ("%lld"), unlike Y.
            Code::IsoYear => put(out, format_args!("{}", date.iso_week().year())),
            // X always has a sign; x only when it is needed (negative or 5+ digits); both pad
            // the magnitude to 4 digits.
            Code::YearExpanded => signed_year(out, year, if year < 0 { "-" } else { "+" }),
            Code::YearMaybeSign => {
                let sign = match year {
                    y if y < 0 => "-",
                    y if y >= 10_000 => "+",
                    _ => "",
                };
                signed_year(out, year, sign);
            }
            Code::Year => signed_year(out, year, if year < 0 { "-" } else { "" }),
            // C's "%02d" of a truncated remainder: year -1 prints "-1".
            Code::Year2 => pad(out, year % 100, 2),
            Code::AmPm => out.push_str(if time.hour() < 12 { "am" } else { "pm" }),
            Code::AmPmUpper => out.push_str(if time.hour() < 12 { "AM" } else { "PM" }),
            Code::Swatch => pad(out, swatch_beat(self.unix), 3),
            Code::Hour12 => put(out, format_args!("{}", hour12(time.hour()))),
            Code::Hour24 => put(out, format_args!("{}", time.hour())),
            Code::Hour12Pad => pad(out, hour12(time.hour()), 2),
            Code::Hour24Pad => pad(out, time.hour(), 2),
            Code::Minute => pad(out, time.minute(), 2),
            Code::Second => pad(out, time.second(), 2),
            Code::Micros => pad(out, self.micros, 6),
            Code::Millis => pad(out, self.micros / 1000, 3),
            Code::ZoneId => out.push_str(self.zoned.timezone().name()),
            // chrono-tz keeps tzdata's DST amount; it is non-zero exactly where tzdata sets
            // isdst, including Europe/Dublin's negative "winter DST" that PHP reports as 1.
            Code::Dst => out.push(flag(!self.zoned.offset().dst_offset().is_zero())),
            Code::Offset => write_offset(out, self.offset, ""),
            Code::OffsetColon => write_offset(out, self.offset, ":"),
            // PHP prints Z only when the zone's abbreviation is "UTC" (UTC, Etc/UTC, ...), so
            // GMT and Europe/London in winter still give +00:00.
            Code::OffsetColonZ => {
                if self.zoned.offset().abbreviation() == Some("UTC") {
                    out.push('Z');
                } else {
                    write_offset(out, self.offset, ":");
                }
            }
            Code::ZoneAbbr => match self.zoned.offset().abbreviation() {
                Some(abbr) => out.push_str(abbr),
                None => numeric_abbreviation(out, self.offset),
            },
            Code::OffsetSeconds => put(out, format_args!("{}", self.offset)),
            // c and r print the year with C's "%04lld" (sign counted in the width: "-001"),
            // which differs from Y's "-0001"; Rust's `{:04}` pads the same way C does.
            Code::Iso8601 => {
                put(
                    out,
                    format_args!(
                        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                        date.month(),
                        date.day(),
                        time.hour(),
                        time.minute(),
                        time.second()
                    ),
                );
                write_offset(out, self.offset, ":");
            }
            Code::Rfc2822 => {
                put(
                    out,
                    format_args!(
                        "{}, {:02} {} {year:04} {:02}:{:02}:{:02} ",
                        DAY_SHORT[weekday],
                        date.day(),
                        MONTH_SHORT[date.month0() as usize],
                        time.hour(),
                        time.minute(),
                        time.second()
                    ),
                );
                write_offset(out, self.offset, "");
            }
            Code::Unix => put(out, format_args!("{}", self.unix)),
        }
    }
}

/// PHP's `1`/`0` for a yes/no field.
fn flag(yes: bool) -> char {
    if yes { '1' } else { '0' }
}

/// Appends formatted arguments; writing into a `String` cannot fail.
pub(super) fn put(out: &mut String, args: fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

/// Appends `n` zero-padded to `width` the way C's `%0Nd` does (a minus sign counts in the width).
fn pad<N: fmt::Display>(out: &mut String, n: N, width: usize) {
    put(out, format_args!("{n:0width$}"));
}

/// PHP's `"%s%04lld"` year: an explicit sign, then the magnitude padded to 4 digits.
fn signed_year(out: &mut String, year: i32, sign: &str) {
    out.push_str(sign);
    pad(out, year.unsigned_abs(), 4);
}

/// `+hh<sep>mm` as PHP prints O/P: seconds of an LMT offset are dropped, not rounded.
fn write_offset(out: &mut String, offset: i32, sep: &str) {
    out.push(if offset < 0 { '-' } else { '+' });
    pad(out, (offset / 3600).unsigned_abs(), 2);
    out.push_str(sep);
    pad(out, (offset % 3600 / 60).unsigned_abs(), 2);
}

/// tzdata's `%z` abbreviation (`+04`, `+0530`, `-0330`), used by zones without a letter
/// abbreviation; chrono-tz stores no name for those, PHP prints this string.
fn numeric_abbreviation(out: &mut String, offset: i32) {
    let abs = offset.unsigned_abs();
    out.push(if offset < 0 { '-' } else { '+' });
    pad(out, abs / 3600, 2);
    if !abs.is_multiple_of(3600) {
        pad(out, abs % 3600 / 60, 2);
        if !abs.is_multiple_of(60) {
            pad(out, abs % 60, 2);
        }
    }
}

/// PHP's English ordinal suffix for a day of the month.
fn english_suffix(day: u32) -> &'static str {
    if (10..=19).contains(&day) {
        return "th";
    }
    match day % 10 {
        1 => "st",
        2 => "nd",
        3 => "rd",
        _ => "th",
    }
}

fn hour12(hour: u32) -> u32 {
    match hour % 12 {
        0 => 12,
        h => h,
    }
}

/// Swatch Internet time exactly as PHP computes it, with C's truncating `%` on negative times.
fn swatch_beat(unix: i64) -> i64 {
    let mut beat = (unix % 86_400 + 3_600) * 10;
    if beat < 0 {
        beat += 864_000;
    }
    (beat / 864) % 1000
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
