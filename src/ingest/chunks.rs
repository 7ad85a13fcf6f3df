//! Cuts an import file into chunks at record boundaries, for a [`Transform`] (an
//! import plugin) that reads a chunk at a time.
//!
//! - CSV: records end at a line break outside quotes; every chunk starts with the file's
//!   header row, so each chunk reads on its own.
//! - NDJSON (and any line-based format): records are lines.
//! - JSON: one document, given whole (at most [`MAX_RECORD`] bytes).
//!
//! Finding CSV record ends needs only quote parity (RFC 4180 escapes a quote by
//! doubling it, which flips parity twice), so it is a byte scan rather than a CSV parser:
//! the plugin parses the records.

use std::io::Read;

use super::{Format, Options, RowError, Sink};
use crate::error::{ErrorCode, Problem};

/// A chunk is cut once it holds this many bytes of records.
pub const CHUNK_BYTES: usize = 256 << 10;
/// The largest record (and JSON document) a chunk may carry.
pub const MAX_RECORD: usize = 16 << 20;

/// One piece of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 0 for the first.
    pub index: u32,
    /// The row number of its first record (as [`super::Row`] counts).
    pub first_row: u64,
    /// The records it holds.
    pub records: u64,
    /// CSV: the header row (without its line break).
    pub header: Option<String>,
    /// The bytes: for CSV the header line, then the records.
    pub body: Vec<u8>,
}

/// Turns a chunk into rows and row errors (an import plugin).
pub trait Transform {
    /// Reads one chunk into `sink`. `Err` fails the whole import (the plugin trapped,
    /// ran out of time...); rows already handed over stay applied.
    fn chunk(&mut self, chunk: Chunk, sink: &mut dyn Sink) -> Result<(), Problem>;
}

/// Reads `input` in chunks into `transform`.
pub fn parse(
    mut input: impl Read,
    opts: &Options,
    transform: &mut dyn Transform,
    sink: &mut dyn Sink,
) -> Result<(), Problem> {
    match opts.format {
        Format::Json => {
            let mut body = Vec::new();
            (&mut input)
                .take(MAX_RECORD as u64 + 1)
                .read_to_end(&mut body)
                .map_err(read_failed)?;
            if body.len() > MAX_RECORD {
                return Err(Problem::new(
                    ErrorCode::ImportTooLarge,
                    format!(
                        "a JSON file for a plugin is read whole, and this one is over {MAX_RECORD} bytes: send NDJSON, which is cut into chunks"
                    ),
                ));
            }
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(Problem::new(ErrorCode::ImportEmpty, "the file is empty"));
            }
            let chunk = Chunk {
                index: 0,
                first_row: 1,
                records: 1,
                header: None,
                body,
            };
            transform.chunk(chunk, sink)
        }
        Format::Csv | Format::CsvLong => Cutter::new(true).run(input, transform, sink),
        Format::Ndjson => Cutter::new(false).run(input, transform, sink),
    }
}

fn read_failed(e: std::io::Error) -> Problem {
    Problem::new(
        ErrorCode::ImportUploadFailed,
        format!("the file could not be read to its end: {e}"),
    )
}

/// Collects records into chunks.
struct Cutter {
    csv: bool,
    header: Option<Vec<u8>>,
    chunk: Vec<u8>,
    records: u64,
    next_row: u64,
    index: u32,
    // The record being read, and whether the scan is inside quotes.
    record: Vec<u8>,
    quoted: bool,
    // An NDJSON line over the limit is being skipped.
    skipping: bool,
}

impl Cutter {
    fn new(csv: bool) -> Self {
        Cutter {
            csv,
            header: None,
            chunk: Vec::with_capacity(CHUNK_BYTES + 4096),
            records: 0,
            next_row: 1,
            index: 0,
            record: Vec::new(),
            quoted: false,
            skipping: false,
        }
    }

    fn run(
        mut self,
        mut input: impl Read,
        transform: &mut dyn Transform,
        sink: &mut dyn Sink,
    ) -> Result<(), Problem> {
        let mut buf = vec![0u8; 64 << 10];
        let mut seen_any = false;
        loop {
            let n = input.read(&mut buf).map_err(read_failed)?;
            if n == 0 {
                break;
            }
            seen_any = true;
            let mut start = 0;
            for i in 0..n {
                let b = buf[i];
                if self.csv && b == b'"' {
                    self.quoted = !self.quoted;
                }
                if b == b'\n' && !self.quoted {
                    self.take(&buf[start..=i]);
                    start = i + 1;
                    self.end_record(transform, sink)?;
                }
            }
            self.take(&buf[start..n]);
            if self.record.len() > MAX_RECORD {
                // Held no further: the rest of the record is skipped up to its end.
                self.skipping = true;
                self.record.clear();
            }
        }
        if !self.record.is_empty() || self.skipping {
            self.record.push(b'\n');
            self.end_record(transform, sink)?;
        }
        if !seen_any || (self.csv && self.header.is_none()) {
            return Err(Problem::new(ErrorCode::ImportEmpty, "the file is empty"));
        }
        if self.csv && self.next_row == 1 {
            return Err(Problem::new(
                ErrorCode::ImportNoRows,
                "the file has a header row but no rows",
            ));
        }
        self.flush(transform, sink)
    }

    fn take(&mut self, bytes: &[u8]) {
        if !self.skipping {
            self.record.extend_from_slice(bytes);
        }
    }

