//! The client commands: `persona import` (streams a file to a running server's import
//! endpoint and reports) and `persona plugin check|run` (a partner's plugin, tried
//! without a server, in the same sandbox the server uses).
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

/// Flags of `persona plugin`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PluginCommand {
    /// Is this file a valid plugin? Compiles it and checks it against the contract.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Runs a payload through a plugin, without a server, and prints the updates it
    /// returns as JSON.
    Run(PluginRunArgs),
}

/// Flags of `persona plugin run`.
#[derive(Debug, Clone, Args)]
pub struct PluginRunArgs {
    /// The component (`.wasm`).
    pub file: PathBuf,
    /// The payload (`-` for standard input).
    #[arg(long)]
    pub input: PathBuf,
    /// The target database's fields: the body of `GET /v1/databases/{db}/fields`, or a
    /// JSON array of field specs. The nine default fields are always there.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// The payload's content type.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// A request header, `name: value` (repeatable), such as `x-shopify-topic: orders/create`.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Present the payload as a chunk of an import file instead of a webhook body.
    #[arg(long)]
    pub import: bool,
    /// Time budget in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub timeout_ms: u32,
    /// Memory cap in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: u32,
}

/// Runs `persona plugin ...`; returns the exit code: 0 fine, 1 the plugin is invalid or
/// failed on the payload, 2 a usage problem.
pub fn plugin(cmd: &PluginCommand) -> anyhow::Result<i32> {
    use crate::plugins::{Plugins, host};
    let plugins = Plugins::open(None).context("cannot start the plugin sandbox")?;
    let file = match cmd {
        PluginCommand::Check { file } | PluginCommand::Run(PluginRunArgs { file, .. }) => file,
    };
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let compiled = match plugins.check(&wasm) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: not a valid plugin ({}): {e}", file.display(), e.code());
            return Ok(EXIT_FAILED);
        }
    };
    let args = match cmd {
        PluginCommand::Check { .. } => {
            println!(
                "{}: a valid persona:plugin/importer@1.0.0 component ({} bytes; exports: {})",
                file.display(),
                wasm.len(),
                compiled.exports.join(", ")
            );
            return Ok(EXIT_OK);
        }
        PluginCommand::Run(args) => args,
    };
    let settings = crate::plugins::PluginSettings {
        timeout_ms: args.timeout_ms,
        memory_mib: args.memory_mib,
    };
    settings.check().map_err(|p| anyhow::anyhow!(p.detail))?;
    let body = if args.input.as_os_str() == "-" {
        let mut b = Vec::new();
        io::stdin().read_to_end(&mut b)?;
        b
    } else {
        std::fs::read(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?
    };
    let schema = match &args.schema {
        Some(path) => schema_file(path)?,
        None => crate::schema::Schema::default(),
    };
    let headers = args
        .headers
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header `{h}` is not `name: value`"))?;
            Ok(host::Header {
                name: name.trim().to_ascii_lowercase(),
                value: value.trim().to_owned(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let payload = host::Payload {
        body,
        content_type: args.content_type.clone(),
        headers,
        source: if args.import {
            host::Source::Import
        } else {
            host::Source::Webhook
        },
        database: "cli".into(),
        fields: crate::plugins::convert::fields_of(&schema),
        chunk: args.import.then_some(host::Chunk {
            index: 0,
            first_row: 1,
            header: None,
        }),
    };
    match plugins.run_once(&compiled, &payload, settings.limits()) {
        Ok(output) => {
            let (updates, errors) = (output.updates.len(), output.errors.len());
            println!("{}", serde_json::to_string_pretty(&output)?);
            eprintln!("{updates} updates, {errors} record errors");
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("the plugin failed ({}): {e}", e.code());
            Ok(EXIT_FAILED)
        }
    }
}

/// A schema from a fields file: `{"fields": [...]}` or `[...]`.
fn schema_file(path: &std::path::Path) -> anyhow::Result<crate::schema::Schema> {
    use crate::schema::{FieldDef, FieldType, Schema};
    #[derive(serde::Deserialize)]
    struct Spec {
        name: String,
        #[serde(rename = "type")]
        ty: FieldType,
        #[serde(default)]
        required: bool,
        #[serde(default)]
        values: Option<Vec<String>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum File {
        Wrapped { fields: Vec<Spec> },
        Bare(Vec<Spec>),
    }
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let specs = match serde_json::from_slice::<File>(&text)
        .with_context(|| format!("{}: not a list of fields", path.display()))?
    {
        File::Wrapped { fields } | File::Bare(fields) => fields,
    };
    let mut schema = Schema::default();
    for s in specs {
        if schema.get(&s.name).is_some() {
            continue;
        }
        let mut def = FieldDef::custom(&s.name, s.ty);
        def.required = s.required;
        def.values = s.values.unwrap_or_default();
        schema = schema
            .with_field(def)
            .map_err(|p| anyhow::anyhow!("{}: field `{}`: {}", path.display(), s.name, p.detail))?;
    }
    Ok(schema)
}
