//! Values sealed at rest: AES-256-GCM with a random nonce per value and associated data that
//! names what the value is, so a ciphertext copied to another place (another row, another
//! secret's name) does not open there. The server's store and the deployer's secret store both
//! seal with it; each chooses its own associated data.
//!
//! The key is 32 bytes, given as 64 hex digits or base64 (a variable such as
//! `GANTRY_SECRET_KEY`), or kept in a 0600 key file created on first use.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use rand::RngCore as _;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the secret key must be 32 bytes as 64 hex digits or base64")]
    BadKey,
    #[error("secret key file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("secret key file {path} must hold 32 bytes as 64 hex digits")]
    BadFile { path: String },
}

#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted with this key (was the secret key changed?)")]
pub struct DecryptError;

/// Encrypts and decrypts values at rest. Cheap to clone; never prints its key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    /// For `tag`: derived from the key, never the key itself, so that no key serves two
    /// algorithms.
    tag_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sealer")
    }
}

impl Sealer {
    pub fn from_key(key: [u8; 32]) -> Self {
        use sha2::Digest as _;
        let mut derive = sha2::Sha256::new();
        derive.update(b"gantry tag key\0");
        derive.update(key);
        Self { cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)), tag_key: derive.finalize().into() }
    }

    /// An unforgeable tag of `message` for `purpose` (HMAC-SHA256 under a key derived from
    /// the sealing key): what capability links (status badges) are checked with.
    pub fn tag(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.tag_key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The key from `configured` (a variable's text) or from the file at `key_file`, created
    /// with 0600 permissions when missing.
    pub fn load(configured: Option<&str>, key_file: &Path) -> Result<Self, KeyError> {
        if let Some(text) = configured {
            return parse_key(text.trim()).map(Self::from_key).ok_or(KeyError::BadKey);
        }
        let display = key_file.display().to_string();
        match std::fs::read_to_string(key_file) {
            Ok(text) => parse_key(text.trim()).map(Self::from_key).ok_or(KeyError::BadFile { path: display }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(key_file)
                    .map_err(|source| KeyError::File { path: display.clone(), source })?;
                file.write_all(hex::encode(key).as_bytes()).map_err(|source| KeyError::File { path: display, source })?;
                tracing::info!(path = %key_file.display(), "created a new secret key");
                Ok(Self::from_key(key))
            }
            Err(source) => Err(KeyError::File { path: display, source }),
        }
    }

    /// `value` sealed for `associated_data`: nonce followed by ciphertext.
    pub fn seal(&self, associated_data: &[u8], value: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: value, aad: associated_data })
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// What `seal` sealed with the same associated data and key.
    pub fn open(&self, associated_data: &[u8], sealed: &[u8]) -> Result<Vec<u8>, DecryptError> {
        if sealed.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| DecryptError)?;
        self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: associated_data }).map_err(|_| DecryptError)
    }
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    if text.len() == 64
        && let Ok(bytes) = hex::decode(text)
    {
        return bytes.try_into().ok();
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_with_its_own_associated_data_and_key() {
        let sealer = Sealer::from_key([7; 32]);
        let sealed = sealer.seal(b"deployer-secret:db_password", b"hunter2");
        assert!(!String::from_utf8_lossy(&sealed).contains("hunter2"));
        assert_eq!(sealer.open(b"deployer-secret:db_password", &sealed).unwrap(), b"hunter2");
        assert!(sealer.open(b"deployer-secret:other", &sealed).is_err());
        assert!(Sealer::from_key([8; 32]).open(b"deployer-secret:db_password", &sealed).is_err());
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("secret.key");
        let sealed = Sealer::load(None, &path).unwrap().seal(b"x", b"value");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Sealer::load(None, &path).unwrap().open(b"x", &sealed).unwrap(), b"value");
    }

    #[test]
    fn a_key_is_taken_as_hex_or_base64_and_nothing_else() {
        let folder = tempfile::tempdir().unwrap();
        let unused = folder.path().join("unused.key");
        assert!(Sealer::load(Some(&"ab".repeat(32)), &unused).is_ok());
        assert!(Sealer::load(Some("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="), &unused).is_ok());
        assert!(matches!(Sealer::load(Some("short"), &unused), Err(KeyError::BadKey)));
        assert!(!unused.exists());
    }
}
