//! Images: is one on this machine and what it holds, pull one (with credentials or not), tag,
//! push and remove one, import a root filesystem as one.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::Engine;
use crate::credentials::{RegistryCredentials, is_auth_failure, redact, registry_host};
use crate::error::{DockerError, Failure, error_chain, failure, image_error};

/// What the engine knows of an image on this machine.
#[derive(Clone, Debug)]
pub struct ImageDetails {
    /// `sha256:…`, the digest of the image's configuration.
    pub id: String,
    /// Its names (`repository:tag`).
    pub repo_tags: Vec<String>,
    /// `repository@sha256:…` for each registry the image was pushed to or pulled from: the
    /// digest of its manifest there.
    pub repo_digests: Vec<String>,
    /// The labels of its configuration (`LABEL`, build labels).
    pub labels: BTreeMap<String, String>,
    /// The size of its layers on this machine, in bytes.
    pub size: u64,
}

/// What a push left in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    /// The digest of the image's manifest in the registry (`sha256:…`): `repository@digest`
    /// names exactly what was pushed.
    pub digest: String,
    /// The size of that manifest in bytes (a descriptor of the image needs it).
    pub size: u64,
}

impl Engine {
    /// True when `image` is on this machine (by name, tag or digest).
    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        match self.client.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(error) => match image_error("inspect", image, error) {
                error if error.is_not_found() => Ok(false),
                error => Err(error),
            },
        }
    }

    /// Pulls `image` from its registry (`latest` when it names no tag) without credentials.
    /// The engine's progress messages are discarded; a failure is `DockerError::PullFailed` with
    /// the engine's reason.
    pub async fn pull_image(&self, image: &str) -> Result<(), DockerError> {
        self.pull_image_with_credentials(image, None).await
    }

    /// Pulls `image` (by tag or by digest) with `credentials` for its registry, when given. Any
    /// failure, a refused login included, is `DockerError::PullFailed`: callers fall back to a
    /// local copy on it, whatever the cause.
    pub async fn pull_image_with_credentials(&self, image: &str, credentials: Option<&RegistryCredentials>) -> Result<(), DockerError> {
        let (repository, tag) = split_reference(image);
        let mut options = bollard::query_parameters::CreateImageOptionsBuilder::default().from_image(repository);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        tracing::debug!(image, "pulling image");
        let engine_credentials = credentials.map(|credentials| credentials.for_engine(registry_host(image)));
        let mut progress = self.client.create_image(Some(options.build()), None, engine_credentials);
        while let Some(message) = progress.next().await {
            if let Err(error) = message {
                let reason = redact(engine_reason(error), credentials.map(|credentials| credentials.password.as_str()));
                return Err(DockerError::PullFailed { image: image.to_string(), reason });
            }
        }
        Ok(())
    }

    /// Gives the image `source` (a name or an id) the name `target` (`repository[:tag]`,
    /// `latest` when it has no tag). A name another image had moves to this one.
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<(), DockerError> {
        let (repository, tag) = split_reference(target);
        let options = bollard::query_parameters::TagImageOptions { repo: Some(repository.to_string()), tag: tag.map(str::to_string) };
        self.client.tag_image(source, Some(options)).await.map_err(|error| match failure(error) {
            Failure::Engine { status: 404, .. } => DockerError::ImageNotFound { image: source.to_string() },
            Failure::Engine { status, message } => DockerError::Image { operation: "tag", image: source.to_string(), status, message },
            Failure::Transport { message } => DockerError::Transport { operation: "tag image", target: source.to_string(), message },
        })
    }

    /// Pushes `repository:tag` (an image on this machine by that name) to the registry the
    /// repository names, with `credentials` when given, and returns the digest and size of the
    /// manifest the registry stored. A refused login is `DockerError::RegistryAuth` naming the
    /// registry; other failures are `DockerError::PushFailed`; a missing local image is
    /// `DockerError::ImageNotFound`.
    ///
    /// The engine ends a push with the digest twice: a status line `TAG: digest: sha256:… size:
    /// N` and an `aux` object with the same values. bollard's model of push messages has no
    /// `aux`, so the status line is read; both come from the same values in the engine.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<PushedImage, DockerError> {
        let image = format!("{repository}:{tag}");
        let registry = registry_host(repository);
        let options = bollard::query_parameters::PushImageOptions { tag: Some(tag.to_string()), platform: None };
        let engine_credentials = credentials.map(|credentials| credentials.for_engine(registry));
        let password = credentials.map(|credentials| credentials.password.as_str());
        tracing::debug!(image, registry, "pushing image");
        let mut progress = self.client.push_image(repository, Some(options), engine_credentials);
        let mut pushed = None;
        while let Some(message) = progress.next().await {
            match message {
                Ok(message) => {
                    if let Some(found) = message.status.as_deref().and_then(|status| pushed_digest(status, tag)) {
                        pushed = Some(found);
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                    return Err(DockerError::ImageNotFound { image });
                }
                Err(error) => {
                    let reason = redact(engine_reason(error), password);
                    return Err(if is_auth_failure(&reason) {
                        DockerError::RegistryAuth { registry: registry.to_string(), image, reason }
                    } else {
                        DockerError::PushFailed { image, reason }
                    });
                }
            }
        }
        pushed.ok_or_else(|| DockerError::PushFailed { image, reason: "the engine did not report the pushed digest".to_string() })
    }

    /// Removes the name `image` (or the image, given its id or its only name); the image's
    /// layers go once no name is left and no container uses them. An image that is not there
    /// is not an error. An id with several names, or an image a container uses, stays (status
    /// 409): remove its names one by one, or the containers first.
    pub async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let options = bollard::query_parameters::RemoveImageOptions { force: false, noprune: false, platforms: None };
        match self.client.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(error) => match image_error("remove", image, error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// Removes the name `image` and, when it was the image's last name, the image itself, but
    /// keeps its untagged parent images (`docker rmi --no-prune`): the classic builder's layer
    /// cache lives in those parents, so a build purged after its push still speeds up the next.
    pub async fn untag_image(&self, image: &str) -> Result<(), DockerError> {
        let options = bollard::query_parameters::RemoveImageOptions { force: false, noprune: true, platforms: None };
        match self.client.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(error) => match image_error("remove", image, error) {
                error if error.is_not_found() => Ok(()),
                error => Err(error),
            },
        }
    }

    /// What the engine knows of `image` (a name, `repository@digest` or an id);
    /// `DockerError::ImageNotFound` when it is not on this machine.
    pub async fn inspect_image(&self, image: &str) -> Result<ImageDetails, DockerError> {
        let inspected = self.client.inspect_image(image).await.map_err(|error| match image_error("inspect", image, error) {
            error if error.is_not_found() => DockerError::ImageNotFound { image: image.to_string() },
            error => error,
        })?;
        Ok(ImageDetails {
            id: inspected.id.unwrap_or_default(),
            repo_tags: inspected.repo_tags.unwrap_or_default(),
            repo_digests: inspected.repo_digests.unwrap_or_default(),
            labels: inspected.config.and_then(|config| config.labels).unwrap_or_default().into_iter().collect(),
            size: inspected.size.and_then(|size| u64::try_from(size).ok()).unwrap_or_default(),
        })
    }

    /// Makes an image named `image` whose root filesystem is the tar archive `root_filesystem`
    /// (what `docker import` does). Nothing is pulled.
    pub async fn import_image(&self, image: &str, root_filesystem: Bytes) -> Result<(), DockerError> {
        let (repository, tag) = split_reference(image);
        let mut options = bollard::query_parameters::CreateImageOptionsBuilder::default().from_src("-").repo(repository);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        let mut progress = self.client.create_image(Some(options.build()), Some(bollard::body_full(root_filesystem)), None);
        while let Some(message) = progress.next().await {
            message.map_err(|error| image_error("import", image, error))?;
        }
        Ok(())
    }
}

