//! Built-in importers: CSV (wide and long), JSON and NDJSON files become profile updates.
//!
//! Owns the file formats and import jobs. The parsers ([`csv`], [`json`]) are pure and
//! streaming: they read from any `io::Read`, hold one row at a time, and hand each row
//! (a [`ProfileUpdate`], the one update type) or its error to a [`Sink`]. A [`job`] runs
//! a parser on its own thread and sends rows in batches to the database actor through
//! `Database::apply`, so an import takes the same write path as the API: validation,
//! the WAL, then the store. Uses `schema` (to check a header against the fields) and
//! `db` (to apply); knows nothing of HTTP.

pub mod chunks;
pub mod csv;
pub mod events;
pub mod job;
pub mod json;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{ErrorCode, Problem};
use crate::schema::{ProfileUpdate, Schema};

pub use job::{Job, JobView, Jobs, Upload};

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A header row of `customer_id` and field names, then one profile a row.
    Csv,
    /// `customerId,fieldName,fieldValue` rows (or `customer_id,field,value`).
    CsvLong,
    /// An array of objects.
    Json,
    /// One object a line.
    Ndjson,
}

/// How to read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The format.
    pub format: Format,
    /// The CSV delimiter: `,` `;` tab or `|`.
    pub delimiter: u8,
    /// Skip columns (and long-format field names) the schema does not have, instead of
    /// refusing the file.
    pub ignore_unknown_columns: bool,
    /// Apply every row or none: any refused row means nothing is applied.
    pub atomic: bool,
    /// Rows are events (`kind=events`: JSON and NDJSON), not profiles.
    pub events: bool,
}

impl Options {
    /// Defaults for a format: comma-separated, unknown columns refused.
    pub fn new(format: Format) -> Self {
        Options {
            format,
            delimiter: b',',
            ignore_unknown_columns: false,
            atomic: false,
            events: false,
        }
    }
}

/// One good row: its number (from 1 after a CSV header; the line in NDJSON; the element
/// in a JSON array) and the update it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Row number (the first, for rows folded together).
    pub row: u64,
    /// How many rows of the file it stands for (more than one when a long CSV file's
    /// rows for one customer fold into one update).
    pub rows: u64,
    /// The update.
    pub update: ProfileUpdate,
}

/// A row that was refused, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowError {
    /// Row number, counted as in [`Row`].
    pub row: u64,
    /// The column (CSV) or member (JSON) at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The error code, as in the error catalogue.
    #[serde(serialize_with = "code_str", deserialize_with = "code_from")]
    pub code: ErrorCode,
    /// What was wrong, naming the value.
    pub detail: String,
}

fn code_str<S: Serializer>(code: &ErrorCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(code.as_str())
}

fn code_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
    let s = String::deserialize(d)?;
    ErrorCode::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown code `{s}`")))
}

impl RowError {
    /// An error for a row, with no column.
    pub fn new(row: u64, code: ErrorCode, detail: impl Into<String>) -> Self {
        RowError {
            row,
            column: None,
            code,
            detail: detail.into(),
        }
    }

    /// The same, naming the column.
    pub fn at(mut self, column: &str) -> Self {
        self.column = Some(column.to_owned());
        self
    }

    /// A row refused by the database (a value of the wrong type, a required field
    /// missing...): the problem's code and detail, and its field as the column.
    pub fn from_problem(row: u64, p: &Problem) -> Self {
        RowError {
            row,
            column: p
                .members
                .get("field")
                .and_then(|f| f.as_str())
                .map(str::to_owned),
            code: p.code,
            detail: p.detail.clone(),
        }
    }
}

/// A row's update, with its profile found by identifier when it has no customer id:
/// its email, else its phone. A row with none of the three is refused.
fn keyed(mut update: ProfileUpdate, row: u64) -> Result<ProfileUpdate, RowError> {
    if update.customer_id.is_empty() {
        update
            .find_by
            .extend(["email", "phone"].into_iter().find_map(|kind| {
                let (_, raw) = update.fields.iter().find(|(name, _)| name == kind)?;
                Some((kind.to_owned(), raw.text()?.to_owned()))
            }));
        if update.find_by.is_empty() {
            return Err(RowError::new(
                row,
                ErrorCode::CustomerIdInvalid,
                "the row has no customer id, email or phone to find its profile by",
            )
            .at("customer_id"));
        }
    }
    Ok(update)
}

/// Where a parser puts what it reads.
pub trait Sink {
    /// A good row. `false` asks the parser to stop (the job failed downstream).
    fn row(&mut self, row: Row) -> bool;
    /// A refused row; the parser goes on with the next.
    fn error(&mut self, error: RowError);
    /// An error that stands for `rows` rows of the file (a chunk a plugin failed on:
    /// all its rows; a note on an applied row: none).
    fn error_rows(&mut self, error: RowError, rows: u64) {
        let _ = rows;
        self.error(error);
    }
}

/// Reads a whole file into `sink`. `Err` is a failure of the file as a whole (an empty
/// file, a header naming an unknown column, JSON cut in half), with rows before it
/// already handed over.
pub fn parse(
    input: impl std::io::Read,
    opts: &Options,
    schema: &Schema,
    sink: &mut impl Sink,
) -> Result<(), Problem> {
    let rows = if opts.events {
        json::Rows::Events
    } else {
        json::Rows::Profiles
    };
    match opts.format {
        Format::Csv | Format::CsvLong if opts.events => Err(Problem::new(
            ErrorCode::InvalidQuery,
            "events are imported from JSON or NDJSON (`format=json` or `format=ndjson`)",
        )
        .with("parameter", "kind")),
        Format::Csv => csv::parse_wide(input, opts, schema, sink),
        Format::CsvLong => csv::parse_long(input, opts, schema, sink),
        Format::Json => json::parse_array(input, sink, rows),
        Format::Ndjson => json::parse_lines(input, sink, rows),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Collects what a parser hands over.
    #[derive(Debug, Default)]
    pub(crate) struct Collect {
        pub rows: Vec<Row>,
        pub errors: Vec<RowError>,
    }

    impl Sink for Collect {
        fn row(&mut self, row: Row) -> bool {
            self.rows.push(row);
            true
        }
        fn error(&mut self, error: RowError) {
            self.errors.push(error);
        }
    }

    pub(crate) fn run(format: Format, input: &[u8]) -> (Result<(), Problem>, Collect) {
        let mut sink = Collect::default();
        let schema = Schema::default();
        let r = parse(input, &Options::new(format), &schema, &mut sink);
        (r, sink)
    }
}
