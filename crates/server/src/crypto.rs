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

/// An argon2id PHC string of `password` with the default parameters and a random salt.
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::phc::{Output, PasswordHash, Salt};
    let argon2 = argon2::Argon2::default();
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let params = argon2.params().clone();
    let mut out = vec![0u8; params.output_len().unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN)];
    with_memory(params.block_count(), |memory| argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory))
        .expect("argon2 hashing with default parameters and a 16-byte salt cannot fail");
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::default().into()),
        params: (&params).try_into().expect("default parameters encode"),
        salt: Some(Salt::new(&salt).expect("a 16-byte salt is valid")),
        hash: Some(Output::new(&out).expect("an output of the default length is valid")),
    };
    hash.to_string()
}

/// Whether `password` matches `stored`, an argon2 PHC string (any variant and parameters).
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::phc::PasswordHash;
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (argon2::Algorithm::try_from(parsed.algorithm.as_str()), argon2::Params::try_from(&parsed)) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
        None => argon2::Version::default(),
    };
    // A stored hash asking for absurd memory is refused rather than run.
    if params.block_count() > MAX_HASH_BLOCKS {
        return false;
    }
    let argon2 = argon2::Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed =
        with_memory(params.block_count(), |memory| argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory));
    computed.is_ok() && same_bytes(&out, expected.as_bytes())
}

/// Most argon2 memory a stored hash may ask for: 64 MiB of 1 KiB blocks.
const MAX_HASH_BLOCKS: usize = 64 * 1024;

/// Runs `hashing` with `blocks` of argon2 memory that this thread keeps for its next hash.
/// argon2's own allocation of ~19 MiB per hash is freed each time, but the C allocator keeps up
/// to ~200 MiB of such freed blocks per thread: reusing one buffer holds memory at one hash's
/// worth per hashing thread.
fn with_memory<T>(blocks: usize, hashing: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() != blocks {
            *memory = vec![argon2::Block::default(); blocks];
        }
        hashing(&mut memory)
    })
}

fn same_bytes(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    given.ct_eq(expected).into()
}

/// Constant-time comparison of two secrets (tokens, agent secret).
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory test measures the whole process: the other hashing tests wait for it.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_password_verifies_against_its_hash_and_nothing_else() {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(!verify_password("correct horse", "$argon2id$v=19$m=4000000,t=2,p=1$c2FsdHNhbHQ$aGFzaA"), "absurd memory is refused");
    }

    #[test]
    fn hashes_written_by_the_argon2_crate_still_verify() {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        use argon2::password_hash::PasswordHasher as _;
        let stored = argon2::Argon2::default().hash_password(b"an older password").unwrap().to_string();
        assert!(verify_password("an older password", &stored));
        assert!(!verify_password("another", &stored));
    }

    /// Regression: each verification through the argon2 crate's own allocation grew the process
    /// by ~19 MiB, up to ~200 MiB per thread, so sign-ins on many threads took gigabytes.
    #[test]
    fn verifying_many_passwords_on_one_thread_holds_memory_for_one() {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let resident_kib = || -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap().to_owned();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        let hash = hash_password("a password");
        std::thread::spawn(move || {
            verify_password("warm up", &hash);
            let before = resident_kib();
            for _ in 0..12 {
                verify_password("wrong", &hash);
            }
            let grown = resident_kib().saturating_sub(before);
            assert!(grown < 8 * 1024, "12 verifications grew the process by {grown} KiB");
        })
        .join()
        .unwrap();
    }
}
