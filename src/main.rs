//! The `persona` command: parse flags, load settings, start logging, run the server (or
//! `persona import`, a client of one).

use anyhow::Context;
use clap::Parser;
use persona::auth::AdminKeySource;
use persona::config::{Cli, Command, LogFormat, Settings};
use persona::server::Server;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    tune_allocator();
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

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_t` (mimalloc.h, v3), which
/// libmimalloc-sys does not name for v3.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays mapped before mimalloc gives it back to the OS: jemalloc's
/// default (`dirty_decay_ms`, which Redis keeps). mimalloc's own 1 s is shorter than the
/// gaps in an import (a snapshot's buffers, a map's old table): pages given back were
/// faulted in again moments later, each a 2 MiB transparent huge page zeroed anew, ten
/// times the memory the import kept, and a tenth of its CPU.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Sets mimalloc's purge delay, unless `MIMALLOC_PURGE_DELAY` set it for this process.
fn tune_allocator() {
    // SAFETY: mimalloc's options are plain integers read on each purge; this runs first in
    // `main`, before any other thread exists, as `mi_option_set_default` asks.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_is_the_option_mimalloc_v3_keeps_at_15_and_is_set() {
        // Only when the environment leaves it at its default (v3's 1000 ms, which no
        // option beside it shares): a renumbered enum (a libmimalloc-sys upgrade) fails
        // here. RESET_DELAY is its old name.
        let set = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"];
        if set.iter().all(|v| std::env::var_os(v).is_none()) {
            // SAFETY: reading options; mimalloc initialised them all when it loaded.
            let delay = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(delay(), 1000);
            super::tune_allocator();
            assert_eq!(delay(), super::PURGE_DELAY_MS);
        }
    }
}
