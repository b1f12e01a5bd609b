//! The deployer's secret store: values that never go into git, kept sealed (AES-256-GCM, the
//! same sealing as the server's) in one file in the deployer's data folder, with the key from
//! `GANTRY_DEPLOYER_SECRET_KEY` or a 0600 key file beside it. Each value has a version, new
//! whenever the value changes; an application's spec digest covers the versions of the secrets
//! it uses, so setting a new value rolls exactly those applications, and setting the same
//! value again rolls nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::target::SecretMaterial;

const STORE_FILE: &str = "secrets.json";
const KEY_FILE: &str = "secret.key";
const LOCK_FILE: &str = "secrets.lock";

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a secret store this deployer can read: {reason}")]
    Corrupt { path: String, reason: String },
    #[error(transparent)]
    Key(#[from] seal::KeyError),
    #[error("the secret `{0}` cannot be opened with this key (was GANTRY_DEPLOYER_SECRET_KEY changed?)")]
    Decrypt(String),
    #[error("`{0}` is not a secret name: use letters, digits, `_`, `-` and `.` (at most 64)")]
    BadName(String),
}

/// What the store says about one secret; never its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    pub name: String,
    pub version: String,
    /// Unix seconds.
    pub updated_at: u64,
}

/// What `set` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Created,
    /// A new value: a new version; the applications using it roll.
    Rotated,
    /// The value it already had: nothing changes.
    Unchanged,
}

#[derive(Default, Serialize, Deserialize)]
struct StoreFile {
    secrets: BTreeMap<String, StoredSecret>,
    /// Registry logins by host (`registry.example.com`, `127.0.0.1:5001`).
    #[serde(default)]
    registries: BTreeMap<String, StoredLogin>,
}

#[derive(Serialize, Deserialize)]
struct StoredLogin {
    username: String,
    /// Base64 of nonce and ciphertext of the password.
    sealed: String,
    updated_at: u64,
}

/// A registry login the deployer pulls and polls with.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    pub host: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "RegistryLogin({}@{})", self.username, self.host)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSecret {
    version: String,
    /// Base64 of nonce and ciphertext.
    sealed: String,
    updated_at: u64,
}

/// The store in one data folder.
pub struct SecretStore {
    folder: PathBuf,
    sealer: seal::Sealer,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SecretStore({})", self.folder.display())
    }
}

impl SecretStore {
    /// The store in `folder` (created private when missing), sealed with `configured_key` or the
    /// folder's key file.
    pub fn open(folder: &Path, configured_key: Option<&str>) -> Result<SecretStore, SecretStoreError> {
        create_private_folder(folder)?;
        let sealer = seal::Sealer::load(configured_key, &folder.join(KEY_FILE))?;
        Ok(SecretStore { folder: folder.to_owned(), sealer })
    }

    /// Sets `name` to `value`.
    pub fn set(&self, name: &str, value: &[u8]) -> Result<SetOutcome, SecretStoreError> {
        check_name(name)?;
        let _lock = self.lock()?;
        let mut file = self.read()?;
        if let Some(existing) = file.secrets.get(name)
            && self.open_value(name, existing)? == value
        {
            return Ok(SetOutcome::Unchanged);
        }
        let outcome = if file.secrets.contains_key(name) { SetOutcome::Rotated } else { SetOutcome::Created };
        let version = new_version();
        let sealed = self.sealer.seal(&associated_data(name, &version), value);
        file.secrets.insert(
            name.to_owned(),
            StoredSecret { version, sealed: base64::engine::general_purpose::STANDARD.encode(sealed), updated_at: now() },
        );
        self.write(&file)?;
        Ok(outcome)
    }

    /// Removes `name`; false when there was none.
    pub fn remove(&self, name: &str) -> Result<bool, SecretStoreError> {
        let _lock = self.lock()?;
        let mut file = self.read()?;
        let removed = file.secrets.remove(name).is_some();
        if removed {
            self.write(&file)?;
        }
        Ok(removed)
    }

    /// Every secret's name and version, by name.
    pub fn list(&self) -> Result<Vec<SecretInfo>, SecretStoreError> {
        Ok(self
            .read()?
            .secrets
            .into_iter()
            .map(|(name, stored)| SecretInfo { name, version: stored.version, updated_at: stored.updated_at })
            .collect())
    }

    pub fn names(&self) -> Result<BTreeSet<String>, SecretStoreError> {
        Ok(self.read()?.secrets.into_keys().collect())
    }

    /// The secret names of the store in `folder`, read without its key (names are not
    /// sealed): what `gantry lint` checks an environment repository against.
    pub fn names_in(folder: &Path) -> Result<BTreeSet<String>, SecretStoreError> {
        let path = folder.join(STORE_FILE);
        let bytes = std::fs::read(&path).map_err(|source| SecretStoreError::Io { path: path.display().to_string(), source })?;
        let file: StoreFile = serde_json::from_slice(&bytes)
            .map_err(|error| SecretStoreError::Corrupt { path: path.display().to_string(), reason: error.to_string() })?;
        Ok(file.secrets.into_keys().collect())
    }

