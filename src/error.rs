//! Error codes and the problem document every failure becomes.
//!
//! Owns the one table of stable machine codes (`code`, HTTP status, title) and
//! [`Problem`], the RFC 9457 body that the HTTP edge renders. Each area keeps its own
//! `thiserror` enum (`schema::ValueError`, `db::WriteError`, ...) and says which
//! [`ErrorCode`] each variant is; the conversion into a [`Problem`] happens once, here.
//! Pure data: no I/O, no framework types, usable from every module.

use std::fmt;

use serde_json::{Map, Value};

macro_rules! codes {
    ($($variant:ident => ($code:literal, $status:literal, $title:literal),)*) => {
        /// A stable, machine-readable error code; never renamed once shipped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $(#[doc = $title] $variant,)* }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code named `s`, if there is one.
            pub fn parse(s: &str) -> Option<ErrorCode> {
                ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
            }

            /// The snake_case code clients match on.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// A short human title, the same for every occurrence of the code.
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }
        }
    };
}

codes! {
    Unauthorized => ("unauthorized", 401, "Missing or unknown API key"),
    Forbidden => ("forbidden", 403, "The key lacks the right for this action"),
    RouteNotFound => ("route_not_found", 404, "No such route"),
    MethodNotAllowed => ("method_not_allowed", 405, "Method not allowed on this route"),
    InvalidJson => ("invalid_json", 400, "The body is not valid JSON"),
    InvalidBody => ("invalid_body", 400, "The body does not have the expected shape"),
    UnsupportedMediaType => ("unsupported_media_type", 415, "Unsupported content type"),
    PayloadTooLarge => ("payload_too_large", 413, "The body is larger than allowed"),
    InvalidQuery => ("invalid_query", 400, "A query parameter is invalid"),
    CursorInvalid => ("cursor_invalid", 400, "The paging cursor is invalid"),
    DatabaseNotFound => ("database_not_found", 404, "No such database"),
    DatabaseExists => ("database_exists", 409, "A database with this name exists"),
    DatabaseNameInvalid => ("database_name_invalid", 400, "Invalid database name"),
    ConsentRequired => ("consent_required", 400, "Consent confirmation is required"),
    SettingInvalid => ("setting_invalid", 400, "A database setting is invalid"),
    FieldUnknown => ("field_unknown", 400, "The field is not in the database schema"),
    FieldNotFound => ("field_not_found", 404, "No such field"),
    FieldExists => ("field_exists", 409, "A field with this name exists"),
    FieldNumbersExhausted => ("field_numbers_exhausted", 409, "The database has given every field number it may"),
    FieldNameInvalid => ("field_name_invalid", 400, "Invalid field name"),
    FieldDefinitionInvalid => ("field_definition_invalid", 400, "Invalid field definition"),
    FieldIsDefault => ("field_is_default", 409, "Default fields cannot be changed"),
    FieldTypeMismatch => ("field_type_mismatch", 400, "The value does not match the field type"),
    FieldValueNotAllowed => ("field_value_not_allowed", 400, "The value is not one of the declared values"),
    FieldRequired => ("field_required", 400, "A required field is missing"),
    ProfileNotFound => ("profile_not_found", 404, "No such profile"),
    CustomerIdInvalid => ("customer_id_invalid", 400, "Invalid customer id"),
    CustomerIdImmutable => ("customer_id_immutable", 400, "The customer id cannot change"),
    IdentifierInvalid => ("identifier_invalid", 400, "Invalid identifier"),
    MergeTooLarge => ("merge_too_large", 409, "The update's identifiers name more profiles than one merge may join"),
    IdentifierConflict => ("identifier_conflict", 409, "The identifier belongs to another profile"),
    SubscriptionInvalid => ("subscription_invalid", 400, "Invalid subscription"),
    SuppressionListNotFound => ("suppression_list_not_found", 404, "No such suppression list"),
    SuppressionListNameInvalid => ("suppression_list_name_invalid", 400, "Invalid suppression list name"),
    SuppressionEntryInvalid => ("suppression_entry_invalid", 400, "A suppression entry is not an email, domain or phone of its kind"),
    SuppressionListInUse => ("suppression_list_in_use", 409, "The suppression list is attached to databases"),
    SuppressionListProtected => ("suppression_list_protected", 409, "The global stop list cannot be deleted"),
    QueryTimeout => ("query_timeout", 422, "The query ran past its time budget"),
    FilterInvalid => ("filter_invalid", 400, "The segment filter is not valid; `column` says where"),
    SegmentNotFound => ("segment_not_found", 404, "No such saved segment"),
    SegmentNameInvalid => ("segment_name_invalid", 400, "Invalid segment name"),
    SegmentInUse => ("segment_in_use", 409, "Other saved segments refer to this one"),
    SegmentsTooMany => ("segments_too_many", 409, "The database holds as many saved segments as it may"),
    FieldInUse => ("field_in_use", 409, "Saved segments read this field"),
    ChannelInvalid => ("channel_invalid", 400, "Not a channel (email, sms, push) or not one the resource sends on"),
    ProjectionInvalid => ("projection_invalid", 400, "Invalid field projection"),
    KeyNotFound => ("key_not_found", 404, "No such API key"),
    Unavailable => ("unavailable", 503, "The server cannot take this request now"),
    Starting => ("starting", 503, "The server is still loading its databases"),
    DatabaseUnavailable => ("database_unavailable", 503, "The database could not be loaded from disk"),
    StorageFailed => ("storage_failed", 503, "The database cannot write to disk and is read-only"),
    SnapshotFailed => ("snapshot_failed", 500, "The snapshot could not be written"),
    ImportEmpty => ("import_empty", 400, "The import file is empty"),
    ImportNoRows => ("import_no_rows", 400, "The import file has a header but no rows"),
    ImportHeaderInvalid => ("import_header_invalid", 400, "The import file's header row is not usable"),
    ImportColumnUnknown => ("import_column_unknown", 400, "A column is not a field of the database"),
    ImportRowWidth => ("import_row_width", 400, "A row has more or fewer cells than the header"),
    ImportEncodingInvalid => ("import_encoding_invalid", 400, "The text is not valid UTF-8"),
    ImportRowInvalid => ("import_row_invalid", 400, "A row does not have the expected shape"),
    ImportJsonSyntax => ("import_json_syntax", 400, "The JSON is malformed or cut short"),
    ImportLineTooLong => ("import_line_too_long", 400, "A line is longer than allowed"),
    ImportUploadFailed => ("import_upload_failed", 400, "The upload broke off before its end"),
    JobNotFound => ("job_not_found", 404, "No such import job"),
    ImportNotApplied => ("import_not_applied", 400, "An atomic import had refused rows, so nothing was applied"),
    ImportTooLarge => ("import_too_large", 413, "The import is larger than an atomic import may be"),
    ImportConflict => ("import_conflict", 409, "The database changed under an atomic import, so nothing was applied"),
    ImportInterrupted => ("import_interrupted", 503, "The server stopped before the import finished"),
    ImportsBusy => ("imports_busy", 429, "As many imports as allowed are running; retry later"),
    PluginInvalid => ("plugin_invalid", 400, "The upload is not a component of the plugin contract"),
    PluginNotFound => ("plugin_not_found", 404, "No such plugin"),
    PluginNameInvalid => ("plugin_name_invalid", 400, "Invalid plugin name"),
    PluginTimeout => ("plugin_timeout", 422, "The plugin ran past its time budget"),
    PluginMemoryExceeded => ("plugin_memory_exceeded", 422, "The plugin wanted more memory than its cap"),
    PluginTrap => ("plugin_trap", 422, "The plugin trapped or panicked"),
    PluginOutputTooLarge => ("plugin_output_too_large", 422, "The plugin returned more updates than a payload may"),
    PluginOutputInvalid => ("plugin_output_invalid", 422, "An update the plugin returned is malformed"),
    PluginPayloadRefused => ("plugin_payload_refused", 422, "The plugin refused the payload as a whole"),
    PluginRecordError => ("plugin_record_error", 422, "The plugin could not read one record of the payload"),
    EventsUnsupported => ("events_unsupported", 422, "Events are not stored yet (the activity store is to come)"),
    EventInvalid => ("event_invalid", 400, "An event or its payload does not have the expected shape"),
    EventTypeInvalid => ("event_type_invalid", 400, "The event type is neither built in nor a valid custom name"),
    EventTimeInvalid => ("event_time_invalid", 400, "The event time is not an RFC 3339 instant"),
    EventCustomerMissing => ("event_customer_missing", 400, "The event names no customer"),
    EventTooLarge => ("event_too_large", 400, "The event is larger than an event may be"),
    ReceiptTotalMismatch => ("receipt_total_mismatch", 422, "A receipt's items do not add up to its total (a note: the receipt is kept, its total counts)"),
    EventsTooMany => ("events_too_many", 413, "More events in one request than allowed"),
    Internal => ("internal", 500, "Internal error"),
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An RFC 9457 problem: a code, a human detail and optional context members.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The stable code; status and title follow from it.
    pub code: ErrorCode,
    /// What went wrong with this request, naming the offending value.
    pub detail: String,
    /// Context members such as `field`, `row`, `column`, `position`.
    pub members: Map<String, Value>,
}

impl Problem {
    /// A problem with a code and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
            members: Map::new(),
        }
    }

    /// Adds a context member (for example `field`).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.members.insert(name.to_owned(), value.into());
        self
    }

    /// The JSON body, as served with `application/problem+json`.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            Value::String(format!("https://persona.dev/errors/{}", self.code.as_str())),
        );
        body.insert("title".into(), self.code.title().into());
        body.insert("status".into(), self.code.status().into());
        body.insert("detail".into(), Value::String(self.detail.clone()));
        body.insert("code".into(), self.code.as_str().into());
        for (k, v) in &self.members {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn problem_body_has_rfc9457_members() {
        let p = Problem::new(ErrorCode::FieldUnknown, "no field `x`").with("field", "x");
        let v = p.to_json();
        assert_eq!(v["status"], 400);
        assert_eq!(v["code"], "field_unknown");
        assert_eq!(v["field"], "x");
        assert!(v["type"].as_str().unwrap().ends_with("field_unknown"));
    }
}
