//! `persona import`: streams a file to a running server's import endpoint and reports.
//!
//! A client of the HTTP API (`POST /v1/databases/{db}/imports?wait=true`), nothing
//! more: the server parses and applies. The file is sent as it is read, so its size does
//! not matter; a progress bar shows bytes and rows sent per second (rows are counted by
//! line ends, so for a JSON array it counts lines, not elements). Exit codes: 0 when
//! every row was imported, 1 when the server refused the file or the job failed, 2 for
//! a usage or connection problem, 3 when some rows were refused.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::ingest::Format;

/// Flags of `persona import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The database to import into.
    #[arg(long)]
    pub db: String,
    /// The file's format.
    #[arg(long, value_enum)]
    pub format: ImportFormat,
    /// The server's address.
    #[arg(long, env = "PERSONA_URL", default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// An API key allowed to write the database.
    #[arg(long, env = "PERSONA_KEY", hide_env_values = true)]
    pub key: String,
    /// CSV delimiter: `,` `;` `tab` or `|`.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Skip columns the database has no field for, instead of refusing the file.
    #[arg(long)]
    pub ignore_unknown_columns: bool,
    /// Apply every row or none.
    #[arg(long)]
    pub atomic: bool,
    /// No progress bar (it is also left out when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// The file (`-` for standard input).
    pub file: PathBuf,
}

/// `--format`, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// CSV with a header of `customer_id` and field names.
    Csv,
    /// `customerId,fieldName,fieldValue` rows.
    CsvLong,
    /// A JSON array of objects.
    Json,
    /// One JSON object a line.
    Ndjson,
}

impl From<ImportFormat> for Format {
    fn from(f: ImportFormat) -> Self {
        match f {
            ImportFormat::Csv => Format::Csv,
            ImportFormat::CsvLong => Format::CsvLong,
            ImportFormat::Json => Format::Json,
            ImportFormat::Ndjson => Format::Ndjson,
        }
    }
}

/// Exit code: every row imported.
pub const EXIT_OK: i32 = 0;
/// Exit code: the file was refused or the job failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: a usage or connection problem.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the job finished but refused some rows.
pub const EXIT_ROWS_REJECTED: i32 = 3;

/// Counts bytes and line ends as the HTTP client reads the file.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
    lines: u64,
    started: Instant,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.bar.inc(n as u64);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{:.0} rows/s", self.lines as f64 / secs));
        Ok(n)
    }
}

/// Runs `persona import`; returns the process exit code.
pub fn import(args: &ImportArgs) -> anyhow::Result<i32> {
    let (reader, len): (Box<dyn Read + Send>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let f = File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let bar = if args.quiet || !io::IsTerminal::is_terminal(&io::stderr()) {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(len.unwrap_or(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{bytes}/{total_bytes} {bytes_per_sec} {msg} [{elapsed_precise}] {wide_bar}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    };
    let format = serde_json::to_value(Format::from(args.format))?;
    let mut url = reqwest::Url::parse(&args.url)
        .with_context(|| format!("`{}` is not a URL", args.url))?
        .join(&format!("v1/databases/{}/imports", args.db))?;
    url.query_pairs_mut()
        .append_pair("format", format.as_str().unwrap_or_default())
        .append_pair("wait", "true");
    if let Some(d) = &args.delimiter {
        url.query_pairs_mut().append_pair("delimiter", d);
    }
    if args.atomic {
        url.query_pairs_mut().append_pair("atomic", "true");
    }
    if args.ignore_unknown_columns {
        url.query_pairs_mut()
            .append_pair("unknown_columns", "ignore");
    }
    let body = Counted {
        inner: reader,
        bar: bar.clone(),
        lines: 0,
        started: Instant::now(),
    };
    let body = match len {
        Some(n) => reqwest::blocking::Body::sized(body, n),
        None => reqwest::blocking::Body::new(body),
    };
    let started = Instant::now();
    let res = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()?
        .post(url)
        .bearer_auth(&args.key)
        .body(body)
        .send()
        .with_context(|| format!("cannot reach {}", args.url))?;
    bar.finish_and_clear();
    let status = res.status();
    let text = res.text().context("reading the answer")?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let detail = answer["detail"].as_str().unwrap_or("");
        let code = answer["code"].as_str().unwrap_or("");
        eprintln!("refused ({status}, {code}): {detail}");
        // The file itself was refused, or the request was (a key, a database, a flag).
        return Ok(if code.starts_with("import_") {
            EXIT_FAILED
        } else {
            EXIT_USAGE
        });
    }
    Ok(report(&answer, started.elapsed()))
}

/// Prints the finished job's summary and its refused rows; returns the exit code.
fn report(job: &Value, took: Duration) -> i32 {
    let n = |k: &str| job[k].as_u64().unwrap_or(0);
    let (total, accepted, rejected) = (n("rows_total"), n("rows_accepted"), n("rows_rejected"));
    let secs = took.as_secs_f64().max(1e-3);
    eprintln!(
        "job {}: {} — {total} rows read, {accepted} imported, {rejected} refused in {secs:.1} s \
         ({:.0} rows/s)",
        job["job"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?"),
        total as f64 / secs
    );
    let errors = job["errors"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for e in errors.iter().take(50) {
        let column = e["column"]
            .as_str()
            .map(|c| format!(", column {c}"))
            .unwrap_or_default();
        eprintln!(
            "  row {}{column}: {} ({})",
            e["row"],
            e["detail"].as_str().unwrap_or(""),
            e["code"].as_str().unwrap_or("")
        );
    }
    if rejected as usize > errors.len().min(50) {
        eprintln!(
            "  ... {} more refused rows (GET the job for the first 1000)",
            rejected as usize - errors.len().min(50)
        );
    }
    if job["status"] == "failed" {
        eprintln!(
            "the job stopped early: {}",
            job["error"]["detail"].as_str().unwrap_or("")
        );
        return EXIT_FAILED;
    }
    if rejected > 0 {
        EXIT_ROWS_REJECTED
    } else {
        EXIT_OK
    }
}
