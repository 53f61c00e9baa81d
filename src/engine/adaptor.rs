//! Adaptors (docs/configuration.md): an event's data → the payload a receiver expects, field by field, in the
//! order written. Only mapped fields are sent; empty ones take their default; dates are
//! formatted per field; lookups and type coercion apply; problems become warnings.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::RenderScope;
use super::date::{DateFormat, parse_input};
use super::field::FieldRef;
use super::payload::Payload;
use super::template::TemplateId;
use super::value::{is_empty, numeric_str, text};
use crate::config::spec::FieldType;

/// A compiled adaptor.
#[derive(Debug)]
pub struct Adaptor {
    /// Its name.
    pub name: String,
    /// Mapped fields, in output order.
    pub fields: Vec<Field>,
    /// Constant (or templated) key-values added after the fields.
    pub extra: Vec<(KeyPath, Extra)>,
}

/// An output key split at its dots: `properties.firstname` → `[properties, firstname]`.
pub type KeyPath = Vec<String>;

/// Where a field's value comes from.
#[derive(Debug)]
pub enum Source {
    /// The first non-empty of these references.
    From(Vec<FieldRef>),
    /// A template's output.
    Template(TemplateId),
}

/// An `extra_fields` value.
#[derive(Debug)]
pub enum Extra {
    /// Sent as written.
    Const(Value),
    /// A string with template syntax, rendered per event.
    Template(TemplateId),
}

/// Date formatting of one field.
#[derive(Debug)]
pub struct DateSpec {
    /// The compiled format.
    pub format: DateFormat,
    /// Output zone.
    pub timezone: Tz,
    /// Zone of inputs without an offset.
    pub input_timezone: Tz,
}

/// One compiled field.
#[derive(Debug)]
pub struct Field {
    /// Its first output key, to name it in warnings.
    pub label: String,
    /// Where its value comes from.
    pub source: Source,
    /// Output keys.
    pub to: Vec<KeyPath>,
    /// Used when the value is empty.
    pub default: Option<Value>,
    /// Date formatting.
    pub date: Option<DateSpec>,
    /// Lookup table, by the value's text.
    pub values: Option<HashMap<String, Value>>,
    /// Type coercion.
    pub kind: Option<FieldType>,
    /// Leave the field out when empty (else "" or null).
    pub omit_empty: bool,
}

impl Adaptor {
    /// Builds the payload for one event. Warnings name the field and the value. The
    /// payload borrows what it can from the event and the adaptor (nothing is copied for
    /// a value sent as it came).
    pub fn build<'a>(
        &'a self,
        scope: &RenderScope<'a>,
        now: DateTime<Utc>,
        warnings: &mut Vec<String>,
    ) -> Payload<'a> {
        let mut out = Payload::new();
        for field in &self.fields {
            if let Some(value) = field.value(scope, now, warnings)
                && let Some((last, others)) = field.to.split_last()
            {
                for key in others {
                    out.insert(key, value.clone());
                }
                out.insert(last, value);
            }
        }
        for (key, extra) in &self.extra {
            let value = match extra {
                Extra::Const(v) => Cow::Borrowed(v),
                Extra::Template(id) => match scope.render(*id) {
                    Ok(text) => Cow::Owned(Value::String(text)),
                    Err(e) => {
                        warnings.push(format!(
                            "extra field {}: template failed: {e}",
                            key.join(".")
                        ));
                        continue;
                    }
                },
            };
            out.insert(key, value);
        }
        out
    }
}

impl Field {
    /// The value to send, or None to leave the field out.
    fn value<'a>(
        &'a self,
        scope: &RenderScope<'a>,
        now: DateTime<Utc>,
        warnings: &mut Vec<String>,
    ) -> Option<Cow<'a, Value>> {
        let mut value = self.read(scope, warnings);
        if let (Some(table), Some(v)) = (&self.values, &value)
            && let Some(mapped) = table.get(text(v).as_ref())
        {
            value = Some(Cow::Borrowed(mapped));
        }
        if let (Some(date), Some(v)) = (&self.date, &value) {
            value = match parse_input(v, date.input_timezone) {
                Some(at) => Some(Cow::Owned(Value::String(date.format.format(
                    at,
                    date.timezone,
                    now,
                )))),
                None => {
                    warnings.push(format!(
                        "field {}: {} is not a date; treated as empty",
                        self.label, v
                    ));
                    None
                }
            };
        }
        if let (Some(kind), Some(v)) = (self.kind, &value) {
            value = match coerce(v, kind) {
                Ok(coerced) if coerced == **v => value,
                Ok(coerced) => Some(Cow::Owned(coerced)),
                Err(why) => {
                    warnings.push(format!("field {}: {why}; treated as empty", self.label));
                    None
                }
            };
        }
        if is_empty(value.as_deref()) {
            value = self.default.as_ref().map(|d| match self.kind {
                Some(kind) => match coerce(d, kind) {
                    Ok(coerced) if coerced != *d => Cow::Owned(coerced),
                    _ => Cow::Borrowed(d),
                },
                None => Cow::Borrowed(d),
            });
        }
        if !is_empty(value.as_deref()) {
            return value;
        }
        if self.omit_empty {
            return None;
        }
        Some(Cow::Owned(match self.kind {
            None | Some(FieldType::String) => Value::String(String::new()),
            Some(_) => Value::Null,
        }))
    }

    /// The raw value: the first non-empty reference, or the template's output.
    fn read<'a>(
        &self,
        scope: &RenderScope<'a>,
        warnings: &mut Vec<String>,
    ) -> Option<Cow<'a, Value>> {
        match &self.source {
            Source::From(refs) => {
                let mut found = None;
                for r in refs {
                    let v = r.resolve(scope.event);
                    if !is_empty(v.as_deref()) {
                        return v;
                    }
                    found = found.or(v);
                }
                found
            }
            Source::Template(id) => match scope.render(*id) {
                Ok(text) => Some(Cow::Owned(Value::String(text))),
                Err(e) => {
                    warnings.push(format!(
                        "field {}: template failed: {e}; treated as empty",
                        self.label
                    ));
                    None
                }
            },
        }
    }
}

