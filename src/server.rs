//! Builds and runs the server: data directory, keys, databases, HTTP, shutdown.
//!
//! [`Server::start`] binds the listener (port 0 picks a free one) and returns the bound
//! address with a handle to await; actix-web stops on SIGTERM/SIGINT, finishing requests
//! in flight. Must run inside an actix system (`actix_web::rt::System`).

use std::net::{SocketAddr, TcpListener};

use actix_web::rt::signal::unix::{Signal, SignalKind, signal};
use actix_web::{App, web};

use crate::auth::{AdminKeySource, KeyRing};
use crate::config::Settings;
use crate::db::{Databases, Persistence};
use crate::http::{self, AppState, Telemetry};
use crate::ingest::Jobs;
use crate::persist::{DataDir, PersistError};
use crate::plugins::Plugins;
use crate::suppression::SuppressionLists;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created.
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The keys or the admin key cannot be read or written, or are unsafe.
    #[error(transparent)]
    Keys(#[from] crate::auth::KeyRingError),
    /// The data directory cannot be opened or locked.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// A setting does not parse.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The address cannot be bound.
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    /// The plugin sandbox cannot start or the plugins directory cannot be read.
    #[error("plugins: {0}")]
    Plugins(#[from] crate::plugins::PluginError),
    /// The suppression lists could not be read.
    #[error(transparent)]
    Suppression(#[from] crate::suppression::OpenError),
    /// Another I/O failure while starting (socket set-up, signal handlers).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A started server.
pub struct Server {
    signals: Signals,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Where the bootstrap admin key came from.
    pub admin_key: AdminKeySource,
    server: actix_web::dev::Server,
    state: web::Data<AppState>,
}

impl Server {
    /// Opens the data directory and keys, binds, and starts serving.
    pub fn start(settings: Settings) -> Result<Server, StartError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::DataDir {
            path: settings.data_dir.clone(),
            source,
        })?;
        let data = DataDir::open(&settings.data_dir)?;
        let (keys, admin_key) =
            KeyRing::open(Some(&settings.data_dir), settings.admin_key.as_deref())?;
        let persistence = Persistence {
            fsync: settings.fsync,
            snapshot_interval: settings.snapshot_every()?,
            segment_refresh: settings.segment_refresh_every()?,
            snapshot_after: if settings.snapshot_after == 0 {
                u64::MAX
            } else {
                settings.snapshot_after
            },
            max_atomic_held: settings.max_atomic_profiles,
        };
        let listener = TcpListener::bind(settings.listen_addr()?)
            .map_err(|e| StartError::Listen(settings.listen.clone(), e))?;
        let addr = listener.local_addr()?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = if settings.workers == 0 {
            cores
        } else {
            settings.workers
        };
        let plugins = Plugins::open(Some(&settings.data_dir.join("plugins")))?;
        let suppression = std::sync::Arc::new(SuppressionLists::open(Some(&settings.data_dir))?);
        let state = web::Data::new(AppState {
            plugins: std::sync::Arc::new(plugins),
            databases: Databases::new(
                data,
                persistence,
                cores,
                std::sync::Arc::clone(&suppression),
            ),
            suppression,
            keys,
            telemetry: Telemetry::install(),
            imports: Jobs::new(settings.max_imports),
            settings,
        });
        // Loading runs beside the listener: /healthz answers at once, /readyz and the
        // database routes say `starting` until every database is back.
        let loader = state.clone();
        std::thread::Builder::new()
            .name("load".into())
            .spawn(move || {
                // Job records first: once the databases are ready, so is their history.
                if let Ok(dirs) = loader.databases.on_disk() {
                    for (name, dir) in dirs {
                        loader
                            .imports
                            .restore(&name, &dir.join(crate::ingest::job::RECORDS));
                    }
                }
                if let Err(e) = loader.databases.load() {
                    tracing::error!(error = %e, "cannot list the databases; the server stays unready");
                }
            })?;
        let app_state = state.clone();
        let server = actix_web::HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(http::configure)
        })
        .workers(workers)
        .shutdown_timeout(10)
        // Our own handlers, installed before `start` returns: a signal that arrives right
        // after the "listening" line must still mean a graceful stop, never the default
        // action of killing the process.
        .disable_signals()
        .listen(listener)?
        .run();
        let signals = Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        };
        Ok(Server {
            signals,
            addr,
            admin_key,
            server,
            state,
        })
    }

    /// Runs until a shutdown signal, then returns once in-flight requests are done and
    /// every database has flushed its log and written a final snapshot.
    pub async fn wait(self) -> std::io::Result<()> {
        let Server {
            mut signals,
            mut server,
            state,
            ..
        } = self;
        let stopped = Self::serve(&mut signals, &mut server).await;
        state.databases.shutdown().await;
        stopped
    }

    async fn serve(
        signals: &mut Signals,
        server: &mut actix_web::dev::Server,
    ) -> std::io::Result<()> {
        let handle = server.handle();
        let signal = Box::pin(async move {
            let name = futures_util::future::select(
                Box::pin(signals.term.recv()),
                Box::pin(signals.int.recv()),
            )
            .await;
            match name {
                futures_util::future::Either::Left(_) => "SIGTERM",
                futures_util::future::Either::Right(_) => "SIGINT",
            }
        });
        match futures_util::future::select(&mut *server, signal).await {
            futures_util::future::Either::Left((done, _)) => done,
            futures_util::future::Either::Right((name, _)) => {
                tracing::info!("{name} received: finishing requests in flight");
                // The server future runs the stop command, so poll both together.
                futures_util::future::join(handle.stop(true), server)
                    .await
                    .1
            }
        }
    }
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Server {
    /// A handle to stop the server from elsewhere (tests, embedding).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}
