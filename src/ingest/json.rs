//! JSON files: an array of objects, or NDJSON (one object a line).
//!
//! An object is either flat (`customer_id` and field names as members) or the PATCH
//! body's shape with `customer_id` (`fields`, `tags`, `identifiers`, `subscriptions`,
//! `unset`). In a flat object `null` means "no value", as an empty CSV cell does; in the
//! PATCH shape it clears the field, as in a PATCH. The array is read element by element
//! (serde's sequence visitor), so a file larger than memory streams.

use std::cell::Cell;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use compact_str::CompactString;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use super::{Row, RowError, Sink};
use crate::error::{ErrorCode, Problem};
use crate::schema::{ProfileBody, ProfileUpdate, RawValue, Source};

/// The longest NDJSON line read (1 MiB): a profile is a few KB; a longer line is
/// reported and skipped without being held in memory.
pub const MAX_LINE: usize = 1 << 20;

/// The update an object asks for, or why the row is refused.
fn object_update(value: Json, row: u64) -> Result<ProfileUpdate, RowError> {
    let Json::Object(mut obj) = value else {
        return Err(RowError::new(
            row,
            ErrorCode::ImportRowInvalid,
            format!("a row is a JSON object, not {}", kind(&value)),
        ));
    };
    // Without a customer id, the row's email or phone finds (or creates) the profile.
    let customer_id = match obj.remove("customer_id") {
        Some(Json::String(s)) if !s.is_empty() => s,
        Some(Json::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        None | Some(Json::Null) => String::new(),
        Some(other) => {
            return Err(RowError::new(
                row,
                ErrorCode::CustomerIdInvalid,
                format!("`customer_id` must be a non-empty string, not {other}"),
            )
            .at("customer_id"));
        }
    };
    let update = if obj.get("fields").is_some_and(Json::is_object) {
        let body: ProfileBody = serde_json::from_value(Json::Object(obj)).map_err(|e| {
            RowError::new(
                row,
                ErrorCode::ImportRowInvalid,
                format!("an object with `fields` has the PATCH body's shape: {e}"),
            )
        })?;
        body.into_update(&customer_id, false, Source::Import)
            .map_err(|p| RowError::from_problem(row, &p))?
    } else {
        let mut update = ProfileUpdate::new(customer_id.as_str(), Source::Import);
        update.fields = flat_fields(obj);
        update
    };
    super::keyed(update, row)
}

fn flat_fields(obj: Map<String, Json>) -> Vec<(CompactString, RawValue)> {
    obj.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.into(), RawValue::Json(v)))
        .collect()
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// What a file's objects are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Profiles: flat objects or the PATCH body's shape.
    Profiles,
    /// Events, as `POST .../events` takes them.
    Events,
}

/// The update an event row asks for; a note (a receipt whose items do not add up) goes
/// to the sink as an error that stands for no row.
fn event_update(value: Json, row: u64, sink: &mut impl Sink) -> Result<ProfileUpdate, RowError> {
    let text = serde_json::to_vec(&value).expect("a JSON value serializes");
    event_update_slice(&text, row, sink)
}

/// [`event_update`] from the row's text (an NDJSON line), parsed once.
fn event_update_slice(
    text: &[u8],
    row: u64,
    sink: &mut impl Sink,
) -> Result<ProfileUpdate, RowError> {
    use crate::activity::EventError;
    let a =
        crate::activity::event::parse_slice(text, jiff::Timestamp::now()).map_err(|e| match e {
            EventError::Syntax(detail) => RowError::new(row, ErrorCode::ImportJsonSyntax, detail),
            e => RowError::from_problem(row, &Problem::from(e)),
        })?;
    for (code, detail) in &a.warnings {
        let code = ErrorCode::parse(code).unwrap_or(ErrorCode::EventInvalid);
        sink.error_rows(RowError::new(row, code, detail.clone()), 0);
    }
    Ok(super::events::update_of(a, Source::Event))
}

/// Hands one row to the sink; `false` when the sink asks to stop.
fn deliver(sink: &mut impl Sink, value: Json, row: u64, rows: Rows) -> bool {
    let update = match rows {
        Rows::Profiles => object_update(value, row),
        Rows::Events => event_update(value, row, sink),
    };
    hand_over(sink, update, row)
}

/// Gives a row's update, or why it was refused, to the sink; `false` when the sink
/// asks to stop.
fn hand_over(sink: &mut impl Sink, update: Result<ProfileUpdate, RowError>, row: u64) -> bool {
    match update {
        Ok(update) => sink.row(Row {
            row,
            rows: 1,
            update,
        }),
        Err(e) => {
            sink.error(e);
            true
        }
    }
}