/// Converts a value to `kind`; the error says what could not be converted.
pub fn coerce(value: &Value, kind: FieldType) -> Result<Value, String> {
    let fail = |what: &str| Err(format!("{value} is not {what}"));
    match kind {
        FieldType::String => Ok(match value {
            Value::String(_) | Value::Null => value.clone(),
            other => Value::String(text(other).into_owned()),
        }),
        FieldType::Number => match value {
            Value::Number(_) | Value::Null => Ok(value.clone()),
            Value::String(s) if s.is_empty() => Ok(value.clone()),
            Value::String(s) => match (exact_integer(value), numeric_str(s)) {
                (Some(i), _) => Ok(i),
                (None, Some(n)) => Ok(number_value(n)),
                (None, None) => fail("a number"),
            },
            Value::Bool(b) => Ok(Value::from(u8::from(*b))),
            _ => fail("a number"),
        },
        FieldType::Integer => {
            if let Some(i) = exact_integer(value) {
                return Ok(i);
            }
            let n = match value {
                Value::Null => return Ok(Value::Null),
                Value::String(s) if s.is_empty() => return Ok(value.clone()),
                Value::Number(n) => n.as_f64(),
                Value::String(s) => numeric_str(s),
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            };
            match n {
                Some(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(Value::from(n as i64)),
                _ => fail("a whole number"),
            }
        }
        FieldType::Boolean => match value {
            Value::Bool(_) | Value::Null => Ok(value.clone()),
            Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Value::Bool(true)),
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Value::Bool(false)),
            Value::String(s) if s.is_empty() => Ok(value.clone()),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "on" => Ok(Value::Bool(true)),
                "false" | "no" | "n" | "0" | "off" => Ok(Value::Bool(false)),
                _ => fail("a boolean (true/false, yes/no, 1/0, on/off)"),
            },
            _ => fail("a boolean"),
        },
        FieldType::Json => match value {
            Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
            Value::String(s) => serde_json::from_str(s).or_else(|_| fail("valid JSON")),
            other => Ok(other.clone()),
        },
    }
}

/// A whole number that fits JSON's integers (i64 or u64), read exactly.
fn exact_integer(value: &Value) -> Option<Value> {
    let i = super::value::integer(value)?;
    i64::try_from(i)
        .map(Value::from)
        .ok()
        .or_else(|| u64::try_from(i).ok().map(Value::from))
}

/// A number as JSON: integral values without a fraction (`30`, not `30.0`).
fn number_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coercion() {
        assert_eq!(coerce(&json!("30"), FieldType::Number), Ok(json!(30)));
        assert_eq!(coerce(&json!("2.5"), FieldType::Number), Ok(json!(2.5)));
        assert_eq!(coerce(&json!("45"), FieldType::Integer), Ok(json!(45)));
        assert_eq!(
            coerce(&json!("12345678901234567"), FieldType::Integer),
            Ok(json!(12345678901234567u64))
        );
        assert_eq!(
            coerce(&json!("12345678901234567"), FieldType::Number),
            Ok(json!(12345678901234567u64))
        );
        assert!(coerce(&json!("4.5"), FieldType::Integer).is_err());
        assert_eq!(coerce(&json!(12), FieldType::String), Ok(json!("12")));
        assert_eq!(coerce(&json!("Yes"), FieldType::Boolean), Ok(json!(true)));
        assert_eq!(
            coerce(&json!("{\"a\":1}"), FieldType::Json),
            Ok(json!({"a": 1}))
        );
        assert_eq!(
            coerce(&json!("abc"), FieldType::Number),
            Err("\"abc\" is not a number".into())
        );
    }
}
