//! Field types, field definitions and a database's schema.
//!
//! The nine default fields are fixed for every database; custom fields are added and
//! dropped through the database actor. A [`Schema`] is immutable once built: the actor
//! builds a new one and swaps it in, so readers hold a consistent schema for a whole
//! request without locking.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::value::{self, RawValue, Value};
use crate::error::{ErrorCode, Problem};

/// The type of a field; every stored value is checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A 64-bit signed integer.
    Integer,
    /// A finite 64-bit float.
    Float,
    /// Any UTF-8 string.
    String,
    /// A calendar date `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 instant, shown in UTC.
    DateTime,
    /// `true` or `false`.
    Boolean,
    /// One of the field's declared values.
    List,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A set of strings.
    Tags,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl FieldType {
    /// Every type, in documentation order.
    pub const ALL: &'static [FieldType] = &[
        FieldType::Integer,
        FieldType::Float,
        FieldType::String,
        FieldType::Date,
        FieldType::DateTime,
        FieldType::Boolean,
        FieldType::List,
        FieldType::Ip,
        FieldType::Tags,
        FieldType::Object,
        FieldType::Array,
    ];

    /// The type's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::String => "string",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Boolean => "boolean",
            FieldType::List => "list",
            FieldType::Ip => "ip",
            FieldType::Tags => "tags",
            FieldType::Object => "object",
            FieldType::Array => "array",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field's number within its database: what profiles store in place of its name.
///
/// Given when the field is added and never given again, not even to a field added later
/// under the same name: a value stored under a dropped field's number can never be read
/// as another field's. The nine default fields are 0 to 8, in schema order, in every
/// database; custom fields follow in the order they were added, so profiles that keep
/// their values in number order keep them in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldId(pub u32);

/// How many field numbers a database may give over its life. Bounds the schema's index
/// by number (4 MiB at most), which a corrupt record on disk must not make huge.
pub const MAX_FIELD_NUMBERS: u32 = 1 << 20;

impl FieldId {
    /// The default field `email`.
    pub const EMAIL: FieldId = FieldId(2);
    /// The default field `phone`.
    pub const PHONE: FieldId = FieldId(3);
    /// The default field `registered_at`.
    pub const REGISTERED_AT: FieldId = FieldId(8);
}

/// One field of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// Its number, which profiles store (see [`FieldId`]); given by the schema it joins.
    pub id: FieldId,
    /// The name.
    pub name: Arc<str>,
    /// The type.
    pub ty: FieldType,
    /// Shown in a profile that has no value for the field.
    pub default: Option<Value>,
    /// A write that leaves the field without a value (and no default) is refused.
    pub required: bool,
    /// Shown on the subscription manager page.
    pub subscription_manager: bool,
    /// The declared values of a `list`.
    pub values: Vec<String>,
    /// One of the nine default fields, which cannot change.
    pub builtin: bool,
}

impl FieldDef {
    /// A custom field with no default, not required.
    pub fn custom(name: &str, ty: FieldType) -> Self {
        FieldDef {
            // The schema it is added to numbers it.
            id: FieldId(u32::MAX),
            name: name.into(),
            ty,
            default: None,
            required: false,
            subscription_manager: false,
            values: Vec::new(),
            builtin: false,
        }
    }

    fn builtin(name: &str, ty: FieldType) -> Self {
        FieldDef {
            builtin: true,
            ..Self::custom(name, ty)
        }
    }
}

/// The body that creates a custom field (`POST .../fields`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// `[a-z][a-z0-9_]{0,63}`, not a reserved document member.
    pub name: String,
    /// The type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Default value, checked against the type.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub default: Option<serde_json::Value>,
    /// Refuse writes that leave the field empty.
    #[serde(default)]
    pub required: bool,
    /// Show on the subscription manager page.
    #[serde(default)]
    pub subscription_manager: bool,
    /// Declared values (required for `list`, refused otherwise).
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

/// Names a custom field may not take: they are top-level members of the profile
/// document, so a projection such as `?fields=stats` must stay unambiguous.
pub const RESERVED_NAMES: &[&str] = &[
    "id",
    "customer_id",
    "fields",
    "identifiers",
    "tags",
    "contacts",
    "channels",
    "subscriptions",
    "stats",
    "rfm",
    "interests",
    "favorite_stores",
    "abandoned_cart",
    "bonuses",
    "segments",
    "created_at",
    "updated_at",
];

