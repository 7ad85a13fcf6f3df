//! Any bytes as an import file in each format: rows and row errors or a file error,
//! never a panic, and every row a parser hands over names a customer. With bit 0x20 of
//! the selector, the file is cut into chunks for a plugin instead: chunks follow one
//! another without gaps, and every CSV chunk starts with the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::error::Problem;
use persona::ingest::chunks::{self, Chunk, Transform};
use persona::ingest::{self, Format, Options, Row, RowError, Sink};
use persona::schema::Schema;

struct Count(u64);

impl Sink for Count {
    fn row(&mut self, row: Row) -> bool {
        assert!(!row.update.customer_id.is_empty());
        assert!(row.row > 0);
        self.0 += 1;
        true
    }
    fn error(&mut self, error: RowError) {
        assert!(error.row > 0);
    }
}

/// Checks the chunks it is given.
struct Chunks {
    next_row: u64,
}

impl Transform for Chunks {
    fn chunk(&mut self, chunk: Chunk, _: &mut dyn Sink) -> Result<(), Problem> {
        assert!(chunk.records > 0);
        assert!(chunk.first_row >= self.next_row, "chunks overlap");
        if let Some(h) = &chunk.header {
            assert!(chunk.body.starts_with(h.as_bytes()) || h.contains('\u{FFFD}'));
        }
        self.next_row = chunk.first_row + chunk.records;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let format = [Format::Csv, Format::CsvLong, Format::Json, Format::Ndjson][usize::from(selector % 4)];
    let mut opts = Options::new(format);
    opts.delimiter = [b',', b';', b'\t', b'|'][usize::from(selector / 4 % 4)];
    opts.ignore_unknown_columns = selector & 0x10 != 0;
    opts.events = selector & 0x40 != 0;
    if selector & 0x20 != 0 {
        let _ = chunks::parse(file, &opts, &mut Chunks { next_row: 1 }, &mut Count(0));
        return;
    }
    let _ = ingest::parse(file, &opts, &Schema::default(), &mut Count(0));
});
