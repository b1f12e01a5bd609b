//! Images: is one on this machine, pull one, import a root filesystem as one.

use bytes::Bytes;
use futures_util::StreamExt;

use crate::Engine;
use crate::error::{DockerError, error_chain, image_error};

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

    /// Pulls `image` from its registry (`latest` when it names no tag). The engine's progress
    /// messages are discarded; a failure is `DockerError::PullFailed` with the engine's reason.
    pub async fn pull_image(&self, image: &str) -> Result<(), DockerError> {
        let (repository, tag) = split_reference(image);
        let mut options = bollard::query_parameters::CreateImageOptionsBuilder::default().from_image(repository);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        tracing::debug!(image, "pulling image");
        let mut progress = self.client.create_image(Some(options.build()), None, None);
        while let Some(message) = progress.next().await {
            if let Err(error) = message {
                let reason = match error {
                    bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                    bollard::errors::Error::DockerStreamError { error } => error,
                    other => error_chain(&other),
                };
                return Err(DockerError::PullFailed { image: image.to_string(), reason });
            }
        }
        Ok(())
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
    use super::split_reference;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(split_reference("localhost:5000/team/app"), ("localhost:5000/team/app", Some("latest")));
        assert_eq!(split_reference("localhost:5000/team/app:v2"), ("localhost:5000/team/app", Some("v2")));
        assert_eq!(split_reference("app@sha256:abcd"), ("app@sha256:abcd", None));
    }
}