/// Whether a name has the shape of a field name: `[a-z][a-z0-9_]{0,63}`.
pub fn is_field_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() <= 64
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Checks a field name: lowercase identifier, at most 64 characters.
pub fn check_field_name(name: &str) -> Result<(), Problem> {
    if !is_field_name(name) {
        return Err(Problem::new(
            ErrorCode::FieldNameInvalid,
            format!(
                "`{name}` is not a field name: use a lowercase letter, then lowercase letters, digits or `_` (64 at most)"
            ),
        )
        .with("field", name));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Problem::new(
            ErrorCode::FieldNameInvalid,
            format!("`{name}` is a member of the profile document; choose another name"),
        )
        .with("field", name));
    }
    Ok(())
}

impl FieldSpec {
    /// Validates the spec into a definition.
    pub fn into_def(self) -> Result<FieldDef, Problem> {
        check_field_name(&self.name)?;
        let invalid = |detail: String| {
            Problem::new(ErrorCode::FieldDefinitionInvalid, detail).with("field", self.name.clone())
        };
        let values = match (self.ty, self.values.clone()) {
            (FieldType::List, Some(v)) if !v.is_empty() => {
                let mut seen = std::collections::HashSet::new();
                for x in &v {
                    if x.is_empty() || !seen.insert(x) {
                        return Err(invalid(format!(
                            "declared values must be distinct and non-empty; `{x}` is not"
                        )));
                    }
                }
                v
            }
            (FieldType::List, _) => {
                return Err(invalid(
                    "a `list` field needs `values`: the declared values it may take".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(invalid(format!(
                    "`values` is only for `list` fields, not `{}`",
                    self.ty
                )));
            }
            (_, None) => Vec::new(),
        };
        let mut def = FieldDef {
            // The schema it is added to numbers it.
            id: FieldId(u32::MAX),
            name: self.name.as_str().into(),
            ty: self.ty,
            default: None,
            required: self.required,
            subscription_manager: self.subscription_manager,
            values,
            builtin: false,
        };
        if let Some(raw) = self.default {
            def.default = value::parse(&def, &RawValue::Json(raw)).map_err(Problem::from)?;
        }
        Ok(def)
    }
}

/// A database's fields: the default ones first, then custom ones in creation order.
#[derive(Debug, Clone)]
pub struct Schema {
    fields: Vec<FieldDef>,
    by_name: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    /// Position in `fields` by field number; `u32::MAX` for numbers of dropped fields.
    by_id: Vec<u32>,
    /// The number the next field added gets.
    next_id: u32,
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        // The indexes are derived from the fields.
        self.fields == other.fields && self.next_id == other.next_id
    }
}

impl Default for Schema {
    fn default() -> Self {
        use FieldType::*;
        let mut gender = FieldDef::builtin("gender", List);
        gender.values = ["female", "male", "other", "unknown"]
            .map(std::string::String::from)
            .to_vec();
        let mut fields = vec![
            FieldDef::builtin("first_name", String),
            FieldDef::builtin("last_name", String),
            FieldDef::builtin("email", String),
            FieldDef::builtin("phone", String),
            FieldDef::builtin("birth_date", Date),
            gender,
            FieldDef::builtin("country", String),
            FieldDef::builtin("city", String),
            FieldDef::builtin("registered_at", DateTime),
        ];
        for (i, f) in fields.iter_mut().enumerate() {
            f.id = FieldId(i as u32);
        }
        let next_id = fields.len() as u32;
        Schema::from_fields(fields, next_id)
    }
}

/// Why persisted fields do not make a schema.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RestoreError(String);

impl Schema {
    fn from_fields(fields: Vec<FieldDef>, next_id: u32) -> Self {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let mut by_id = vec![u32::MAX; next_id as usize];
        for (i, f) in fields.iter().enumerate() {
            by_id[f.id.0 as usize] = i as u32;
        }
        Schema {
            fields,
            by_name,
            by_id,
            next_id,
        }
    }

