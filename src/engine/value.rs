//! How event values are read: emptiness, text, numbers, and the comparison rule of workflows (docs/configuration.md)
//! (numbers compare as numbers when both sides are numbers or numeric strings, otherwise
//! as strings).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

/// Missing, `null` and `""` are empty.
pub fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// A value as text: strings as they are, numbers and booleans as written, null as "",
/// lists and maps as JSON.
pub fn text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(n) => Cow::Owned(n.to_string()),
        other => Cow::Owned(other.to_string()),
    }
}

/// A number, or a string that is one (`"30"`, `" -1.5 "`, `"2e3"`); never NaN or infinity.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => numeric_str(s),
        _ => None,
    }
}

/// Parses decimal notation only: `inf`, `nan`, hex and empty strings are not numbers.
pub fn numeric_str(s: &str) -> Option<f64> {
    let s = s.trim();
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let digits_first = body
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    let allowed = body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !digits_first || !allowed {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Equality by the comparison rule.
pub fn loose_eq(a: &Value, b: &Value, ignore_case: bool) -> bool {
    compare(a, b, ignore_case) == Some(Ordering::Equal)
}

/// A whole number, exactly: JSON integers, and strings of digits (with an optional
/// sign) of up to 38 digits. Long ids (phone numbers, call ids) compare exactly this way.
pub fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            if digits.is_empty() || digits.len() > 38 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            t.parse().ok()
        }
        _ => None,
    }
}

/// Ordering by the comparison rule: numerically when both sides are numeric (exactly for
/// whole numbers), else as text.
pub fn compare(a: &Value, b: &Value, ignore_case: bool) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (integer(a), integer(b)) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.partial_cmp(&y);
    }
    let (x, y) = (text(a), text(b));
    if ignore_case {
        Some(x.to_lowercase().cmp(&y.to_lowercase()))
    } else {
        Some(x.as_ref().cmp(y.as_ref()))
    }
}

/// A short, readable rendering of a value for explanations: strings quoted, long ones cut.
pub fn show(value: Option<&Value>) -> String {
    match value {
        None => "missing".into(),
        Some(value) => {
            let mut text = value.to_string();
            if text.chars().count() > 80 {
                text = text.chars().take(77).collect::<String>() + "...";
            }
            text
        }
    }
}

/// What kind of JSON value this is, as messages say it: `a string`, `an object`, `null`.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_strings_compare_as_numbers() {
        assert_eq!(
            compare(&json!("30"), &json!(30), false),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(&json!("100"), &json!("30"), false),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&json!("abc"), &json!("abd"), false),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(&json!("100"), &json!("3a"), false),
            Some(Ordering::Less)
        );
        assert!(loose_eq(&json!("SALE"), &json!("sale"), true));
        assert!(!loose_eq(&json!("SALE"), &json!("sale"), false));
        assert!(loose_eq(&json!(true), &json!("true"), false));
        // Ids past 2^53 compare exactly, not through floating point.
        assert!(!loose_eq(
            &json!("12345678901234567890"),
            &json!("12345678901234567891"),
            false
        ));
        assert!(loose_eq(
            &json!(9007199254740993u64),
            &json!("9007199254740993"),
            false
        ));
    }

    #[test]
    fn only_decimal_notation_is_numeric() {
        for yes in ["1", "-1.5", " 42 ", "2e3", ".5", "+7"] {
            assert!(numeric_str(yes).is_some(), "{yes}");
        }
        for no in ["", "inf", "NaN", "0x10", "1,000", "abc", "-", "e5"] {
            assert!(numeric_str(no).is_none(), "{no}");
        }
    }

    #[test]
    fn emptiness() {
        assert!(is_empty(None));
        assert!(is_empty(Some(&json!(null))));
        assert!(is_empty(Some(&json!(""))));
        assert!(!is_empty(Some(&json!(" "))));
        assert!(!is_empty(Some(&json!(0))));
    }
}
