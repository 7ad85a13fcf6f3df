//! CSV files, wide (a column per field) and long (a row per field value).
//!
//! RFC 4180 quoting, CRLF or LF, a UTF-8 byte order mark and the delimiter come from
//! `csv-core` (the `csv` crate's engine); what a header and a cell mean is here. An empty cell means "no value":
//! the field is left as it is, not set to an empty string. Cells stay text; the database
//! types them by their field (`schema::value`), as it does every write.

use std::io::{BufRead, BufReader, Read};
use std::ops::Index;

use compact_str::CompactString;
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::{Options, Row, RowError, Sink};
use crate::error::{ErrorCode, Problem};
use crate::schema::{
    Channel, ProfileUpdate, RawValue, Schema, Source, SubscriptionChange, SubscriptionStatus,
};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What a wide file's column holds.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    CustomerId,
    Field(CompactString),
    /// `subscription.<resource>.<channel>[.<category>]`: a status a row.
    Subscription {
        resource: String,
        channel: Channel,
        category: String,
    },
    Skipped,
}

/// Reads a `subscription.<resource>.<channel>[.<category>]` column name.
fn subscription_column(name: &str) -> Option<Result<Column, Problem>> {
    let rest = name.strip_prefix("subscription.")?;
    let parts: Vec<&str> = rest.split('.').collect();
    let bad = |why: String| {
        Problem::new(
            ErrorCode::ImportHeaderInvalid,
            format!("column `{name}`: {why}"),
        )
        .with("column", name)
    };
    Some(match parts.as_slice() {
        [resource, channel] | [resource, channel, _] if !resource.is_empty() => {
            let category = parts.get(2).copied().unwrap_or("default");
            match serde_json::from_value::<Channel>(serde_json::Value::String((*channel).into())) {
                Ok(channel) if !category.is_empty() => Ok(Column::Subscription {
                    resource: (*resource).into(),
                    channel,
                    category: category.into(),
                }),
                Ok(_) => Err(bad("the category is empty".into())),
                Err(_) => Err(bad(format!(
                    "`{channel}` is not a channel (email, sms, push)"
                ))),
            }
        }
        _ => Err(bad(
            "a subscription column is named `subscription.<resource>.<channel>[.<category>]`"
                .into(),
        )),
    })
}

/// A subscription cell: `subscribed`/`unsubscribed` or a boolean; empty changes nothing.
fn subscription_status(cell: &str) -> Result<Option<SubscriptionStatus>, String> {
    Ok(Some(match cell.trim().to_ascii_lowercase().as_str() {
        "" => return Ok(None),
        "subscribed" | "true" | "yes" | "1" => SubscriptionStatus::Subscribed,
        "unsubscribed" | "false" | "no" | "0" => SubscriptionStatus::Unsubscribed,
        _ => {
            return Err(format!(
                "`{cell}` is not a subscription status: subscribed, unsubscribed, true, false, yes, no, 1, 0"
            ));
        }
    }))
}

/// The longest record kept (1 MiB, as an NDJSON line): a longer one is read through to
/// its end without being held, and reported.
const MAX_RECORD: usize = super::json::MAX_LINE;

/// One record's cells, read into buffers reused from record to record.
#[derive(Debug, Default)]
struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    len: usize,
    too_long: bool,
}

impl Record {
    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len).map(|i| &self[i])
    }
}

impl Index<usize> for Record {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// CSV records over `csv-core`, the `csv` crate's own engine.
///
/// Written here rather than using `csv::Reader` for one reason: a cap on a record's size
/// while it is read. `csv::Reader` grows a record to whatever the input holds, so one
/// endless row would take all memory; this reader stops keeping a record's bytes past
/// [`MAX_RECORD`] and reads on to its end. Quoting, delimiters, CRLF, the UTF-8 byte
/// order mark and blank lines are `csv-core`'s.
struct Records<R> {
    input: BufReader<R>,
    core: Reader,
}

impl<R: Read> Records<R> {
    fn new(input: R, opts: &Options) -> Self {
        Records {
            input: BufReader::with_capacity(1 << 16, input),
            core: ReaderBuilder::new().delimiter(opts.delimiter).build(),
        }
    }

