//! How long names and values may be. A name is shown in lists, logs and URLs: thousands of
//! characters in one are a mistake or an attack, and are refused with the field named.

use crate::error::{ApiError, ApiResult};

/// A user's login.
pub const MAX_LOGIN: usize = 64;
/// A password (argon2 hashes all of it).
pub const MAX_PASSWORD: usize = 1024;
/// Names of secrets, tokens and cron schedules.
pub const MAX_NAME: usize = 100;
/// Each half of a repository's `owner/name`.
pub const MAX_REPO_PART: usize = 100;
/// A secret's value.
pub const MAX_SECRET_VALUE: usize = 64 * 1024;
/// A registry login's username and password (a Google service account key, `_json_key`'s
/// password, is a few kilobytes of JSON).
pub const MAX_REGISTRY_USERNAME: usize = 256;
pub const MAX_REGISTRY_PASSWORD: usize = 16 * 1024;
/// A manual build's variable name and value.
pub const MAX_VARIABLE_NAME: usize = 128;
pub const MAX_VARIABLE_VALUE: usize = 16 * 1024;

/// Refuses `value` in `field` when it has more than `max` characters.
pub fn check_length(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("{field} is longer than {max} characters")));
    }
    Ok(())
}
