//! A CRM export in CSV to profile updates.
//!
//! Reads one chunk of a wide CSV file: the host cuts files at record boundaries and
//! starts every chunk with the file's header row. The `customer_id` column names each
//! row's profile (created if absent); every other column named after a field of the
//! database sets that field from its cell, as text the database reads by the field's
//! type. Columns that are not fields are skipped, and an empty cell sets nothing.
//!
//! A row becomes one update, numbered by its place among the chunk's data rows (from
//! 0), which the host turns into the file's row number. Quoting, doubled quotes and CRLF
//! are `csv-core`'s; its buffers are reused from row to row, so that a row costs only
//! the strings it returns.

use csv_core::{ReadRecordResult, Reader};
use persona_plugin::{
    Field, FieldValue, Guest, Output, Payload, PluginError, RecordError, Update, Value, export,
};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What a column holds.
enum Column {
    CustomerId,
    Field(String),
    Skipped,
}

struct Csv;

impl Guest for Csv {
    fn transform(input: Payload) -> Result<Output, PluginError> {
        // The host strips a byte order mark from the file; one left in would rename the
        // first column.
        let body = input.body.strip_prefix(BOM).unwrap_or(&input.body);
        let mut rows = Rows::new(body);
        let mut output = Output {
            updates: Vec::new(),
            errors: Vec::new(),
        };
        if !rows.next() {
            return Ok(output);
        }
        let columns = columns(&rows, &input.fields)?;
        let id_column = columns
            .iter()
            .position(|c| matches!(c, Column::CustomerId))
            .ok_or_else(|| {
                PluginError::Invalid(
                    "the header has no `customer_id` column to find each row's profile by".into(),
                )
            })?;
        let field_count = columns
            .iter()
            .filter(|c| matches!(c, Column::Field(_)))
            .count();
        // A record ends at a line break (quoted ones only overcount): one pass over the
        // bytes saves regrowing the output over a chunk's thousands of rows.
        let lines = rows.input.iter().filter(|&&b| b == b'\n').count();
        output.updates.reserve(lines + 1);
        let mut index = 0;
        while rows.next() {
            match row(&rows, &columns, id_column, field_count, index) {
                Ok(update) => output.updates.push(update),
                Err(e) => output.errors.push(e),
            }
            index += 1;
        }
        Ok(output)
    }
}

/// The header's columns, checked: `customer_id` once, and no name twice (which of two
/// cells would set the field?).
fn columns(header: &Rows, fields: &[Field]) -> Result<Vec<Column>, PluginError> {
    let mut names: Vec<&str> = Vec::with_capacity(header.len);
    for i in 0..header.len {
        let name = std::str::from_utf8(header.cell(i))
            .map_err(|_| PluginError::Invalid(format!("header cell {} is not UTF-8", i + 1)))?
            .trim();
        if !name.is_empty() && names.contains(&name) {
            return Err(PluginError::Invalid(format!(
                "column `{name}` appears twice in the header"
            )));
        }
        names.push(name);
    }
    Ok(names
        .into_iter()
        .map(|name| {
            if name == "customer_id" {
                Column::CustomerId
            } else if fields.iter().any(|f| f.name == name) {
                Column::Field(name.to_owned())
            } else {
                Column::Skipped
            }
        })
        .collect())
}

/// One data row as an update.
fn row(
    rows: &Rows,
    columns: &[Column],
    id_column: usize,
    field_count: usize,
    index: usize,
) -> Result<Update, RecordError> {
    if rows.len != columns.len() {
        return Err(RecordError::new(
            index,
            "row_width",
            format!(
                "the row has {} cells where the header has {}",
                rows.len,
                columns.len()
            ),
        ));
    }
    let customer_id = utf8(rows.cell(id_column), index, "customer_id")?;
    if customer_id.trim().is_empty() {
        return Err(RecordError::new(
            index,
            "missing_customer_id",
            "the row has no customer id",
        ));
    }
    let mut set = Vec::with_capacity(field_count);
    let mut start = 0;
    for (column, &end) in columns.iter().zip(&rows.ends[..rows.len]) {
        let cell = &rows.bytes[start..end];
        start = end;
        if let Column::Field(name) = column
            && !cell.is_empty()
        {
            set.push(FieldValue {
                name: name.clone(),
                value: Value::Text(utf8(cell, index, name)?.to_owned()),
            });
        }
    }
    Ok(Update {
        set,
        ..Update::for_customer(customer_id).from_record(index)
    })
}

fn utf8<'a>(cell: &'a [u8], index: usize, column: &str) -> Result<&'a str, RecordError> {
    std::str::from_utf8(cell).map_err(|e| {
        RecordError::new(
            index,
            "not_utf8",
            format!(
                "the `{column}` cell is not UTF-8 (invalid byte at {})",
                e.valid_up_to()
            ),
        )
    })
}

/// The chunk's records, one at a time, in buffers reused from record to record.
struct Rows<'a> {
    input: &'a [u8],
    core: Reader,
    /// The current record's cells, end to end.
    bytes: Vec<u8>,
    /// Where each cell of `bytes` ends.
    ends: Vec<usize>,
    /// How many cells the current record has.
    len: usize,
}

impl<'a> Rows<'a> {
    fn new(input: &'a [u8]) -> Self {
        Rows {
            input,
            core: Reader::new(),
            bytes: vec![0; 4096],
            ends: vec![0; 64],
            len: 0,
        }
    }

    /// Reads the next record; `false` at the end of the chunk. Blank lines are no
    /// records (`csv-core` skips them).
    fn next(&mut self) -> bool {
        let (mut nout, mut nend) = (0, 0);
        loop {
            // An empty input tells `csv-core` the chunk ended, which ends a last record
            // without a line break.
            let (res, nin, o, e) =
                self.core
                    .read_record(self.input, &mut self.bytes[nout..], &mut self.ends[nend..]);
            self.input = &self.input[nin..];
            nout += o;
            nend += e;
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    let n = self.bytes.len() * 2;
                    self.bytes.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    self.len = nend;
                    return true;
                }
                ReadRecordResult::End => {
                    self.len = 0;
                    return false;
                }
            }
        }
    }

    /// Cell `i` of the current record.
    fn cell(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

export!(Csv);
