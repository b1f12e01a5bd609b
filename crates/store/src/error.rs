//! The store's one error type.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("cannot open the database {location}: {source}")]
    Open { location: String, source: sqlx::Error },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("log file {path}: {source}")]
    Log { path: std::path::PathBuf, source: std::io::Error },
    /// A log batch that does not continue the stored lines (a gap): resend from `expected`.
    #[error("log lines of step {step_id} must continue at {expected}, got {got}")]
    LogGap { step_id: i64, expected: u64, got: u64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}
