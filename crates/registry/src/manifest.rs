//! Reading a registry: manifests (images, indexes, artifacts) as plain `Manifest`s, blobs by
//! their descriptor, and the referrers of an image (the referrers API where the registry has
//! it, else the referrers tag that clients maintain).

use std::collections::BTreeMap;

use futures_util::StreamExt;
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciManifest};

use crate::client::{Credentials, Registry, Session};
use crate::error::RegistryError;

/// The media type of an OCI image manifest (artifacts are image manifests too).
pub const OCI_IMAGE_MANIFEST_MEDIA_TYPE: &str = oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;
/// The media type of an OCI image index (also the referrers list's).
pub const OCI_IMAGE_INDEX_MEDIA_TYPE: &str = oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE;

/// The most a blob read into memory may hold: configurations and attestations are small, and a
/// registry must not make a reader hold a layer.
const MAX_BLOB_BYTES: u64 = 16 * 1024 * 1024;

/// What names one piece of content in a registry: a manifest, a configuration, a layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:…`
    pub digest: String,
    /// In bytes.
    pub size: u64,
    /// For an artifact's manifest: what kind of artifact (`application/vnd.in-toto+json`).
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// For an entry of an index: the platform it is for, `os/architecture[/variant]`
    /// (`linux/amd64`, `linux/arm64/v8`); `unknown/unknown` for attestations Buildx adds.
    pub platform: Option<String>,
}

/// A manifest as the registry holds it: an image's, an artifact's, or an index's.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The manifest itself: its media type, digest and size in the registry. A descriptor an
    /// attestation's `subject` can name.
    pub descriptor: Descriptor,
    /// The configuration blob (an image's labels are in it); `None` for an index.
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    /// For an artifact: the manifest it refers to.
    pub subject: Option<Descriptor>,
    /// For an index: the manifests it lists.
    pub manifests: Vec<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

impl From<&OciDescriptor> for Descriptor {
    fn from(descriptor: &OciDescriptor) -> Descriptor {
        Descriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: u64::try_from(descriptor.size).unwrap_or_default(),
            artifact_type: descriptor.artifact_type.clone(),
            annotations: descriptor.annotations.clone().unwrap_or_default(),
            platform: None,
        }
    }
}

impl From<&ImageIndexEntry> for Descriptor {
    fn from(entry: &ImageIndexEntry) -> Descriptor {
        Descriptor {
            media_type: entry.media_type.clone(),
            digest: entry.digest.clone(),
            size: u64::try_from(entry.size).unwrap_or_default(),
            artifact_type: entry.artifact_type.clone(),
            annotations: entry.annotations.clone().unwrap_or_default(),
            platform: entry.platform.as_ref().map(|platform| match &platform.variant {
                Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
                None => format!("{}/{}", platform.os, platform.architecture),
            }),
        }
    }
}

impl Descriptor {
    pub(crate) fn to_oci(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: i64::try_from(self.size).unwrap_or(i64::MAX),
            urls: None,
            annotations: if self.annotations.is_empty() { None } else { Some(self.annotations.clone()) },
            artifact_type: self.artifact_type.clone(),
        }
    }
}

/// A manifest of `size` bytes with `digest`, as a plain `Manifest`.
pub(crate) fn plain_manifest(manifest: &OciManifest, digest: String, size: u64) -> Manifest {
    match manifest {
        OciManifest::Image(image) => Manifest {
            descriptor: Descriptor {
                media_type: manifest.content_type().to_string(),
                digest,
                size,
                artifact_type: image.artifact_type.clone(),
                annotations: image.annotations.clone().unwrap_or_default(),
                platform: None,
            },
            config: Some(Descriptor::from(&image.config)),
            layers: image.layers.iter().map(Descriptor::from).collect(),
            subject: image.subject.as_ref().map(Descriptor::from),
            manifests: Vec::new(),
            annotations: image.annotations.clone().unwrap_or_default(),
        },
        OciManifest::ImageIndex(index) => Manifest {
            descriptor: Descriptor {
                media_type: manifest.content_type().to_string(),
                digest,
                size,
                artifact_type: index.artifact_type.clone(),
                annotations: index.annotations.clone().unwrap_or_default(),
                platform: None,
            },
            config: None,
            layers: Vec::new(),
            subject: None,
            manifests: index.manifests.iter().map(Descriptor::from).collect(),
            annotations: index.annotations.clone().unwrap_or_default(),
        },
    }
}

