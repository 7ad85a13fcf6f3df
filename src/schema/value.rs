//! Typed field values and how raw input becomes one.
//!
//! A [`Value`] is what a profile stores for a field: already checked against the field's
//! type, so readers never re-validate. Raw input arrives as JSON (the API, JSON imports)
//! or as text (CSV cells); [`parse`] turns either into a `Value` for a [`FieldDef`], or
//! says exactly why not. Pure functions, no I/O.

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::field::{FieldDef, FieldType};
use crate::error::{ErrorCode, Problem};

/// A field value, typed by its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `integer`.
    Int(i64),
    /// `float` (always finite).
    Float(f64),
    /// `string`, and the chosen declared value of a `list`.
    Str(CompactString),
    /// `boolean`.
    Bool(bool),
    /// `date`, a calendar day.
    Date(Date),
    /// `datetime`, an instant shown in UTC.
    DateTime(Timestamp),
    /// `ip`, v4 or v6.
    Ip(IpAddr),
    /// `tags`: distinct, in first-given order.
    Tags(Vec<CompactString>),
    /// `object` and `array`: JSON kept as given (shared, never mutated in place).
    Json(Arc<serde_json::Value>),
}

/// Raw input for one field, before the schema types it.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A JSON value from an API body or a JSON import.
    Json(serde_json::Value),
    /// A text cell, as in CSV: numbers, booleans and dates are read from text. Inline up
    /// to 24 bytes, as most cells are: an import makes one a cell.
    Text(CompactString),
}

impl RawValue {
    /// The value as text, if it is a text cell or a JSON string and not blank (what an
    /// email or phone value must be to name a contact).
    pub fn text(&self) -> Option<&str> {
        let t = match self {
            RawValue::Text(t) => t.as_str(),
            RawValue::Json(serde_json::Value::String(t)) => t.as_str(),
            RawValue::Json(_) => return None,
        };
        (!t.trim().is_empty()).then_some(t)
    }
}

/// Why a raw value does not fit its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// Wrong JSON type or unparseable text for the field type.
    #[error("field `{field}` is {ty}: {detail}")]
    TypeMismatch {
        /// The field.
        field: String,
        /// Its type name.
        ty: &'static str,
        /// What was wrong with the value.
        detail: String,
    },
    /// A `list` value outside the declared values.
    #[error("field `{field}` takes one of {allowed:?}; `{value}` is not declared")]
    NotAllowed {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// The declared values.
        allowed: Vec<String>,
    },
}

impl From<ValueError> for Problem {
    fn from(e: ValueError) -> Self {
        let field = match &e {
            ValueError::TypeMismatch { field, .. } | ValueError::NotAllowed { field, .. } => {
                field.clone()
            }
        };
        let code = match e {
            ValueError::TypeMismatch { .. } => ErrorCode::FieldTypeMismatch,
            ValueError::NotAllowed { .. } => ErrorCode::FieldValueNotAllowed,
        };
        Problem::new(code, e.to_string()).with("field", field)
    }
}

/// Parses raw input for `def`. `Ok(None)` means "no value" (JSON `null`, an empty cell).
pub fn parse(def: &FieldDef, raw: &RawValue) -> Result<Option<Value>, ValueError> {
    match raw {
        RawValue::Json(serde_json::Value::Null) => Ok(None),
        RawValue::Json(v) => from_json(def, v).map(Some),
        RawValue::Text(t) if t.is_empty() => Ok(None),
        RawValue::Text(t) => from_text(def, t).map(Some),
    }
}