    /// The values of `wanted` that the store has, opened, with their versions.
    pub fn materials(&self, wanted: &BTreeSet<String>) -> Result<BTreeMap<String, SecretMaterial>, SecretStoreError> {
        let file = self.read()?;
        let mut materials = BTreeMap::new();
        for name in wanted {
            if let Some(stored) = file.secrets.get(name) {
                let value = self.open_value(name, stored)?;
                materials.insert(name.clone(), SecretMaterial { version: stored.version.clone(), value });
            }
        }
        Ok(materials)
    }

    /// Sets the login for registry `host`.
    pub fn set_registry(&self, host: &str, username: &str, password: &str) -> Result<(), SecretStoreError> {
        let _lock = self.lock()?;
        let mut file = self.read()?;
        let sealed = self.sealer.seal(&registry_associated_data(host), password.as_bytes());
        file.registries.insert(
            host.to_owned(),
            StoredLogin {
                username: username.to_owned(),
                sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
                updated_at: now(),
            },
        );
        self.write(&file)
    }

    /// Removes the login for `host`; false when there was none.
    pub fn remove_registry(&self, host: &str) -> Result<bool, SecretStoreError> {
        let _lock = self.lock()?;
        let mut file = self.read()?;
        let removed = file.registries.remove(host).is_some();
        if removed {
            self.write(&file)?;
        }
        Ok(removed)
    }

    /// Every registry login, passwords opened.
    pub fn registries(&self) -> Result<Vec<RegistryLogin>, SecretStoreError> {
        let file = self.read()?;
        let mut logins = Vec::new();
        for (host, stored) in file.registries {
            let sealed = base64::engine::general_purpose::STANDARD
                .decode(&stored.sealed)
                .map_err(|_| SecretStoreError::Decrypt(format!("registry {host}")))?;
            let password = self
                .sealer
                .open(&registry_associated_data(&host), &sealed)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| SecretStoreError::Decrypt(format!("registry {host}")))?;
            logins.push(RegistryLogin { host, username: stored.username, password });
        }
        Ok(logins)
    }

    fn open_value(&self, name: &str, stored: &StoredSecret) -> Result<Vec<u8>, SecretStoreError> {
        let sealed =
            base64::engine::general_purpose::STANDARD.decode(&stored.sealed).map_err(|_| SecretStoreError::Decrypt(name.to_owned()))?;
        self.sealer.open(&associated_data(name, &stored.version), &sealed).map_err(|_| SecretStoreError::Decrypt(name.to_owned()))
    }

    /// When the store last changed and its size: a cheap way to tell that nothing in it did.
    pub fn stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let metadata = std::fs::metadata(self.path()).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    }

    fn path(&self) -> PathBuf {
        self.folder.join(STORE_FILE)
    }

    fn read(&self) -> Result<StoreFile, SecretStoreError> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| SecretStoreError::Corrupt { path: path.display().to_string(), reason: error.to_string() }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::default()),
            Err(source) => Err(SecretStoreError::Io { path: path.display().to_string(), source }),
        }
    }

    /// Written to a private temporary file and renamed over the store: a reader sees the old
    /// store or the new one, never half of one.
    fn write(&self, file: &StoreFile) -> Result<(), SecretStoreError> {
        let path = self.path();
        let temporary = self.folder.join(format!(".{STORE_FILE}.{}", std::process::id()));
        let io = |source| SecretStoreError::Io { path: temporary.display().to_string(), source };
        let bytes = serde_json::to_vec_pretty(file).unwrap_or_default();
        let mut out = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary).map_err(io)?;
        out.write_all(&bytes).map_err(io)?;
        out.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(|source| SecretStoreError::Io { path: path.display().to_string(), source })
    }

    /// Serializes writers (two `gantry deployer secret add` at once).
    fn lock(&self) -> Result<std::fs::File, SecretStoreError> {
        let path = self.folder.join(LOCK_FILE);
        let io = |source| SecretStoreError::Io { path: path.display().to_string(), source };
        let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(&path).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }
}

/// The data folder holds the key, the sealed values and the checkout: private to the
/// deployer's user, whether it was just made or already there.
fn create_private_folder(folder: &Path) -> Result<(), SecretStoreError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let io = |source| SecretStoreError::Io { path: folder.display().to_string(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(io)?;
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// The same rule as Swarm's secret names, so a name works on every target.
fn check_name(name: &str) -> Result<(), SecretStoreError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if valid { Ok(()) } else { Err(SecretStoreError::BadName(name.to_owned())) }
}

/// A value sealed for one name at one version does not open as another's.
fn associated_data(name: &str, version: &str) -> Vec<u8> {
    format!("gantry-deployer-secret:{name}:{version}").into_bytes()
}

fn registry_associated_data(host: &str) -> Vec<u8> {
    format!("gantry-deployer-registry:{host}").into_bytes()
}

/// Random, so that a version says nothing about the value (a digest of a short password could
/// be guessed back).
fn new_version() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}
