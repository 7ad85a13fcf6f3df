//! Builds and runs the server: data directory, keys, databases, HTTP, shutdown.
//!
//! [`Server::start`] binds the listener (port 0 picks a free one) and returns the bound
//! address with a handle to await; actix-web stops on SIGTERM/SIGINT, finishing requests
//! in flight. Must run inside an actix system (`actix_web::rt::System`).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::middleware::from_fn;
use actix_web::{App, web};

use crate::auth::{AdminKeySource, KeyRing};
use crate::config::Settings;
use crate::db::Databases;
use crate::http::{self, AppState, Telemetry};

/// A started server.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Where the bootstrap admin key came from.
    pub admin_key: AdminKeySource,
    server: actix_web::dev::Server,
}

impl Server {
    /// Opens the data directory and keys, binds, and starts serving.
    pub fn start(settings: Settings) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create data directory {}: {e}",
                settings.data_dir.display()
            )
        })?;
        let (keys, admin_key) =
            KeyRing::open(Some(&settings.data_dir), settings.admin_key.as_deref())?;
        let listener = TcpListener::bind(settings.listen_addr()?)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let addr = listener.local_addr()?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = if settings.workers == 0 {
            cores
        } else {
            settings.workers
        };
        let state = web::Data::new(AppState {
            databases: Databases::new(cores),
            keys,
            ready: AtomicBool::new(false),
            telemetry: Telemetry::install(),
            settings,
        });
        // Nothing to load until persistence lands: ready as soon as we listen.
        state.ready.store(true, Ordering::Release);
        let app_state = state.clone();
        let server = actix_web::HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(http::ops_track))
                .configure(http::configure)
        })
        .workers(workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Server {
            addr,
            admin_key,
            server,
        })
    }

    /// Runs until a shutdown signal, then returns once in-flight requests are done.
    pub async fn wait(self) -> std::io::Result<()> {
        self.server.await
    }
}