fn mismatch(def: &FieldDef, detail: impl Into<String>) -> ValueError {
    ValueError::TypeMismatch {
        field: def.name.to_string(),
        ty: def.ty.as_str(),
        detail: detail.into(),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn from_json(def: &FieldDef, v: &serde_json::Value) -> Result<Value, ValueError> {
    use serde_json::Value as J;
    let expected = |what: &str| mismatch(def, format!("expected {what}, got {}", json_kind(v)));
    match (def.ty, v) {
        (FieldType::Integer, J::Number(n)) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| mismatch(def, format!("{n} is not a 64-bit integer"))),
        (FieldType::Integer, _) => Err(expected("an integer")),
        (FieldType::Float, J::Number(n)) => {
            Ok(Value::Float(n.as_f64().unwrap_or(f64::NAN))).and_then(|v| finite(def, v))
        }
        (FieldType::Float, _) => Err(expected("a number")),
        (FieldType::Boolean, J::Bool(b)) => Ok(Value::Bool(*b)),
        (FieldType::Boolean, _) => Err(expected("true or false")),
        (FieldType::Tags, J::Array(items)) => {
            let mut tags = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    J::String(s) => tags.push(s.as_str()),
                    other => {
                        return Err(mismatch(
                            def,
                            format!("tags are strings, got {}", json_kind(other)),
                        ));
                    }
                }
            }
            tags_value(def, tags)
        }
        (FieldType::Tags, _) => Err(expected("an array of strings")),
        (FieldType::Object, J::Object(_)) => Ok(Value::Json(Arc::new(v.clone()))),
        (FieldType::Object, _) => Err(expected("an object")),
        (FieldType::Array, J::Array(_)) => Ok(Value::Json(Arc::new(v.clone()))),
        (FieldType::Array, _) => Err(expected("an array")),
        (_, J::String(s)) => from_str_typed(def, s),
        (ty, _) => Err(expected(match ty {
            FieldType::Date => "a date string YYYY-MM-DD",
            FieldType::DateTime => "an RFC 3339 datetime string",
            FieldType::Ip => "an IP address string",
            FieldType::List => "one of the declared values",
            _ => "a string",
        })),
    }
}

fn from_text(def: &FieldDef, t: &str) -> Result<Value, ValueError> {
    match def.ty {
        FieldType::Integer => t
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| mismatch(def, format!("`{t}` is not an integer"))),
        FieldType::Float => t
            .trim()
            .parse::<f64>()
            .map_err(|_| mismatch(def, format!("`{t}` is not a number (use `.` for decimals)")))
            .and_then(|f| finite(def, Value::Float(f))),
        FieldType::Boolean => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            _ => Err(mismatch(def, format!("`{t}` is not true/false/1/0/yes/no"))),
        },
        FieldType::Tags => tags_value(def, t.split(['|', ',']).map(str::trim).collect()),
        FieldType::Object | FieldType::Array => {
            let v: serde_json::Value = serde_json::from_str(t)
                .map_err(|e| mismatch(def, format!("not valid JSON text: {e}")))?;
            from_json(def, &v)
        }
        _ => from_str_typed(def, t),
    }
}

/// String-shaped types: the same rules whether the string came from JSON or a cell.
fn from_str_typed(def: &FieldDef, s: &str) -> Result<Value, ValueError> {
    match def.ty {
        FieldType::String => Ok(Value::Str(s.into())),
        FieldType::List => {
            if def.values.iter().any(|v| v == s) {
                Ok(Value::Str(s.into()))
            } else {
                Err(ValueError::NotAllowed {
                    field: def.name.to_string(),
                    value: s.to_owned(),
                    allowed: def.values.clone(),
                })
            }
        }
        FieldType::Date => parse_date(s).map(Value::Date).map_err(|d| mismatch(def, d)),
        FieldType::DateTime => parse_datetime(s)
            .map(Value::DateTime)
            .map_err(|d| mismatch(def, d)),
        FieldType::Ip => s
            .trim()
            .parse::<IpAddr>()
            .map(Value::Ip)
            .map_err(|_| mismatch(def, format!("`{s}` is not an IPv4 or IPv6 address"))),
        _ => Err(mismatch(
            def,
            format!("expected a {}, got a string", def.ty),
        )),
    }
}

fn finite(def: &FieldDef, v: Value) -> Result<Value, ValueError> {
    match v {
        Value::Float(f) if !f.is_finite() => Err(mismatch(def, "not a finite number")),
        v => Ok(v),
    }
}

fn tags_value(def: &FieldDef, raw: Vec<&str>) -> Result<Value, ValueError> {
    let mut tags: Vec<CompactString> = Vec::with_capacity(raw.len());
    for t in raw {
        if t.is_empty() {
            return Err(mismatch(def, "a tag cannot be empty"));
        }
        if !tags.iter().any(|x| x == t) {
            tags.push(t.into());
        }
    }
    Ok(Value::Tags(tags))
}

/// Parses a calendar date `YYYY-MM-DD`, refusing impossible days such as `2024-02-30`.
pub fn parse_date(s: &str) -> Result<Date, String> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(format!("`{s}` is not a date in the form YYYY-MM-DD"));
    }
    s.parse::<Date>()
        .map_err(|_| format!("`{s}` is not a calendar date"))
}

