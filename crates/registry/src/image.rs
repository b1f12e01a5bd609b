//! What a tag names now: its manifest's digest, and the creation time and labels of the
//! image's configuration (for a multi-platform image, the `linux/amd64` one's).

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::client::{Credentials, Registry};
use crate::error::RegistryError;
use crate::manifest::Descriptor;

/// The platform whose configuration speaks for a multi-platform image.
const PREFERRED_PLATFORM: &str = "linux/amd64";

/// What an image's configuration says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// The digest of the manifest the reference named: an index's own for a multi-platform
    /// image, which is what a deployment pins.
    pub digest: String,
    /// When the image was made: the configuration's `created`, else its
    /// `org.opencontainers.image.created` label; `None` when neither is a valid RFC 3339 time.
    pub created: Option<SystemTime>,
    pub labels: BTreeMap<String, String>,
}

/// The part of an image configuration (OCI's and Docker's) read here.
#[derive(serde::Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<ContainerConfig>,
}

#[derive(serde::Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

impl Registry {
    /// The digest of the manifest `reference` (a tag, or a digest) names in `repository`
    /// now: the registry's `Docker-Content-Digest`, or the sha256 of the manifest's bytes when
    /// the registry sends none.
    pub async fn resolve(&self, repository: &str, reference: &str, credentials: Option<&Credentials>) -> Result<String, RegistryError> {
        let session = self.session(repository, credentials, "resolve a tag").await?;
        let target = if reference.contains(':') { session.by_digest(reference) } else { session.by_tag(reference) };
        let written = target.whole();
        let context = session.context(&written, "resolve a tag");
        session.client.fetch_manifest_digest(&target, &session.auth).await.map_err(|error| context.classify(error))
    }

    /// The digest, creation time and labels of the image `reference` (a tag, or a digest)
    /// names in `repository`. For an index, the configuration is the `linux/amd64` image's, or
    /// the first image's when it has none; the digest is the index's.
    pub async fn image_config(
        &self,
        repository: &str,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<ImageConfig, RegistryError> {
        let session = self.session(repository, credentials, "read an image's configuration").await?;
        let manifest = session.manifest(reference).await?;
        let digest = manifest.descriptor.digest.clone();
        let image = if manifest.config.is_some() {
            manifest
        } else {
            let written = format!("{repository}@{digest}");
            let Some(entry) = platform_image(&manifest.manifests) else {
                return Err(session.context(&written, "read an image's configuration").unexpected("the index lists no image"));
            };
            session.pace().await;
            session.manifest(&entry.digest).await?
        };
        let written = format!("{repository}@{}", image.descriptor.digest);
        let context = session.context(&written, "read an image's configuration");
        let Some(config) = &image.config else {
            return Err(context.unexpected("an index inside an index is not an image"));
        };
        session.pace().await;
        let blob = session.blob(config).await?;
        let blob: ConfigBlob = serde_json::from_slice(&blob).map_err(|error| context.unexpected(error.to_string()))?;
        let labels = blob.config.and_then(|config| config.labels).unwrap_or_default();
        let created = blob
            .created
            .as_deref()
            .and_then(parse_time)
            .or_else(|| labels.get("org.opencontainers.image.created").and_then(|created| parse_time(created)));
        Ok(ImageConfig { digest, created, labels })
    }
}

/// The entry of an index whose configuration speaks for it: `linux/amd64`, else the first that
/// is not an attestation (`unknown/unknown`), else the first.
fn platform_image(entries: &[Descriptor]) -> Option<&Descriptor> {
    entries
        .iter()
        .find(|entry| entry.platform.as_deref() == Some(PREFERRED_PLATFORM))
        .or_else(|| entries.iter().find(|entry| entry.platform.as_deref().is_none_or(|platform| platform != "unknown/unknown")))
        .or_else(|| entries.first())
}

fn parse_time(text: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn entry(digest: &str, platform: Option<&str>) -> Descriptor {
        Descriptor { digest: digest.to_owned(), platform: platform.map(str::to_owned), ..Descriptor::default() }
    }

    #[test]
    fn an_index_speaks_through_its_amd64_image_else_its_first_image_that_is_not_an_attestation() {
        let entries = [entry("a", Some("unknown/unknown")), entry("b", Some("linux/arm64/v8")), entry("c", Some("linux/amd64"))];
        assert_eq!(platform_image(&entries).map(|entry| entry.digest.as_str()), Some("c"));
        assert_eq!(platform_image(&entries[..2]).map(|entry| entry.digest.as_str()), Some("b"));
        assert_eq!(platform_image(&entries[..1]).map(|entry| entry.digest.as_str()), Some("a"));
        assert_eq!(platform_image(&[]), None);
    }

    #[test]
    fn creation_times_are_read_with_their_fraction_and_offset() {
        assert_eq!(parse_time("2024-01-02T03:04:05Z"), Some(UNIX_EPOCH + Duration::from_secs(1_704_164_645)));
        assert_eq!(parse_time("2024-01-02T04:04:05.5+01:00"), Some(UNIX_EPOCH + Duration::from_millis(1_704_164_645_500)));
        assert_eq!(parse_time("yesterday"), None);
    }
}