    /// Reads the next record into `rec`; `false` at the end of the input.
    fn read(&mut self, rec: &mut Record) -> std::io::Result<bool> {
        if rec.bytes.is_empty() {
            rec.bytes.resize(4096, 0);
            rec.ends.resize(32, 0);
        }
        let (mut nout, mut nend) = (0, 0);
        rec.too_long = false;
        loop {
            let input = self.input.fill_buf()?;
            // Past the cap, the same buffers are written over and over: the cells are
            // not needed, only the record's end.
            let (out, ends) = if rec.too_long {
                (&mut rec.bytes[..], &mut rec.ends[..])
            } else {
                (&mut rec.bytes[nout..], &mut rec.ends[nend..])
            };
            let (res, nin, o, e) = self.core.read_record(input, out, ends);
            self.input.consume(nin);
            if !rec.too_long {
                nout += o;
                nend += e;
            }
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull if rec.too_long => {}
                ReadRecordResult::OutputFull if rec.bytes.len() >= MAX_RECORD => {
                    rec.too_long = true;
                }
                ReadRecordResult::OutputFull => {
                    let n = (rec.bytes.len() * 2).min(MAX_RECORD);
                    rec.bytes.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull if rec.too_long => {}
                ReadRecordResult::OutputEndsFull if rec.ends.len() * 8 >= MAX_RECORD => {
                    rec.too_long = true;
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = rec.ends.len() * 2;
                    rec.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    rec.len = if rec.too_long { 0 } else { nend };
                    return Ok(true);
                }
                ReadRecordResult::End => return Ok(false),
            }
        }
    }
}

/// Reads the first record, the header, with its byte order mark removed.
fn header(rdr: &mut Records<impl Read>) -> Result<Vec<String>, Problem> {
    let mut rec = Record::default();
    if !rdr.read(&mut rec).map_err(read_failed)? {
        return Err(Problem::new(ErrorCode::ImportEmpty, "the file is empty"));
    }
    if rec.too_long {
        return Err(Problem::new(
            ErrorCode::ImportHeaderInvalid,
            format!("the header is longer than {MAX_RECORD} bytes"),
        ));
    }
    rec.iter()
        .enumerate()
        .map(|(i, cell)| {
            let cell = if i == 0 {
                cell.strip_prefix(BOM).unwrap_or(cell)
            } else {
                cell
            };
            std::str::from_utf8(cell)
                .map(|s| s.trim().to_owned())
                .map_err(|_| {
                    Problem::new(
                        ErrorCode::ImportEncodingInvalid,
                        format!("header cell {} is not UTF-8", i + 1),
                    )
                })
        })
        .collect()
}

fn read_failed(e: std::io::Error) -> Problem {
    Problem::new(
        ErrorCode::ImportUploadFailed,
        format!("reading the file failed: {e}"),
    )
}

fn no_rows() -> Problem {
    Problem::new(ErrorCode::ImportNoRows, "the file has a header but no rows")
}

/// Checks a wide header against the schema: `customer_id` once, then field names.
fn wide_columns(names: &[String], opts: &Options, schema: &Schema) -> Result<Vec<Column>, Problem> {
    let mut columns = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Problem::new(
                ErrorCode::ImportHeaderInvalid,
                format!("column `{name}` appears twice"),
            )
            .with("column", name.as_str()));
        }
        let column = if name == "customer_id" {
            Column::CustomerId
        } else if let Some(sub) = subscription_column(name) {
            sub?
        } else if schema.get(name).is_some() {
            Column::Field(name.as_str().into())
        } else if opts.ignore_unknown_columns {
            Column::Skipped
        } else if name.is_empty() {
            return Err(Problem::new(
                ErrorCode::ImportHeaderInvalid,
                format!("column {} has no name", i + 1),
            ));
        } else {
            return Err(Problem::new(
                ErrorCode::ImportColumnUnknown,
                format!(
                    "column `{name}` is not a field of this database; add it with POST .../fields, \
                     or import with unknown_columns=ignore"
                ),
            )
            .with("column", name.as_str()));
        };
        columns.push(column);
    }
    let keyed = columns.iter().any(|c| match c {
        Column::CustomerId => true,
        Column::Field(f) => f == "email" || f == "phone",
        Column::Subscription { .. } | Column::Skipped => false,
    });
    if !keyed {
        return Err(Problem::new(
            ErrorCode::ImportHeaderInvalid,
            "the header has no `customer_id`, `email` or `phone` column to find each row's \
             profile by",
        ));
    }
    Ok(columns)
}