    /// A schema of exactly these fields and next field number, as persisted: the numbers
    /// must ascend, stay below `next_id`, and number the default fields as every schema
    /// does (names and types were checked when each field was added).
    pub fn restore(fields: Vec<FieldDef>, next_id: u32) -> Result<Self, RestoreError> {
        if next_id > MAX_FIELD_NUMBERS {
            return Err(RestoreError(format!(
                "next field number {next_id} is past the most a database gives ({MAX_FIELD_NUMBERS})"
            )));
        }
        // The default fields first, each under its number (contacts read `email` and
        // `phone` by theirs), and no other field marked as one.
        let defaults = Schema::default();
        let nine = defaults.fields.len();
        let as_defaults = fields.len() >= nine
            && fields[..nine]
                .iter()
                .zip(defaults.fields())
                .all(|(f, d)| f.name == d.name && f.id == d.id && f.builtin)
            && fields[nine..].iter().all(|f| !f.builtin);
        if !as_defaults {
            return Err(RestoreError(
                "the nine default fields are not first, under their numbers".into(),
            ));
        }
        for (i, f) in fields.iter().enumerate() {
            if f.id.0 >= next_id || (i > 0 && f.id <= fields[i - 1].id) {
                return Err(RestoreError(format!(
                    "field `{}` has number {}, out of order or not below {next_id}",
                    f.name, f.id.0
                )));
            }
        }
        Ok(Schema::from_fields(fields, next_id))
    }

    /// A schema persisted before fields had numbers (snapshot format 3 and older, WAL
    /// format 1): a field `prior` has keeps its number, a new one takes the next. With
    /// no `prior` (a snapshot's schema) fields are numbered by position, which gives the
    /// default fields their numbers.
    pub fn restore_unnumbered(
        mut fields: Vec<FieldDef>,
        prior: Option<&Schema>,
    ) -> Result<Self, RestoreError> {
        let mut next_id = prior.map_or(0, |p| p.next_id);
        for f in &mut fields {
            f.id = match prior.and_then(|p| p.get(&f.name)) {
                Some(old) => old.id,
                None => {
                    next_id += 1;
                    FieldId(next_id - 1)
                }
            };
        }
        Schema::restore(fields, next_id)
    }

    /// The number the next field added gets.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// A field by number; `None` for a dropped field's.
    #[inline]
    pub fn by_id(&self, id: FieldId) -> Option<&FieldDef> {
        match self.by_id.get(id.0 as usize) {
            Some(&i) if i != u32::MAX => Some(&self.fields[i as usize]),
            _ => None,
        }
    }

    /// A field's number by name.
    #[inline]
    pub fn id_of(&self, name: &str) -> Option<FieldId> {
        self.get(name).map(|d| d.id)
    }

    /// All fields, default fields first.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// A field by name.
    pub fn get(&self, name: &str) -> Option<&FieldDef> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    /// The schema with one more custom field.
    pub fn with_field(&self, def: FieldDef) -> Result<Schema, Problem> {
        if let Some(old) = self.get(&def.name) {
            let code = if old.builtin {
                ErrorCode::FieldIsDefault
            } else {
                ErrorCode::FieldExists
            };
            return Err(
                Problem::new(code, format!("field `{}` exists already", def.name))
                    .with("field", def.name.to_string()),
            );
        }
        if self.next_id >= MAX_FIELD_NUMBERS {
            return Err(Problem::new(
                ErrorCode::FieldNumbersExhausted,
                format!(
                    "this database has given all {MAX_FIELD_NUMBERS} field numbers; \
                     a field's number is never given again, even after it is dropped"
                ),
            ));
        }
        let mut def = def;
        def.id = FieldId(self.next_id);
        let next_id = self.next_id + 1;
        let mut fields = self.fields.clone();
        fields.push(def);
        Ok(Schema::from_fields(fields, next_id))
    }