    fn end_record(
        &mut self,
        transform: &mut dyn Transform,
        sink: &mut dyn Sink,
    ) -> Result<(), Problem> {
        let record = std::mem::take(&mut self.record);
        if self.skipping || record.len() > MAX_RECORD {
            if self.csv {
                return Err(Problem::new(
                    ErrorCode::ImportLineTooLong,
                    format!(
                        "row {} is longer than {MAX_RECORD} bytes (an unbalanced quote?)",
                        self.next_row
                    ),
                ));
            }
            // The chunk so far goes first, so that a chunk's rows stay contiguous.
            self.flush(transform, sink)?;
            self.skipping = false;
            sink.error(RowError::new(
                self.next_row,
                ErrorCode::ImportLineTooLong,
                format!("line {} is longer than {MAX_RECORD} bytes", self.next_row),
            ));
            self.next_row += 1;
            return Ok(());
        }
        if self.csv && self.header.is_none() {
            let line = record.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&record);
            if line.iter().all(u8::is_ascii_whitespace) {
                return Err(Problem::new(
                    ErrorCode::ImportEmpty,
                    "the header row is empty",
                ));
            }
            self.header = Some(line.to_vec());
            return Ok(());
        }
        // A blank CSV line is no record (the built-in importer and csv-core skip it too),
        // so it must not count in row numbers.
        if self.csv && record.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if self.chunk.is_empty()
            && let Some(h) = &self.header
        {
            self.chunk.extend_from_slice(h);
        }
        self.chunk.extend_from_slice(&record);
        self.records += 1;
        self.next_row += 1;
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush(transform, sink)?;
        }
        Ok(())
    }

    fn flush(&mut self, transform: &mut dyn Transform, sink: &mut dyn Sink) -> Result<(), Problem> {
        if self.records == 0 {
            return Ok(());
        }
        let header = self.header.as_ref().map(|h| {
            String::from_utf8_lossy(h)
                .trim_end_matches(['\r', '\n'])
                .to_owned()
        });
        let chunk = Chunk {
            index: self.index,
            first_row: self.next_row - self.records,
            records: self.records,
            header,
            body: std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES + 4096)),
        };
        self.index += 1;
        self.records = 0;
        transform.chunk(chunk, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tests::Collect;

    #[derive(Default)]
    struct Keep(Vec<Chunk>);

    impl Transform for Keep {
        fn chunk(&mut self, chunk: Chunk, _: &mut dyn Sink) -> Result<(), Problem> {
            self.0.push(chunk);
            Ok(())
        }
    }

    fn cut(format: Format, input: &[u8]) -> (Result<(), Problem>, Vec<Chunk>, Collect) {
        let mut keep = Keep::default();
        let mut sink = Collect::default();
        let r = parse(input, &Options::new(format), &mut keep, &mut sink);
        (r, keep.0, sink)
    }

    #[test]
    fn csv_chunks_repeat_the_header_and_keep_quoted_line_breaks() {
        let mut file = b"\xEF\xBB\xBFid,note\r\n".to_vec();
        for i in 0..40_000 {
            file.extend_from_slice(format!("c{i},\"two\nlines, \"\"quoted\"\"\"\r\n").as_bytes());
        }
        let (r, chunks, _) = cut(Format::Csv, &file);
        r.unwrap();
        assert!(chunks.len() > 1);
        let mut row = 1;
        for c in &chunks {
            assert!(c.body.starts_with(b"id,note\r\n"));
            assert_eq!(c.header.as_deref(), Some("id,note"));
            assert_eq!(c.first_row, row);
            let text = String::from_utf8(c.body.clone()).unwrap();
            let first = text.lines().nth(1).unwrap();
            assert_eq!(first, format!("c{},\"two", row - 1));
            row += c.records;
        }
        assert_eq!(row - 1, 40_000);
    }

    #[test]
    fn blank_csv_lines_are_no_rows() {
        let (r, chunks, _) = cut(Format::Csv, b"id,x\n\r\nc1,a\n\nc2,b\n");
        r.unwrap();
        assert_eq!((chunks[0].first_row, chunks[0].records), (1, 2));
        assert_eq!(chunks[0].body, b"id,x\nc1,a\nc2,b\n");
    }

    #[test]
    fn ndjson_lines_and_a_last_line_without_break() {
        let (r, chunks, _) = cut(Format::Ndjson, b"{\"a\":1}\n\n{\"a\":2}");
        r.unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].records, 3);
        assert_eq!(chunks[0].body, b"{\"a\":1}\n\n{\"a\":2}\n");
    }

    #[test]
    fn empty_and_header_only_files_are_refused() {
        assert_eq!(
            cut(Format::Csv, b"").0.unwrap_err().code,
            ErrorCode::ImportEmpty
        );
        assert_eq!(
            cut(Format::Csv, b"id,x\n").0.unwrap_err().code,
            ErrorCode::ImportNoRows
        );
        assert_eq!(
            cut(Format::Json, b"  \n").0.unwrap_err().code,
            ErrorCode::ImportEmpty
        );
    }

    #[test]
    fn an_overlong_ndjson_line_is_one_row_error() {
        let mut file = b"{\"a\":1}\n".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_RECORD + 10));
        file.extend_from_slice(b"\n{\"a\":3}\n");
        let (r, chunks, sink) = cut(Format::Ndjson, &file);
        r.unwrap();
        assert_eq!(sink.errors.len(), 1);
        assert_eq!(sink.errors[0].row, 2);
        let rows: u64 = chunks.iter().map(|c| c.records).sum();
        assert_eq!(rows, 2);
        assert_eq!(
            chunks.last().unwrap().first_row + chunks.last().unwrap().records - 1,
            3
        );
    }
}