/// The cell as text, or the row's error naming the column.
fn text<'r>(cell: &'r [u8], row: u64, column: &str) -> Result<&'r str, RowError> {
    std::str::from_utf8(cell).map_err(|e| {
        RowError::new(
            row,
            ErrorCode::ImportEncodingInvalid,
            format!(
                "the cell is not UTF-8 (invalid byte at {})",
                e.valid_up_to()
            ),
        )
        .at(column)
    })
}

/// Checks a record's size and cell count.
fn width(rec: &Record, want: usize, row: u64) -> Result<(), RowError> {
    if rec.too_long {
        return Err(RowError::new(
            row,
            ErrorCode::ImportLineTooLong,
            format!("the row is longer than {MAX_RECORD} bytes"),
        ));
    }
    if rec.len() == want {
        return Ok(());
    }
    Err(RowError::new(
        row,
        ErrorCode::ImportRowWidth,
        format!(
            "the row has {} cells where the header has {want}",
            rec.len()
        ),
    ))
}

/// A wide file: a header of `customer_id` and field names, then a profile a row.
pub fn parse_wide(
    input: impl Read,
    opts: &Options,
    schema: &Schema,
    sink: &mut impl Sink,
) -> Result<(), Problem> {
    let mut rdr = Records::new(input, opts);
    let names = header(&mut rdr)?;
    let columns = wide_columns(&names, opts, schema)?;
    let mut rec = Record::default();
    let mut row = 0;
    while rdr.read(&mut rec).map_err(read_failed)? {
        row += 1;
        match wide_row(&rec, &columns, &names, row) {
            Ok(update) => {
                if !sink.row(Row {
                    row,
                    rows: 1,
                    update,
                }) {
                    return Ok(());
                }
            }
            Err(e) => sink.error(e),
        }
    }
    if row == 0 {
        return Err(no_rows());
    }
    Ok(())
}

fn wide_row(
    rec: &Record,
    columns: &[Column],
    names: &[String],
    row: u64,
) -> Result<ProfileUpdate, RowError> {
    width(rec, columns.len(), row)?;
    let mut customer_id = "";
    let mut fields = Vec::with_capacity(columns.len());
    let mut subscriptions = Vec::new();
    for ((cell, column), name) in rec.iter().zip(columns).zip(names) {
        match column {
            Column::Skipped => {}
            Column::Subscription {
                resource,
                channel,
                category,
            } => {
                let status = subscription_status(text(cell, row, name)?).map_err(|why| {
                    RowError::new(row, ErrorCode::SubscriptionInvalid, why).at(name)
                })?;
                if let Some(status) = status {
                    subscriptions.push(SubscriptionChange {
                        resource: resource.clone(),
                        channel: *channel,
                        category: category.clone(),
                        status,
                        at: None,
                    });
                }
            }
            Column::CustomerId => customer_id = text(cell, row, name)?,
            Column::Field(field) => {
                let value = text(cell, row, name)?;
                if !value.is_empty() {
                    fields.push((field.clone(), RawValue::Text(value.into())));
                }
            }
        }
    }
    let mut update = ProfileUpdate::new(customer_id, Source::Import);
    update.fields = fields;
    update.subscriptions = subscriptions;
    super::keyed(update, row)
}

