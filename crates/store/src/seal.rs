//! Values sealed at rest: AES-256-GCM with a random nonce per value and associated data that
//! names what the value is (its repository and name), so a ciphertext copied to another row or
//! column does not open. Pipeline secrets are sealed by the server before they reach the store;
//! repository credentials (webhook secret, forge token, clone password) are sealed by the store
//! itself on every write, so no caller can forget to, and so are registry passwords and the
//! secrets environments' deployers sign their events with.
//!
//! The key comes from `GANTRY_SECRET_KEY` (64 hex digits or base64 of 32 bytes) or a 0600 key
//! file created in the data folder on first start.

use std::path::Path;

pub use ::seal::{DecryptError, KeyError};
use base64::Engine as _;

/// How a sealed credential starts in its text column; anything else is a value written before
/// credentials were sealed, which `Store::open` seals.
pub(crate) const SEALED_TEXT_PREFIX: &str = "sealed:v1:";

/// Encrypts and decrypts values at rest. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SecretBox {
    sealer: ::seal::Sealer,
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { sealer: ::seal::Sealer::from_key(key) }
    }

    /// The key from `configured` (the variable's text) or from `<data>/secret.key`, created
    /// with 0600 permissions when missing.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self, KeyError> {
        ::seal::Sealer::load(configured, &data_dir.join("secret.key")).map(|sealer| Self { sealer })
    }

    /// The key in a repository's status badge links: anyone holding the link sees the badge,
    /// nobody can make one for another repository.
    pub fn badge_key(&self, repo_id: i64) -> String {
        hex::encode(&self.sealer.tag("badge", &repo_id.to_be_bytes())[..12])
    }

    /// A pipeline secret `name` of repository `repo_id`: nonce followed by ciphertext.
    pub fn seal(&self, repo_id: i64, name: &str, value: &str) -> Vec<u8> {
        self.seal_with(&secret_associated_data(repo_id, name), value)
    }

    pub fn open(&self, repo_id: i64, name: &str, sealed: &[u8]) -> Result<String, DecryptError> {
        self.open_with(&secret_associated_data(repo_id, name), sealed)
    }

    /// The key a notifier of repository `repo_id` signs its bodies with.
    pub fn seal_signing_key(&self, repo_id: i64, value: &str) -> Vec<u8> {
        self.seal_with(&signing_key_associated_data(repo_id), value)
    }

    pub fn open_signing_key(&self, repo_id: i64, sealed: &[u8]) -> Result<String, DecryptError> {
        self.open_with(&signing_key_associated_data(repo_id), sealed)
    }

    /// A repository credential as it is kept in its text column.
    pub(crate) fn seal_credential(&self, repo_id: i64, column: &str, value: &str) -> String {
        let sealed = self.seal_with(&credential_associated_data(repo_id, column), value);
        format!("{SEALED_TEXT_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    pub(crate) fn open_credential(&self, repo_id: i64, column: &str, stored: &str) -> Result<String, DecryptError> {
        let encoded = stored.strip_prefix(SEALED_TEXT_PREFIX).ok_or(DecryptError)?;
        let sealed = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| DecryptError)?;
        self.open_with(&credential_associated_data(repo_id, column), &sealed)
    }

    /// The password of a repository's credentials for a registry `host`, kept as bytes like a
    /// pipeline secret's: nonce followed by ciphertext.
    pub(crate) fn seal_registry_password(&self, repo_id: i64, host: &str, password: &str) -> Vec<u8> {
        self.seal_with(&registry_associated_data(repo_id, host), password)
    }

    pub(crate) fn open_registry_password(&self, repo_id: i64, host: &str, sealed: &[u8]) -> Result<String, DecryptError> {
        self.open_with(&registry_associated_data(repo_id, host), sealed)
    }

    /// The secret an environment's deployer signs its events with, bound to the environment's
    /// name; the store seals it on every write.
    pub(crate) fn seal_environment_secret(&self, environment: &str, secret: &str) -> Vec<u8> {
        self.seal_with(&environment_associated_data(environment), secret)
    }

    pub(crate) fn open_environment_secret(&self, environment: &str, sealed: &[u8]) -> Result<String, DecryptError> {
        self.open_with(&environment_associated_data(environment), sealed)
    }

    fn seal_with(&self, associated_data: &[u8], value: &str) -> Vec<u8> {
        self.sealer.seal(associated_data, value.as_bytes())
    }

    fn open_with(&self, associated_data: &[u8], sealed: &[u8]) -> Result<String, DecryptError> {
        String::from_utf8(self.sealer.open(associated_data, sealed)?).map_err(|_| DecryptError)
    }
}

fn signing_key_associated_data(repo_id: i64) -> Vec<u8> {
    format!("gantry-signing-key:{repo_id}").into_bytes()
}

fn secret_associated_data(repo_id: i64, name: &str) -> Vec<u8> {
    format!("gantry-secret:{repo_id}:{name}").into_bytes()
}

fn credential_associated_data(repo_id: i64, column: &str) -> Vec<u8> {
    format!("gantry-repo-credential:{repo_id}:{column}").into_bytes()
}

fn environment_associated_data(environment: &str) -> Vec<u8> {
    format!("gantry-environment-secret:{environment}").into_bytes()
}

fn registry_associated_data(repo_id: i64, host: &str) -> Vec<u8> {
    format!("gantry-registry:{repo_id}:{host}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_password_opens_only_for_its_own_repository_and_host() {
        let sealer = SecretBox::from_key([7; 32]);
        let sealed = sealer.seal_registry_password(3, "127.0.0.1:5000", "s3cret");
        assert!(!String::from_utf8_lossy(&sealed).contains("s3cret"));
        assert_eq!(sealer.open_registry_password(3, "127.0.0.1:5000", &sealed).unwrap(), "s3cret");
        assert!(sealer.open_registry_password(4, "127.0.0.1:5000", &sealed).is_err());
        assert!(sealer.open_registry_password(3, "127.0.0.1:5001", &sealed).is_err());
        assert!(sealer.open(3, "127.0.0.1:5000", &sealed).is_err(), "not a pipeline secret of that name");
    }

    #[test]
    fn an_environment_secret_opens_only_for_its_own_environment() {
        let sealer = SecretBox::from_key([7; 32]);
        let sealed = sealer.seal_environment_secret("production", "event-secret");
        assert!(!String::from_utf8_lossy(&sealed).contains("event-secret"));
        assert_eq!(sealer.open_environment_secret("production", &sealed).unwrap(), "event-secret");
        assert!(sealer.open_environment_secret("staging", &sealed).is_err());
        assert!(sealer.open_signing_key(0, &sealed).is_err(), "not a notifier's key");
    }

    #[test]
    fn a_credential_opens_only_in_its_own_repository_and_column() {
        let sealer = SecretBox::from_key([7; 32]);
        let sealed = sealer.seal_credential(3, "forge_token", "ghp_token");
        assert!(sealed.starts_with(SEALED_TEXT_PREFIX));
        assert!(!sealed.contains("ghp_token"));
        assert_eq!(sealer.open_credential(3, "forge_token", &sealed).unwrap(), "ghp_token");
        assert!(sealer.open_credential(4, "forge_token", &sealed).is_err());
        assert!(sealer.open_credential(3, "clone_password", &sealed).is_err());
        assert!(SecretBox::from_key([8; 32]).open_credential(3, "forge_token", &sealed).is_err());
    }
}
