//! The Gantry server: REST API, webhooks, polling and cron, the queue and the agent protocol,
//! secrets, live logs, commit statuses and notifications, deployers' events, metrics.
//!
//! `serve` runs it; `app` builds the HTTP application alone (for tests through `oneshot`).

pub mod agent_api;
pub mod api;
pub mod app;
pub mod artifacts;
pub mod auth;
pub mod background;
pub mod config;
pub mod crypto;
pub mod delivery_metrics;
pub mod deployments;
pub mod egress;
pub mod error;
pub mod hooks;
pub mod hub;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod notify;
pub mod promotion_gates;
pub mod queue;
pub mod secrets;
pub mod state;
pub mod trigger;
pub mod ui;
pub mod views;

pub use config::ServerConfig;
pub use state::AppState;

use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the data folder {path} (or make it private): {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Key(#[from] crypto::KeyError),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Opens the store (migrating it) and the secret key: everything the app needs.
pub async fn open(config: ServerConfig) -> Result<AppState, ServerError> {
    private_data_dir(&config.data_dir).map_err(|source| ServerError::DataDir { path: config.data_dir.display().to_string(), source })?;
    let database = match &config.database_url {
        Some(url) => store::Database::Postgres(url.clone()),
        None => store::Database::Sqlite(config.data_dir.join("gantry.db")),
    };
    let secrets = crypto::SecretBox::load(config.secret_key.as_deref(), &config.data_dir)?;
    let store = store::Store::open(&database, &config.data_dir, secrets.clone()).await?;
    Ok(AppState::new(config, store, secrets, metrics::handle()))
}

/// Creates the data folder when missing, and makes it private to the server's user: it holds
/// the database, the secret key, git mirrors and logs.
fn private_data_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Runs the server until `shutdown`: HTTP, then the background loops. Open requests finish
/// before it returns (long-polls end at once).
pub async fn serve(config: ServerConfig, shutdown: CancellationToken) -> Result<(), ServerError> {
    let listen = config.listen;
    let state = open(config).await?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| ServerError::Listen { address: listen.to_string(), source })?;
    serve_on(state, listener, shutdown).await
}

/// As `serve`, on a listener already bound (tests bind port 0).
pub async fn serve_on(state: AppState, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> Result<(), ServerError> {
    let address = listener.local_addr().map(|address| address.to_string()).unwrap_or_default();
    ui::account::prepare_first_start(&state).await;
    let loops = background::spawn_all(&state, &shutdown);
    let state_shutdown = state.shutdown.clone();
    let on_shutdown = shutdown.clone();
    tokio::spawn(async move {
        on_shutdown.cancelled().await;
        state_shutdown.cancel();
    });
    tracing::info!(%address, database = state.store.kind(), "gantry server listening");
    let app = app::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Without TCP_NODELAY a streamed answer's first chunk (a log range, an event stream's first
    // line) waits on Nagle's algorithm and the client's delayed ACK: about 40 ms each.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    let result = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned()).await;
    shutdown.cancel();
    for task in loops {
        let _ = task.await;
    }
    result.map_err(ServerError::Serve)
}
