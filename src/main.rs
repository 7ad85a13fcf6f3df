//! The `persona` command: parse flags, load settings, start logging, run the server (or
//! `persona import`, a client of one).

use anyhow::Context;
use clap::Parser;
use persona::auth::AdminKeySource;
use persona::config::{Cli, Command, LogFormat, Settings};
use persona::server::Server;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Import(args)) => {
            let code = persona::cli::import(&args).unwrap_or_else(|e| {
                eprintln!("persona import: {e:#}");
                persona::cli::EXIT_USAGE
            });
            std::process::exit(code);
        }
        Some(Command::Plugin(cmd)) => {
            // A plugin's `log` lines, on stderr beside the summary.
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new("info"))
                .with_writer(std::io::stderr)
                .init();
            let code = persona::cli::plugin(&cmd).unwrap_or_else(|e| {
                eprintln!("persona plugin: {e:#}");
                persona::cli::EXIT_USAGE
            });
            std::process::exit(code);
        }
        None => cli.serve,
    };
    let settings = Settings::load(&args)?;
    init_logging(&settings)?;
    actix_web::rt::System::new().block_on(async move {
        let server = Server::start(settings).context("could not start")?;
        match &server.admin_key {
            AdminKeySource::Generated(path) => tracing::info!(
                "created the admin key in {} (readable by you alone); send it as `Authorization: Bearer <key>`",
                path.display()
            ),
            AdminKeySource::File(path) => tracing::info!("admin key: {}", path.display()),
            AdminKeySource::Setting => tracing::info!("admin key: from the admin_key setting"),
        }
        tracing::info!("persona listening on http://{}", server.addr);
        server.wait().await?;
        tracing::info!("persona stopped");
        Ok(())
    })
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.log_level)
        .with_context(|| format!("log_level `{}`", settings.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

// mimalloc: profiles are many small allocations made and freed on several threads
// (writes, snapshot loads); glibc's allocator was a fifth of a snapshot load's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