/// Parses an RFC 3339 datetime with an offset (`Z` or `±hh:mm`); the instant is kept.
pub fn parse_datetime(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|_| {
        format!("`{s}` is not an RFC 3339 datetime with a UTC offset, like 2024-03-01T10:00:00Z")
    })
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Date(d) => s.collect_str(d),
            Value::DateTime(t) => s.collect_str(t),
            Value::Ip(ip) => s.collect_str(ip),
            Value::Tags(tags) => {
                let mut seq = s.serialize_seq(Some(tags.len()))?;
                for t in tags {
                    seq.serialize_element(t.as_str())?;
                }
                seq.end()
            }
            Value::Json(v) => v.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn def(ty: FieldType) -> FieldDef {
        FieldDef::custom("f", ty)
    }

    fn json(ty: FieldType, v: serde_json::Value) -> Result<Option<Value>, ValueError> {
        parse(&def(ty), &RawValue::Json(v))
    }

    #[test]
    fn dates_refuse_impossible_days() {
        assert!(json(FieldType::Date, "2024-02-29".into()).is_ok());
        let err = json(FieldType::Date, "2024-02-30".into()).unwrap_err();
        assert!(err.to_string().contains("2024-02-30"), "{err}");
        assert!(json(FieldType::Date, "2024-2-3".into()).is_err());
        assert!(json(FieldType::Date, "2024-02-03T00:00:00Z".into()).is_err());
    }

    #[test]
    fn datetimes_are_normalized_to_utc() {
        let v = json(FieldType::DateTime, "2024-03-01T12:00:00+02:00".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            "\"2024-03-01T10:00:00Z\""
        );
        assert!(json(FieldType::DateTime, "2024-03-01T12:00:00".into()).is_err());
    }

    #[test]
    fn json_types_are_strict() {
        assert!(json(FieldType::Integer, "7".into()).is_err());
        assert!(json(FieldType::Integer, 7.5.into()).is_err());
        assert_eq!(
            json(FieldType::Integer, 7.into()).unwrap(),
            Some(Value::Int(7))
        );
        assert!(json(FieldType::Boolean, "true".into()).is_err());
        assert!(json(FieldType::Ip, "300.1.1.1".into()).is_err());
        assert!(json(FieldType::Ip, "::1".into()).is_ok());
        assert!(json(FieldType::Object, serde_json::json!([1])).is_err());
        assert_eq!(
            json(FieldType::String, serde_json::Value::Null).unwrap(),
            None
        );
    }

    #[test]
    fn list_values_must_be_declared() {
        let mut d = def(FieldType::List);
        d.values = vec!["gold".into(), "silver".into()];
        assert!(parse(&d, &RawValue::Json("gold".into())).is_ok());
        let err = parse(&d, &RawValue::Json("bronze".into())).unwrap_err();
        assert!(matches!(err, ValueError::NotAllowed { .. }));
    }

    #[test]
    fn text_cells_follow_csv_rules() {
        let t = |ty, s: &str| parse(&def(ty), &RawValue::Text(s.into()));
        assert_eq!(
            t(FieldType::Boolean, "yes").unwrap(),
            Some(Value::Bool(true))
        );
        assert_eq!(t(FieldType::Integer, "").unwrap(), None);
        assert_eq!(t(FieldType::Float, "2.5").unwrap(), Some(Value::Float(2.5)));
        assert!(t(FieldType::Float, "2,5").is_err());
        assert_eq!(
            t(FieldType::Tags, "a|b,a").unwrap(),
            Some(Value::Tags(vec!["a".into(), "b".into()]))
        );
    }

    proptest! {
        #[test]
        fn any_valid_date_round_trips(y in 1i16..9999, m in 1i8..=12, d in 1i8..=31) {
            let s = format!("{y:04}-{m:02}-{d:02}");
            let real = Date::new(y, m, d).is_ok();
            let parsed = parse_date(&s);
            prop_assert_eq!(parsed.is_ok(), real);
            if let Ok(date) = parsed {
                prop_assert_eq!(date.to_string(), s);
            }
        }

        #[test]
        fn text_parsing_never_panics(s in ".*") {
            for ty in FieldType::ALL {
                let _ = parse(&def(*ty), &RawValue::Text(s.as_str().into()));
                let _ = parse(&def(*ty), &RawValue::Json(s.clone().into()));
            }
        }

        #[test]
        fn integers_round_trip_through_text(i in any::<i64>()) {
            let v = parse(&def(FieldType::Integer), &RawValue::Text(i.to_string().into())).unwrap();
            prop_assert_eq!(v, Some(Value::Int(i)));
        }
    }
}
