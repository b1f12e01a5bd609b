//! Registry credentials for `gantry exec`: the ones `docker login` saved, so a local run pushes
//! where the user's own `docker push` would.

use std::collections::BTreeMap;
use std::path::PathBuf;

use runtime::RegistryCredential;

/// The registry credentials of a local run: those of the workflows' `image_pull_secrets` (Drone:
/// secrets holding a Docker config JSON) first, then Docker's saved logins.
pub(crate) fn run_credentials(plan: &pipeline::Plan, secrets: &BTreeMap<String, String>) -> anyhow::Result<Vec<RegistryCredential>> {
    let mut credentials = Vec::new();
    for name in plan.workflows.iter().flat_map(|workflow| &workflow.image_pull_secrets) {
        let Some(value) = secrets.get(name) else {
            anyhow::bail!("`image_pull_secrets` names secret `{name}`, which was not given (--secret {name}=… with a Docker config JSON)");
        };
        // The value is a secret: the error says what is wrong with it, never what it holds.
        credentials.extend(
            credentials_in(value)
                .map_err(|error| anyhow::anyhow!("secret `{name}` of `image_pull_secrets` is not a Docker config JSON: {error}"))?,
        );
    }
    credentials.extend(docker_config_credentials());
    Ok(credentials)
}

/// The `auths` of `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`) that hold a user
/// name and password. Credential helpers (`credsStore`) are not asked: their secrets stay where
/// they are, and such registries are pushed to without credentials.
pub(crate) fn docker_config_credentials() -> Vec<RegistryCredential> {
    let Some(path) = config_path() else { return Vec::new() };
    let Ok(text) = std::fs::read_to_string(&path) else { return Vec::new() };
    match credentials_in(&text) {
        Ok(credentials) => credentials,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read Docker's saved registry logins");
            Vec::new()
        }
    }
}

fn config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json")),
    }
}

/// The logins of a Docker config JSON, read by `proto::artifact` as the server reads an
/// `image_pull_secrets` secret.
fn credentials_in(text: &str) -> Result<Vec<RegistryCredential>, proto::artifact::DockerConfigError> {
    Ok(proto::artifact::docker_config_auths(text)?
        .into_iter()
        .map(|auth| RegistryCredential { host: auth.host, username: auth.username, password: auth.password })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::credentials_in;

    #[test]
    fn saved_logins_are_read_from_auth_or_fields() {
        let text = r#"{"auths":{"127.0.0.1:5001":{"auth":"Z2FudHJ5OnMzY3JldA=="},"https://index.docker.io/v1/":{"username":"u","password":"p"},"ghcr.io":{}}}"#;
        let credentials = credentials_in(text).unwrap();
        assert_eq!(credentials.len(), 2);
        assert_eq!(
            (credentials[0].host.as_str(), credentials[0].username.as_str(), credentials[0].password.as_str()),
            ("127.0.0.1:5001", "gantry", "s3cret")
        );
        assert_eq!(credentials[1].host, "docker.io");
        assert!(credentials_in("{").is_err());
    }
}