/// The engine's reason in an error from a streamed answer (pull, push, build).
pub(crate) fn engine_reason(error: bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        bollard::errors::Error::DockerStreamError { error } => error,
        other => error_chain(&other),
    }
}

/// The digest and size in the engine's last push message, `TAG: digest: sha256:… size: N`.
fn pushed_digest(status: &str, tag: &str) -> Option<PushedImage> {
    let rest = status.strip_prefix(tag)?.strip_prefix(": digest: ")?;
    let (digest, size) = rest.split_once(" size: ")?;
    if !digest.starts_with("sha256:") {
        return None;
    }
    Some(PushedImage { digest: digest.to_string(), size: size.trim().parse().ok()? })
}

/// Splits `registry:5000/name:tag` into `registry:5000/name` and `tag`. A reference by digest is
/// passed whole; a reference without a tag gets `latest`, because the engine pulls every tag of
/// a repository when it is given none.
pub fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let name_start = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => (&image[..name_start + colon], Some(&image[name_start + colon + 1..])),
        None => (image, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::{PushedImage, pushed_digest, split_reference};

    #[test]
    fn the_pushed_digest_is_read_from_the_engines_last_message() {
        let digest = "sha256:a2ac0b3ee01e3034822db30bbd5403e606f1d3ff542deca3b6c6e7fad3c4b228";
        assert_eq!(
            pushed_digest(&format!("v1.2: digest: {digest} size: 527"), "v1.2"),
            Some(PushedImage { digest: digest.to_owned(), size: 527 })
        );
        assert_eq!(pushed_digest(&format!("other: digest: {digest} size: 527"), "v1.2"), None);
        assert_eq!(pushed_digest("The push refers to repository [127.0.0.1:5000/app]", "v1.2"), None);
        assert_eq!(pushed_digest("v1.2: digest: md5:00 size: 1", "v1.2"), None);
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(split_reference("localhost:5000/team/app"), ("localhost:5000/team/app", Some("latest")));
        assert_eq!(split_reference("localhost:5000/team/app:v2"), ("localhost:5000/team/app", Some("v2")));
        assert_eq!(split_reference("app@sha256:abcd"), ("app@sha256:abcd", None));
    }
}