/// A JSON array of objects, read one element at a time.
pub fn parse_array(input: impl Read, sink: &mut impl Sink, rows: Rows) -> Result<(), Problem> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    if reader.fill_buf().map_or(true, <[u8]>::is_empty) {
        return Err(Problem::new(ErrorCode::ImportEmpty, "the file is empty"));
    }
    let read = Rc::new(Cell::new(0));
    let mut de = serde_json::Deserializer::from_reader(Capped {
        inner: reader,
        read: Rc::clone(&read),
    });
    let kind = rows;
    let mut rows = 0;
    let result = (&mut de)
        .deserialize_seq(Elements {
            sink,
            rows: &mut rows,
            read: &read,
            kind,
        })
        .and_then(|()| de.end());
    match result {
        Ok(()) if rows == 0 => Err(Problem::new(ErrorCode::ImportNoRows, "the array is empty")),
        Ok(()) => Ok(()),
        Err(e) if e.is_io() && read.get() > MAX_LINE => Err(Problem::new(
            ErrorCode::ImportLineTooLong,
            format!(
                "element {} is longer than {MAX_LINE} bytes; the elements before were imported",
                rows + 1
            ),
        )
        .with("row", rows + 1)),
        Err(e) => Err(Problem::new(
            ErrorCode::ImportJsonSyntax,
            format!("after {rows} elements: {e}; the elements before were imported"),
        )
        .with("row", rows + 1)
        .with("line", e.line())
        .with("column", e.column())),
    }
}

struct Elements<'s, S> {
    sink: &'s mut S,
    rows: &'s mut u64,
    read: &'s Cell<usize>,
    kind: Rows,
}

/// Counts the bytes of the element being read and refuses to read past [`MAX_LINE`]:
/// an element is read whole into memory, so its size is capped as a line's is.
struct Capped<R> {
    inner: R,
    read: Rc<Cell<usize>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read.get() > MAX_LINE {
            return Err(std::io::Error::other("an element longer than allowed"));
        }
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n);
        Ok(n)
    }
}

impl<'de, S: Sink> Visitor<'de> for Elements<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element_seed(Element)? {
            self.read.set(0);
            *self.rows += 1;
            if !deliver(self.sink, value, *self.rows, self.kind) {
                // Downstream failed: stop reading; the job records why.
                return Ok(());
            }
        }
        Ok(())
    }
}

/// One array element as a JSON value.
struct Element;

impl<'de> DeserializeSeed<'de> for Element {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

/// NDJSON: one object a line; rows are numbered by line. Blank lines are skipped.
pub fn parse_lines(input: impl Read, sink: &mut impl Sink, rows: Rows) -> Result<(), Problem> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut line = Vec::new();
    let mut row = 0;
    let mut any = false;
    // A line that is not blank: a file of blank lines has no rows.
    let mut rows_seen = false;
    loop {
        line.clear();
        let (ended, too_long) = read_line(&mut reader, &mut line).map_err(|e| {
            Problem::new(
                ErrorCode::ImportUploadFailed,
                format!("reading the file failed: {e}"),
            )
        })?;
        if !ended {
            break;
        }
        row += 1;
        any = true;
        if too_long {
            rows_seen = true;
            sink.error(RowError::new(
                row,
                ErrorCode::ImportLineTooLong,
                format!("the line is longer than {MAX_LINE} bytes"),
            ));
            continue;
        }
        let text = line.strip_suffix(b"\r").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows_seen = true;
        if rows == Rows::Events {
            // Straight from the line's text: no JSON tree for an event.
            let update = event_update_slice(text, row, sink);
            if !hand_over(sink, update, row) {
                return Ok(());
            }
            continue;
        }
        match serde_json::from_slice::<Json>(text) {
            Ok(value) => {
                if !deliver(sink, value, row, rows) {
                    return Ok(());
                }
            }
            Err(e) => sink.error(RowError::new(
                row,
                ErrorCode::ImportJsonSyntax,
                format!("the line is not one JSON value: {e}"),
            )),
        }
    }
    if !any {
        return Err(Problem::new(ErrorCode::ImportEmpty, "the file is empty"));
    }
    if !rows_seen {
        return Err(Problem::new(
            ErrorCode::ImportNoRows,
            "the file has only blank lines",
        ));
    }
    Ok(())
}