/// The media types of manifests this crate reads: Docker's and OCI's images and indexes.
const MANIFEST_MEDIA_TYPES: &[&str] = &[
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
];

impl Registry {
    /// The manifest `reference` names in `repository` (`registry/name`): a tag (`v1`) or a
    /// digest (`sha256:…`). `RegistryError::NotFound` when the registry has none.
    pub async fn fetch_manifest(
        &self,
        repository: &str,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Manifest, RegistryError> {
        let session = self.session(repository, credentials, "read a manifest").await?;
        session.manifest(reference).await
    }

    /// The blob `descriptor` names in `repository`, read into memory and checked against its
    /// digest: for configurations and attestations (16 MiB at most), not layers.
    pub async fn fetch_blob(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<u8>, RegistryError> {
        let session = self.session(repository, credentials, "read a blob").await?;
        session.blob(descriptor).await
    }

    /// The manifests that refer to `subject_digest` in `repository` (attestations,
    /// signatures): the registry's referrers API where it has one, else the referrers tag
    /// (`sha256-<hex>`) clients maintain on registries without it (Docker's distribution 2.8
    /// among them). An image nothing refers to has none.
    pub async fn referrers(
        &self,
        repository: &str,
        subject_digest: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let session = self.session(repository, credentials, "list referrers").await?;
        let subject = session.by_digest(subject_digest);
        let written = subject.whole();
        let context = session.context(&written, "list referrers");
        let index = session.client.pull_referrers(&subject, None).await.map_err(|error| context.classify(error))?;
        Ok(index.manifests.iter().map(Descriptor::from).collect())
    }
}

impl Session<'_> {
    /// The manifest `reference` (a tag, or a digest `sha256:…`) names in this session's
    /// repository.
    pub(crate) async fn manifest(&self, reference: &str) -> Result<Manifest, RegistryError> {
        let target = if reference.contains(':') { self.by_digest(reference) } else { self.by_tag(reference) };
        let written = target.whole();
        let context = self.context(&written, "read a manifest");
        let (bytes, digest) =
            self.client.pull_manifest_raw(&target, &self.auth, MANIFEST_MEDIA_TYPES).await.map_err(|error| context.classify(error))?;
        let manifest: OciManifest = serde_json::from_slice(&bytes).map_err(|error| context.unexpected(error.to_string()))?;
        Ok(plain_manifest(&manifest, digest, bytes.len() as u64))
    }

    /// The blob `descriptor` names, read into memory and checked against its digest (see
    /// `Registry::fetch_blob`).
    pub(crate) async fn blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, RegistryError> {
        let target = self.by_digest(&descriptor.digest);
        let written = target.whole();
        let context = self.context(&written, "read a blob");
        if descriptor.size > MAX_BLOB_BYTES {
            return Err(context.unexpected(format!("{} bytes is more than this reader takes ({MAX_BLOB_BYTES})", descriptor.size)));
        }
        let oci_descriptor = descriptor.to_oci();
        let mut stream = self.client.pull_blob_stream(&target, &oci_descriptor).await.map_err(|error| context.classify(error))?;
        let mut blob = Vec::new();
        // The stream checks the digest once it has read everything; the size is checked here,
        // as it comes, so that a registry sending more cannot fill the memory.
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| context.request(&error))?;
            blob.extend_from_slice(&chunk);
            if blob.len() as u64 > descriptor.size {
                return Err(context.unexpected(format!("the blob is longer than the {} bytes its descriptor says", descriptor.size)));
            }
        }
        Ok(blob)
    }
}