    /// The schema without a custom field.
    pub fn without_field(&self, name: &str) -> Result<Schema, Problem> {
        match self.get(name) {
            None => Err(
                Problem::new(ErrorCode::FieldNotFound, format!("no field `{name}`"))
                    .with("field", name),
            ),
            Some(f) if f.builtin => Err(Problem::new(
                ErrorCode::FieldIsDefault,
                format!("`{name}` is a default field: it cannot be deleted or retyped"),
            )
            .with("field", name)),
            Some(_) => Ok(Schema::from_fields(
                self.fields
                    .iter()
                    .filter(|f| &*f.name != name)
                    .cloned()
                    .collect(),
                self.next_id,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fields_are_fixed() {
        let s = Schema::default();
        assert_eq!(s.fields().len(), 9);
        let err = s.without_field("email").unwrap_err();
        assert_eq!(err.code, ErrorCode::FieldIsDefault);
        let retype = FieldDef::custom("email", FieldType::Integer);
        assert_eq!(
            s.with_field(retype).unwrap_err().code,
            ErrorCode::FieldIsDefault
        );
    }

    fn custom(name: &str) -> FieldDef {
        FieldDef::custom(name, FieldType::String)
    }

    #[test]
    fn field_numbers_are_never_given_twice() {
        let s = Schema::default();
        assert_eq!(s.id_of("email"), Some(FieldId::EMAIL));
        assert_eq!(s.id_of("phone"), Some(FieldId::PHONE));
        assert_eq!(s.id_of("registered_at"), Some(FieldId::REGISTERED_AT));
        let s = s.with_field(custom("a")).unwrap();
        let s = s.with_field(custom("b")).unwrap();
        assert_eq!(
            (s.id_of("a"), s.id_of("b")),
            (Some(FieldId(9)), Some(FieldId(10)))
        );
        // Dropped, then added again under its name: a number of its own.
        let s = s.without_field("a").unwrap();
        assert_eq!(s.by_id(FieldId(9)), None);
        let s = s.with_field(custom("a")).unwrap();
        assert_eq!(s.id_of("a"), Some(FieldId(11)));
        assert_eq!(s.by_id(FieldId(11)).unwrap().name.as_ref(), "a");
        assert_eq!(
            Schema::restore(s.fields().to_vec(), s.next_id()).unwrap(),
            s
        );
    }

    #[test]
    fn restoring_checks_the_numbers() {
        let s = Schema::default().with_field(custom("a")).unwrap();
        let fields = s.fields().to_vec();
        assert!(Schema::restore(fields.clone(), 10).is_ok());
        // Not below the next number, out of order, past the bound, a default missing.
        assert!(Schema::restore(fields.clone(), 9).is_err());
        let mut swapped = fields.clone();
        swapped.swap(0, 1);
        assert!(Schema::restore(swapped, 10).is_err());
        assert!(Schema::restore(fields.clone(), MAX_FIELD_NUMBERS + 1).is_err());
        assert!(Schema::restore(fields[1..].to_vec(), 10).is_err());
        // A full database refuses another field with its own code.
        let full = Schema::restore(fields, MAX_FIELD_NUMBERS).unwrap();
        assert_eq!(
            full.with_field(custom("b")).unwrap_err().code,
            ErrorCode::FieldNumbersExhausted
        );
    }

    #[test]
    fn unnumbered_schemas_keep_the_numbers_they_had() {
        let unnumbered = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| FieldDef {
                    id: FieldId(0),
                    ..f.clone()
                })
                .collect::<Vec<_>>()
        };
        // A snapshot's: by position.
        let s = Schema::default().with_field(custom("a")).unwrap();
        let snap = Schema::restore_unnumbered(unnumbered(&s), None).unwrap();
        assert_eq!(snap, s);
        // The log's after it, record by record: a field it had keeps its number, a new
        // one takes the next, and one added again after a drop is new.
        let mut prior = snap;
        let mut live = s.clone();
        for step in ["-a", "b", "a", "c"] {
            live = match step.strip_prefix('-') {
                Some(name) => live.without_field(name).unwrap(),
                None => live.with_field(custom(step)).unwrap(),
            };
            prior = Schema::restore_unnumbered(unnumbered(&live), Some(&prior)).unwrap();
            assert_eq!(prior, live, "after {step}");
        }
        assert_eq!(prior.id_of("a"), Some(FieldId(11)));
    }

    #[test]
    fn field_names_are_identifiers() {
        assert!(check_field_name("loyalty_score").is_ok());
        for bad in ["Loyalty", "1a", "a-b", "", "stats", "a b", &"a".repeat(65)] {
            assert!(check_field_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_check_defaults_and_values() {
        let spec = |json: serde_json::Value| serde_json::from_value::<FieldSpec>(json).unwrap();
        let ok = spec(serde_json::json!({"name":"score","type":"integer","default":0}));
        assert_eq!(ok.into_def().unwrap().default, Some(Value::Int(0)));
        let bad = spec(serde_json::json!({"name":"score","type":"integer","default":"x"}));
        assert_eq!(
            bad.into_def().unwrap_err().code,
            ErrorCode::FieldTypeMismatch
        );
        let list = spec(serde_json::json!({"name":"tier","type":"list"}));
        assert_eq!(
            list.into_def().unwrap_err().code,
            ErrorCode::FieldDefinitionInvalid
        );
        let list =
            spec(serde_json::json!({"name":"tier","type":"list","values":["a"],"default":"b"}));
        assert_eq!(
            list.into_def().unwrap_err().code,
            ErrorCode::FieldValueNotAllowed
        );
    }
}
