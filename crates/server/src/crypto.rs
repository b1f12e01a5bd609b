//! Tokens, passwords and secret comparison. Values sealed at rest (pipeline secrets and
//! repository credentials) are the store's `SecretBox`, re-exported here.

use rand::RngCore as _;

pub use store::{DecryptError, KeyError, SecretBox};

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
