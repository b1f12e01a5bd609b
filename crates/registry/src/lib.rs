//! Gantry's one door to image registries' HTTP API (the OCI distribution API, through
//! `oci-client`): reading manifests and blobs, listing a repository's tags, what a tag names
//! now (its digest, its creation time and labels), listing what refers to an image, and
//! pushing an attestation (an in-toto statement) next to an image as an OCI artifact that
//! refers to it.
//! Image pushes themselves go through the Docker engine (`docker::Engine::push_image`); this
//! crate handles what the engine cannot: artifacts, referrers, reading a registry without an
//! engine (the deployer watches registries with it).
//!
//! Registries are reached the way Docker reaches them by default: plain HTTP for hosts in
//! 127.0.0.0/8 and `localhost`, HTTPS for every other host unless it is listed as insecure.
//! No call keeps credentials: each takes the credentials it needs, and none of them appears
//! in `Debug` output or in an error. Requests to one registry are spaced (a minimum interval,
//! 100 ms unless set otherwise), so a deployer watching many applications does not flood it.

mod attestation;
mod client;
mod error;
mod image;
mod manifest;
mod tags;

pub use attestation::{EMPTY_CONFIG_MEDIA_TYPE, IN_TOTO_MEDIA_TYPE};
pub use client::{Credentials, DEFAULT_REQUEST_INTERVAL, Registry};
pub use error::RegistryError;
pub use image::ImageConfig;
pub use manifest::{Descriptor, Manifest, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MANIFEST_MEDIA_TYPE};