/// A long file: `customerId,fieldName,fieldValue` (or `customer_id,field,value`) rows.
///
/// Consecutive rows of one customer fold into one update, numbered by its first row; a
/// customer whose rows are not together gets one update per run of rows, applied in
/// order (so later values win either way).
pub fn parse_long(
    input: impl Read,
    opts: &Options,
    schema: &Schema,
    sink: &mut impl Sink,
) -> Result<(), Problem> {
    let mut rdr = Records::new(input, opts);
    let names = header(&mut rdr)?;
    let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    if lower != ["customerid", "fieldname", "fieldvalue"]
        && lower != ["customer_id", "field", "value"]
    {
        return Err(Problem::new(
            ErrorCode::ImportHeaderInvalid,
            format!(
                "a long file's header is `customerId,fieldName,fieldValue` or \
                 `customer_id,field,value`, not `{}`",
                names.join(",")
            ),
        ));
    }
    let mut rec = Record::default();
    let mut row = 0;
    let mut pending: Option<Row> = None;
    while rdr.read(&mut rec).map_err(read_failed)? {
        row += 1;
        let cell = match long_row(&rec, &names, opts, schema, row) {
            Ok(Some(cell)) => cell,
            Ok(None) => continue,
            Err(e) => {
                sink.error(e);
                continue;
            }
        };
        let (customer_id, field, value) = cell;
        let same = pending
            .as_ref()
            .is_some_and(|p| p.update.customer_id == customer_id);
        if !same {
            if let Some(done) = pending.take()
                && !sink.row(done)
            {
                return Ok(());
            }
            pending = Some(Row {
                row,
                rows: 0,
                update: ProfileUpdate::new(customer_id, Source::Import),
            });
        }
        let folded = pending.as_mut().expect("set above");
        folded.rows += 1;
        let update = &mut folded.update;
        if let Some((field, value)) = field.zip(value) {
            // A field given twice for one customer: the later row wins.
            update.fields.retain(|(f, _)| *f != field);
            update
                .fields
                .push((field.into(), RawValue::Text(value.into())));
        }
    }
    if let Some(done) = pending {
        sink.row(done);
    }
    if row == 0 {
        return Err(no_rows());
    }
    Ok(())
}

