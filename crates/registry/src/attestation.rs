//! Attestations pushed next to an image: an OCI artifact manifest whose one layer is an in-toto
//! statement and whose `subject` is the image, so that the registry (or the referrers tag on a
//! registry without the referrers API) lists it among the image's referrers.

use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{ImageIndexEntry, OciImageIndex, OciImageManifest, OciManifest};

use crate::client::{Credentials, Registry};
use crate::error::RegistryError;
use crate::manifest::{Descriptor, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MANIFEST_MEDIA_TYPE};

/// The artifact type of an attestation, and the media type of its statement.
pub const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The configuration of an artifact that needs none: the two bytes `{}`.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

impl Registry {
    /// Pushes `statement` (in-toto JSON) to `repository` (`registry/name`) as an OCI artifact
    /// that refers to the image manifest `subject` (its media type, digest and size, as
    /// `fetch_manifest` or a push reports them), and returns the artifact manifest's
    /// descriptor. The artifact has no tag of its own: it is found through
    /// `Registry::referrers` of the image.
    ///
    /// On a registry without the referrers API the referrers tag (`sha256-<hex of the image's
    /// digest>`) is updated as the OCI distribution spec asks of clients: the index there is
    /// read, the artifact added unless listed, and the index pushed back. Two pushes for the
    /// same image at the very same moment can lose one entry there (the spec has no lock);
    /// the artifacts themselves stay.
    pub async fn push_attestation(
        &self,
        repository: &str,
        subject: &Descriptor,
        statement: &[u8],
        credentials: Option<&Credentials>,
    ) -> Result<Descriptor, RegistryError> {
        let session = self.session(repository, credentials, "push an attestation").await?;
        let config = Config::new(b"{}".to_vec(), EMPTY_CONFIG_MEDIA_TYPE.to_string(), None);
        let layer = ImageLayer::new(statement.to_vec(), IN_TOTO_MEDIA_TYPE.to_string(), None);
        let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        manifest.media_type = Some(OCI_IMAGE_MANIFEST_MEDIA_TYPE.to_string());
        manifest.artifact_type = Some(IN_TOTO_MEDIA_TYPE.to_string());
        manifest.subject = Some(subject.to_oci());

        let repository_name = session.repository.whole();
        let context = session.context(&repository_name, "push an attestation");
        for (data, digest) in [(config.data.clone(), config.sha256_digest()), (layer.data.clone(), layer.sha256_digest())] {
            session.client.push_blob(&session.repository, data, &digest).await.map_err(|error| context.classify(error))?;
        }
        // Pushed by digest (an artifact gets no tag), so the digest is computed from the very
        // bytes sent; oci-client's own `push_manifest` writes canonical JSON it does not
        // return.
        let body = serde_json::to_vec(&manifest).map_err(|error| context.request(&error))?;
        let digest = ImageLayer::new(body.clone(), OCI_IMAGE_MANIFEST_MEDIA_TYPE.to_string(), None).sha256_digest();
        let content_type = OCI_IMAGE_MANIFEST_MEDIA_TYPE.parse().map_err(|error| context.request(&error))?;
        let size = body.len() as u64;
        session.client.push_manifest_raw(&session.by_digest(&digest), body, content_type).await.map_err(|error| context.classify(error))?;
        let artifact = Descriptor {
            media_type: OCI_IMAGE_MANIFEST_MEDIA_TYPE.to_string(),
            digest,
            size,
            artifact_type: Some(IN_TOTO_MEDIA_TYPE.to_string()),
            annotations: Default::default(),
            platform: None,
        };
        tracing::debug!(repository, artifact = %artifact.digest, subject = %subject.digest, "pushed an attestation");

        // A registry with the referrers API lists the artifact at once; oci-client reads the
        // referrers tag instead when the API is missing, so an artifact missing from the answer
        // means the tag is ours to update.
        let subject_reference = session.by_digest(&subject.digest);
        let listed = session.client.pull_referrers(&subject_reference, None).await.map_err(|error| context.classify(error))?;
        if listed.manifests.iter().any(|entry| entry.digest == artifact.digest) {
            return Ok(artifact);
        }
        let fallback_tag = subject.digest.replace(':', "-");
        let tag_reference = session.by_tag(&fallback_tag);
        let tag_written = tag_reference.whole();
        let tag_context = session.context(&tag_written, "update the referrers tag");
        let mut index = match session.client.pull_manifest(&tag_reference, &session.auth).await.map_err(|error| tag_context.classify(error))
        {
            Ok((OciManifest::ImageIndex(index), _)) => index,
            Ok((OciManifest::Image(_), _)) => return Err(tag_context.unexpected("the referrers tag holds an image, not an index")),
            Err(RegistryError::NotFound { .. }) => OciImageIndex {
                schema_version: 2,
                media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()),
                manifests: Vec::new(),
                artifact_type: None,
                annotations: None,
            },
            Err(error) => return Err(error),
        };
        if !index.manifests.iter().any(|entry| entry.digest == artifact.digest) {
            index.manifests.push(ImageIndexEntry {
                media_type: artifact.media_type.clone(),
                digest: artifact.digest.clone(),
                size: i64::try_from(artifact.size).unwrap_or(i64::MAX),
                platform: None,
                annotations: None,
                artifact_type: artifact.artifact_type.clone(),
            });
        }
        session.client.push_manifest_list(&tag_reference, &session.auth, index).await.map_err(|error| tag_context.classify(error))?;
        Ok(artifact)
    }
}