/// Reads up to the next `\n` (dropped) into `line`, keeping at most [`MAX_LINE`] bytes.
/// Returns whether a line was there at all, and whether it was too long (then `line`
/// holds nothing useful).
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<(bool, bool)> {
    let mut any = false;
    let mut too_long = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok((any, too_long));
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Ok((true, too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::super::tests::run;
    use super::*;

    #[test]
    fn arrays_of_flat_and_patch_shaped_objects() {
        let file = br#"[{"customer_id":"c1","city":"Lisbon","first_name":null},
            {"customer_id":"c2","fields":{"city":"Porto"},"tags":{"add":["vip"]}},
            {"customer_id":7,"city":"Faro"}]"#;
        let (r, got) = run(Format::Json, file);
        r.unwrap();
        assert!(got.errors.is_empty(), "{:?}", got.errors);
        let u: Vec<&ProfileUpdate> = got.rows.iter().map(|r| &r.update).collect();
        assert_eq!(
            u[0].fields,
            [("city".into(), RawValue::Json("Lisbon".into()))]
        );
        assert_eq!(u[1].tags_add, ["vip"]);
        assert_eq!(u[1].fields[0].0, "city");
        assert_eq!(u[2].customer_id, "7");
        assert_eq!(u[2].source, Source::Import);
    }

    #[test]
    fn bad_elements_are_rows_and_a_cut_file_fails_after_the_good_ones() {
        let (r, got) = run(
            Format::Json,
            br#"[{"customer_id":"c1"}, 5, {"city":"x"}, {"customer_id":""}, {"customer_id":"c5","ci"#,
        );
        let err = r.unwrap_err();
        assert_eq!(err.code, ErrorCode::ImportJsonSyntax);
        assert_eq!(err.members["row"], 5);
        assert_eq!(got.rows.len(), 1);
        let codes: Vec<_> = got.errors.iter().map(|e| (e.row, e.code)).collect();
        assert_eq!(
            codes,
            [
                (2, ErrorCode::ImportRowInvalid),
                (3, ErrorCode::CustomerIdInvalid),
                (4, ErrorCode::CustomerIdInvalid),
            ]
        );
        for (file, code) in [
            (&b""[..], ErrorCode::ImportEmpty),
            (b"[]", ErrorCode::ImportNoRows),
            (b"{\"customer_id\":\"c1\"}", ErrorCode::ImportJsonSyntax),
            (b"[{\"customer_id\":\"c1\"}] x", ErrorCode::ImportJsonSyntax),
        ] {
            assert_eq!(run(Format::Json, file).0.unwrap_err().code, code);
        }
    }

    #[test]
    fn an_array_element_longer_than_the_limit_stops_the_file_after_the_ones_before() {
        let mut file = b"[{\"customer_id\":\"c1\"},{\"customer_id\":\"c2\",\"city\":\"".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        file.extend(b"\"}]");
        let (r, got) = run(Format::Json, &file);
        let err = r.unwrap_err();
        assert_eq!(err.code, ErrorCode::ImportLineTooLong);
        assert_eq!(err.members["row"], 2);
        assert_eq!(got.rows.len(), 1);
        // Elements under the limit each, however many, are fine.
        let many: Vec<String> = (0..3000)
            .map(|i| {
                format!(
                    "{{\"customer_id\":\"c{i}\",\"city\":\"{}\"}}",
                    "y".repeat(500)
                )
            })
            .collect();
        let (r, got) = run(Format::Json, format!("[{}]", many.join(",")).as_bytes());
        r.unwrap();
        assert_eq!(got.rows.len(), 3000);
    }

    #[test]
    fn ndjson_lines_numbered_with_blank_bad_and_long_lines() {
        let mut file = b"{\"customer_id\":\"c1\",\"city\":\"Lisbon\"}\r\n\n{oops\n".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        file.extend(b"\n{\"customer_id\":\"c5\"}");
        let (r, got) = run(Format::Ndjson, &file);
        r.unwrap();
        let rows: Vec<u64> = got.rows.iter().map(|r| r.row).collect();
        assert_eq!(rows, [1, 5]);
        let errs: Vec<_> = got.errors.iter().map(|e| (e.row, e.code)).collect();
        assert_eq!(
            errs,
            [
                (3, ErrorCode::ImportJsonSyntax),
                (4, ErrorCode::ImportLineTooLong)
            ]
        );
        assert_eq!(
            run(Format::Ndjson, b"").0.unwrap_err().code,
            ErrorCode::ImportEmpty
        );
        assert_eq!(
            run(Format::Ndjson, b"\n  \r\n").0.unwrap_err().code,
            ErrorCode::ImportNoRows
        );
    }
}