/// One long row: the customer id, and the field and value unless the value is empty or
/// the field is skipped. `Ok(None)`: nothing to do for this row.
#[allow(clippy::type_complexity)]
fn long_row(
    rec: &Record,
    names: &[String],
    opts: &Options,
    schema: &Schema,
    row: u64,
) -> Result<Option<(String, Option<String>, Option<String>)>, RowError> {
    width(rec, 3, row)?;
    let customer_id = text(&rec[0], row, &names[0])?;
    let field = text(&rec[1], row, &names[1])?.trim();
    let value = text(&rec[2], row, &names[2])?;
    if customer_id.is_empty() {
        return Err(RowError::new(
            row,
            ErrorCode::CustomerIdInvalid,
            "the customer id is empty",
        )
        .at(&names[0]));
    }
    if schema.get(field).is_none() {
        if opts.ignore_unknown_columns {
            return Ok(None);
        }
        return Err(RowError::new(
            row,
            ErrorCode::FieldUnknown,
            format!("`{field}` is not a field of this database"),
        )
        .at(&names[1]));
    }
    let (field, value) = if value.is_empty() {
        (None, None)
    } else {
        (Some(field.to_owned()), Some(value.to_owned()))
    };
    Ok(Some((customer_id.to_owned(), field, value)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::Format;
    use super::super::tests::run;
    use super::*;

    fn fields(r: &Row) -> Vec<(&str, &str)> {
        r.update
            .fields
            .iter()
            .map(|(n, v)| match v {
                RawValue::Text(t) => (n.as_str(), t.as_str()),
                RawValue::Json(_) => panic!("CSV cells are text"),
            })
            .collect()
    }

    #[test]
    fn subscription_columns_set_statuses_and_bad_ones_are_named() {
        let file = b"customer_id,subscription.blog.email,subscription.blog.sms.promo\nc1,yes,\nc2,unsubscribed,0\nc3,maybe,1\n";
        let (r, got) = run(Format::Csv, file);
        r.unwrap();
        let subs: Vec<Vec<(Channel, &str, SubscriptionStatus)>> = got
            .rows
            .iter()
            .map(|row| {
                row.update
                    .subscriptions
                    .iter()
                    .map(|s| (s.channel, s.category.as_str(), s.status))
                    .collect()
            })
            .collect();
        use SubscriptionStatus::*;
        assert_eq!(
            subs,
            [
                vec![(Channel::Email, "default", Subscribed)],
                vec![
                    (Channel::Email, "default", Unsubscribed),
                    (Channel::Sms, "promo", Unsubscribed)
                ],
            ]
        );
        assert_eq!(got.errors[0].code, ErrorCode::SubscriptionInvalid);
        assert_eq!(
            got.errors[0].column.as_deref(),
            Some("subscription.blog.email")
        );
        for bad in [
            &b"customer_id,subscription.blog.fax\nc1,1\n"[..],
            b"customer_id,subscription.blog\nc1,1\n",
        ] {
            assert_eq!(
                run(Format::Csv, bad).0.unwrap_err().code,
                ErrorCode::ImportHeaderInvalid
            );
        }
    }

    #[test]
    fn wide_rows_with_bom_crlf_quotes_and_empty_cells() {
        let file = b"\xEF\xBB\xBFcustomer_id,first_name,city\r\nc1,\"Ana, \"\"Nita\"\"\",Lisbon\r\nc2,,Porto\r\n";
        let (r, got) = run(Format::Csv, file);
        r.unwrap();
        assert!(got.errors.is_empty(), "{:?}", got.errors);
        assert_eq!(got.rows.len(), 2);
        assert_eq!(got.rows[0].row, 1);
        assert_eq!(
            fields(&got.rows[0]),
            [("first_name", "Ana, \"Nita\""), ("city", "Lisbon")]
        );
        // The empty cell means no value, not an empty string.
        assert_eq!(fields(&got.rows[1]), [("city", "Porto")]);
        assert_eq!(got.rows[1].update.customer_id, "c2");
    }

    #[test]
    fn wide_header_problems_refuse_the_file() {
        for (file, code) in [
            (&b""[..], ErrorCode::ImportEmpty),
            (b"customer_id,city\n", ErrorCode::ImportNoRows),
            (
                b"customer_id,shoe_size\nc1,42\n",
                ErrorCode::ImportColumnUnknown,
            ),
            (b"city\nLisbon\n", ErrorCode::ImportHeaderInvalid),
            (
                b"city,first_name\nLisbon,Ana\n",
                ErrorCode::ImportHeaderInvalid,
            ),
            (
                b"customer_id,city,city\nc1,a,b\n",
                ErrorCode::ImportHeaderInvalid,
            ),
        ] {
            let (r, got) = run(Format::Csv, file);
            assert_eq!(
                r.unwrap_err().code,
                code,
                "{:?}",
                String::from_utf8_lossy(file)
            );
            assert!(got.rows.is_empty());
        }
    }

    #[test]
    fn bad_rows_are_reported_and_the_rest_goes_on() {
        let file =
            b"customer_id,city\nc1,Lisbon\nc2\nc3,Porto,extra\n,Braga\nc5,\xff\xfe\nc6,Faro\n";
        let (r, got) = run(Format::Csv, file);
        r.unwrap();
        let ids: Vec<&str> = got
            .rows
            .iter()
            .map(|r| r.update.customer_id.as_str())
            .collect();
        assert_eq!(ids, ["c1", "c6"]);
        let errs: Vec<(u64, ErrorCode, Option<&str>)> = got
            .errors
            .iter()
            .map(|e| (e.row, e.code, e.column.as_deref()))
            .collect();
        assert_eq!(
            errs,
            [
                (2, ErrorCode::ImportRowWidth, None),
                (3, ErrorCode::ImportRowWidth, None),
                (4, ErrorCode::CustomerIdInvalid, Some("customer_id")),
                (5, ErrorCode::ImportEncodingInvalid, Some("city")),
            ]
        );
    }

    #[test]
    fn a_row_longer_than_the_limit_is_its_own_error() {
        let mut file = b"customer_id,city\nc1,".to_vec();
        file.extend(std::iter::repeat_n(b'x', super::super::json::MAX_LINE + 1));
        file.extend(b"\nc2,Porto\n");
        let (r, got) = run(Format::Csv, &file);
        r.unwrap();
        assert_eq!(got.rows.len(), 1);
        assert_eq!(
            (got.errors[0].row, got.errors[0].code),
            (1, ErrorCode::ImportLineTooLong)
        );
    }

    #[test]
    fn delimiters_and_ignored_columns() {
        let mut sink = super::super::tests::Collect::default();
        let opts = Options {
            delimiter: b';',
            ignore_unknown_columns: true,
            ..Options::new(Format::Csv)
        };
        parse_wide(
            &b"customer_id;shoe_size;city\nc1;42;Lisbon\n"[..],
            &opts,
            &Schema::default(),
            &mut sink,
        )
        .unwrap();
        assert_eq!(fields(&sink.rows[0]), [("city", "Lisbon")]);
    }

    #[test]
    fn long_rows_fold_per_customer() {
        let file = b"customerId,fieldName,fieldValue\nc1,city,Lisbon\nc1,first_name,Ana\nc1,city,Porto\nc2,city,\nc2,nope,x\nc1,country,PT\n";
        let (r, got) = run(Format::CsvLong, file);
        r.unwrap();
        type Folded<'a> = (u64, &'a str, Vec<(&'a str, &'a str)>);
        let rows: Vec<Folded> = got
            .rows
            .iter()
            .map(|r| (r.row, r.update.customer_id.as_str(), fields(r)))
            .collect();
        assert_eq!(
            rows,
            [
                (1, "c1", vec![("first_name", "Ana"), ("city", "Porto")]),
                (4, "c2", vec![]),
                (6, "c1", vec![("country", "PT")]),
            ]
        );
        assert_eq!(got.errors.len(), 1);
        assert_eq!(
            (got.errors[0].row, got.errors[0].code),
            (5, ErrorCode::FieldUnknown)
        );
        let (r, _) = run(Format::CsvLong, b"id,field,value\nc1,city,x\n");
        assert_eq!(r.unwrap_err().code, ErrorCode::ImportHeaderInvalid);
        let (r, got) = run(Format::CsvLong, b"customer_id,field,value\nc1,city,x\n");
        r.unwrap();
        assert_eq!(got.rows.len(), 1);
    }

    proptest! {
        /// Any cells written by a CSV writer (quotes, delimiters, newlines inside) come
        /// back as the same values, an empty cell as no value.
        #[test]
        fn wide_cells_round_trip(
            rows in prop::collection::vec(("[a-z0-9]{1,8}", ".{0,12}", ".{0,12}"), 1..20),
            delimiter in prop::sample::select(vec![b',', b';', b'\t', b'|']),
        ) {
            let mut w = ::csv::WriterBuilder::new().delimiter(delimiter).from_writer(Vec::new());
            w.write_record(["customer_id", "city", "last_name"]).unwrap();
            for (id, city, last) in &rows {
                w.write_record([id, city, last]).unwrap();
            }
            let bytes = w.into_inner().unwrap();
            let mut sink = super::super::tests::Collect::default();
            let opts = Options { delimiter, ..Options::new(Format::Csv) };
            parse_wide(&bytes[..], &opts, &Schema::default(), &mut sink).unwrap();
            prop_assert!(sink.errors.is_empty(), "{:?}", sink.errors);
            prop_assert_eq!(sink.rows.len(), rows.len());
            for (got, (id, city, last)) in sink.rows.iter().zip(&rows) {
                prop_assert_eq!(got.update.customer_id.as_str(), id.as_str());
                let mut want = Vec::new();
                if !city.is_empty() { want.push(("city", city.as_str())); }
                if !last.is_empty() { want.push(("last_name", last.as_str())); }
                prop_assert_eq!(fields(got), want);
            }
        }
    }
}
