//! Gantry's persistence. Metadata lives in SQLite (WAL, in the data folder) or PostgreSQL,
//! chosen at start by the database address; log bodies live in files (`logs`), never in rows.
//!
//! Every time is Unix milliseconds (`i64`) in the store; callers pass `now` so that tests can
//! fix the clock. All queries use `$1`-style parameters and SQL both databases accept: they go
//! through sqlx's `Any` driver, so flags are stored as 0/1 integers and lists or maps as JSON
//! text. The methods of `Store` live in one module per aggregate: `users`, `repos`, `secrets`,
//! `registries` (credentials for private registries),
//! `builds` (with workflows and steps), `queue` (workflows waiting for and held by agents),
//! `agents`, `triggers` (webhook deliveries, polled refs, crons, approved remotes), `notifiers`
//! and `environments` (what deployers reported: deployments and drift).

#[macro_use]
mod columns;

mod agents;
mod artifacts;
mod build_plan;
mod builds;
mod environments;
mod error;
pub mod logs;
mod notifiers;
mod promotions;
mod queue;
mod records;
mod registries;
mod repos;
mod seal;
mod secrets;
mod triggers;
mod users;

pub use error::StoreError;
pub use logs::LogFiles;
pub use records::*;
pub use seal::{DecryptError, KeyError, SecretBox};

use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

/// Where the metadata lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created when missing, opened in WAL mode.
    Sqlite(std::path::PathBuf),
    /// `postgres://user:password@host/db`.
    Postgres(String),
}

/// The store: a pool of connections and the log folder. Cheap to clone; every method may be
/// called from many tasks at once.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    kind: Kind,
    logs: LogFiles,
    /// Seals repository credentials on write and opens them on read.
    sealer: SecretBox,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite connection waits for another one's write lock before failing. Writes are
/// short, so this is only reached when something is badly wrong.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite serializes writers anyway; a few connections let reads go on beside a write (WAL).
const SQLITE_CONNECTIONS: u32 = 8;
const POSTGRES_CONNECTIONS: u32 = 10;

impl Store {
    /// Opens (creating when missing) and migrates the database; logs go to `data_dir/logs`.
    /// Repository credentials are sealed with `sealer`; any stored before they were sealed are
    /// sealed now.
    pub async fn open(database: &Database, data_dir: &Path, sealer: SecretBox) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let logs = LogFiles::new(&data_dir.join("logs"))?;
        let (pool, kind) = match database {
            Database::Sqlite(path) => (open_sqlite(path).await?, Kind::Sqlite),
            Database::Postgres(url) => (open_postgres(url).await?, Kind::Postgres),
        };
        let migrator = match kind {
            Kind::Sqlite => &SQLITE_MIGRATIONS,
            Kind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        let store = Store { pool, kind, logs, sealer };
        store.seal_plain_credentials().await?;
        tracing::info!(database = store.kind(), "store opened");
        Ok(store)
    }

    pub fn logs(&self) -> &LogFiles {
        &self.logs
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }

    /// For `/readyz`: one round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection of the pool, waiting for those in use to come back (shutdown).
    /// Any later call fails.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn open_sqlite(path: &Path) -> Result<AnyPool, StoreError> {
    let location = path.display().to_string();
    let open_error = |source: sqlx::Error| StoreError::Open { location: location.clone(), source };
    // An absolute path keeps the file where it is meant to be once it goes through a URL below.
    let path = std::path::absolute(path).map_err(|error| open_error(sqlx::Error::Io(error)))?;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|error| open_error(sqlx::Error::Io(error)))?;
    }
    make_private(&path).map_err(|error| open_error(sqlx::Error::Io(error)))?;
    let url = sqlite_url(&path).map_err(open_error)?;
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    // The `Any` driver makes its connections from a URL, which cannot carry the journal mode. WAL
    // is a property of the file, though: one direct connection sets it (and creates the file),
    // and every later connection finds it there.
    let connection = options.connect().await.map_err(open_error)?;
    connection.close().await.map_err(open_error)?;
    let pragmas =
        format!("PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL", SQLITE_BUSY_TIMEOUT.as_millis());
    AnyPoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS)
        .after_connect(move |connection, _metadata| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas)).execute(&mut *connection).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(open_error)
}

/// Creates the database file readable by its owner alone when it is missing, and takes any
/// other access away from an existing one and its WAL files: it holds hashes and ciphertexts.
/// SQLite gives the WAL files it creates the permissions of the database file.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

/// `sqlite:///…?mode=rwc` with every byte of the path that is not plainly safe percent-encoded
/// (sqlx decodes the path, so a `%` in a folder name must be encoded too).
fn sqlite_url(path: &Path) -> Result<String, sqlx::Error> {
    let Some(text) = path.to_str() else {
        return Err(sqlx::Error::Configuration(format!("the path {} is not UTF-8", path.display()).into()));
    };
    let mut url = String::from("sqlite://");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

async fn open_postgres(url: &str) -> Result<AnyPool, StoreError> {
    AnyPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .connect(url)
        .await
        .map_err(|source| StoreError::Open { location: without_password(url), source })
}

/// The URL with its password replaced, fit for messages and logs.
fn without_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..].find(['/', '?', '#']).map_or(url.len(), |end| authority_start + end);
    let authority = &url[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    match user_info.find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..authority_start], &user_info[..colon], &url[authority_start + at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{sqlite_url, without_password};

    #[test]
    fn sqlite_paths_are_encoded_in_urls() {
        assert_eq!(sqlite_url(Path::new("/var/lib/gantry/gantry.db")).unwrap(), "sqlite:///var/lib/gantry/gantry.db?mode=rwc");
        assert_eq!(sqlite_url(Path::new("/data/a b?#%41/x.db")).unwrap(), "sqlite:///data/a%20b%3F%23%2541/x.db?mode=rwc");
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(without_password("postgres://gantry:secret@127.0.0.1:5432/db"), "postgres://gantry:***@127.0.0.1:5432/db");
        assert_eq!(without_password("postgres://gantry@host/db"), "postgres://gantry@host/db");
        assert_eq!(without_password("postgres://host/db?user=a"), "postgres://host/db?user=a");
        assert_eq!(without_password("not a url"), "not a url");
    }
}
