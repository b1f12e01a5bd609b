//! The store's one error type.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} already exists")]
    Conflict { what: String },
    /// What a change refers to does not exist (an unknown repository, workflow, step or agent).
    #[error("{what} not found")]
    NotFound { what: String },
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
    /// New lines for a step whose log was finished (compressed); repeats of stored lines are not
    /// an error.
    #[error("log of step {step_id} is finished and takes no more lines")]
    LogFinished { step_id: i64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> StoreError {
        StoreError::NotFound { what: what.into() }
    }
}

/// Turns a unique violation into `Conflict { what }` and a foreign key violation into
/// `NotFound { what: missing }`; any other error stays a database error.
pub(crate) fn classify(error: sqlx::Error, conflict: impl FnOnce() -> String, missing: impl FnOnce() -> String) -> StoreError {
    if let sqlx::Error::Database(database_error) = &error {
        if database_error.is_unique_violation() {
            return StoreError::Conflict { what: conflict() };
        }
        if database_error.is_foreign_key_violation() {
            return StoreError::NotFound { what: missing() };
        }
    }
    StoreError::Database(error)
}
