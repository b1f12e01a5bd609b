//! `RegistryError`: what went wrong talking to a registry, with the registry and the reference
//! as fields, and never a password.

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// An error from a registry or from reaching it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// The registry refused the credentials, or asked for some when none were given.
    #[error("registry `{registry}` refused access to `{repository}` ({operation}); check the registry's username and password")]
    Unauthorized { registry: String, repository: String, operation: &'static str },
    /// The manifest, blob or repository is not in the registry.
    #[error("`{reference}` is not in the registry")]
    NotFound { reference: String },
    /// The registry answered with something this crate does not take: a referrers tag that
    /// holds an image, a blob larger than its descriptor says.
    #[error("`{reference}` in the registry is not what was expected: {reason}")]
    UnexpectedContent { reference: String, reason: String },
    /// Any other failure: the registry is unreachable, or it answered with an error.
    #[error("{operation} at registry `{registry}` failed: {message}")]
    Request { registry: String, operation: &'static str, message: String },
}

/// Where an error happened, for `classify`.
pub(crate) struct Context<'a> {
    pub(crate) registry: &'a str,
    pub(crate) repository: &'a str,
    /// What is read or written, for `NotFound`.
    pub(crate) reference: &'a str,
    pub(crate) operation: &'static str,
    /// The password in use, kept out of every message.
    pub(crate) password: Option<&'a str>,
}

impl Context<'_> {
    /// `error` as one of ours: refused credentials, something missing, or a failed request.
    pub(crate) fn classify(&self, error: OciDistributionError) -> RegistryError {
        let unauthorized = || RegistryError::Unauthorized {
            registry: self.registry.to_string(),
            repository: self.repository.to_string(),
            operation: self.operation,
        };
        let not_found = || RegistryError::NotFound { reference: self.reference.to_string() };
        match &error {
            OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
            OciDistributionError::ServerError { code: 401 | 403, .. } => unauthorized(),
            OciDistributionError::ServerError { code: 404, .. } | OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|error| &error.code).collect();
                if codes.iter().any(|code| matches!(code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                    unauthorized()
                } else if codes.iter().any(|code| {
                    matches!(
                        code,
                        OciErrorCode::ManifestUnknown | OciErrorCode::BlobUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
                    )
                }) {
                    not_found()
                } else {
                    self.request(&error)
                }
            }
            _ => self.request(&error),
        }
    }

    pub(crate) fn request(&self, error: &dyn std::error::Error) -> RegistryError {
        RegistryError::Request { registry: self.registry.to_string(), operation: self.operation, message: self.redact(error_chain(error)) }
    }

    pub(crate) fn unexpected(&self, reason: impl Into<String>) -> RegistryError {
        RegistryError::UnexpectedContent { reference: self.reference.to_string(), reason: self.redact(reason.into()) }
    }

    fn redact(&self, text: String) -> String {
        match self.password {
            Some(password) if !password.is_empty() => text.replace(password, "********"),
            _ => text,
        }
    }
}

/// An error and its sources on one line: reqwest's top-level messages alone ("error sending
/// request") do not say what happened.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
