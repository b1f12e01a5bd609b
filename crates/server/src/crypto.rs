//! Secrets at rest: AES-256-GCM with a random nonce per value, bound to its repository and name
//! (associated data), so a ciphertext copied to another secret's row does not decrypt. The key
//! comes from `GANTRY_SECRET_KEY` (64 hex digits or base64 of 32 bytes) or a 0600 key file
//! created in the data folder on first start.

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
    #[error("GANTRY_SECRET_KEY must be 32 bytes as 64 hex digits or base64")]
    BadKey,
    #[error("secret key file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("secret key file {path} must hold 32 bytes as 64 hex digits")]
    BadFile { path: String },
}

#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted with this key (was GANTRY_SECRET_KEY changed?)")]
pub struct DecryptError;

/// Encrypts and decrypts secret values. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)) }
    }

    /// The key from `configured` (the variable's text) or from `<data>/secret.key`, created
    /// with 0600 permissions when missing.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self, KeyError> {
        if let Some(text) = configured {
            return parse_key(text.trim()).map(Self::from_key).ok_or(KeyError::BadKey);
        }
        let path = data_dir.join("secret.key");
        let display = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(text.trim()).map(Self::from_key).ok_or(KeyError::BadFile { path: display }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|source| KeyError::File { path: display.clone(), source })?;
                file.write_all(hex::encode(key).as_bytes()).map_err(|source| KeyError::File { path: display, source })?;
                tracing::info!(path = %path.display(), "created a new secret key");
                Ok(Self::from_key(key))
            }
            Err(source) => Err(KeyError::File { path: display, source }),
        }
    }

    pub fn seal(&self, repo_id: i64, name: &str, value: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(repo_id, name);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: value.as_bytes(), aad: &aad })
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, repo_id: i64, name: &str, sealed: &[u8]) -> Result<String, DecryptError> {
        if sealed.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| DecryptError)?;
        let aad = associated_data(repo_id, name);
        let plain = self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| DecryptError)?;
        String::from_utf8(plain).map_err(|_| DecryptError)
    }
}

fn associated_data(repo_id: i64, name: &str) -> Vec<u8> {
    format!("gantry-secret:{repo_id}:{name}").into_bytes()
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    if text.len() == 64
        && let Ok(bytes) = hex::decode(text)
    {
        return bytes.try_into().ok();
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()?.try_into().ok()
}

/// A random token: 32 bytes as hex, prefixed so that secret scanners recognize it.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// What the store keeps of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::PasswordHasher as _;
    argon2::Argon2::default().hash_password(password.as_bytes()).expect("argon2 hashing with default parameters cannot fail").to_string()
}

pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::PasswordVerifier as _;
    let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(stored) else {
        return false;
    };
    argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Constant-time comparison of two secrets (tokens, agent secret).
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}
