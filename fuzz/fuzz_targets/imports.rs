//! Any bytes as an import file in each format: rows and row errors or a file error,
//! never a panic, and every row a parser hands over names a customer.
#![no_main]

use libfuzzer_sys::fuzz_target;
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

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let format = [Format::Csv, Format::CsvLong, Format::Json, Format::Ndjson][usize::from(selector % 4)];
    let mut opts = Options::new(format);
    opts.delimiter = [b',', b';', b'\t', b'|'][usize::from(selector / 4 % 4)];
    opts.ignore_unknown_columns = selector & 0x10 != 0;
    let _ = ingest::parse(file, &opts, &Schema::default(), &mut Count(0));
});
