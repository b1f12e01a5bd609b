//! Reading a registry: an image's manifest by tag and by digest (its descriptor is what the
//! engine's push reported), its configuration's labels, and what is missing or malformed.

use registry::{Registry, RegistryError};

use crate::support::{LABEL, OPEN_REGISTRY, PushedImage, within};

#[tokio::test]
async fn an_images_manifest_and_labels_read_back_by_tag_and_by_digest() {
    let image = PushedImage::push("read", OPEN_REGISTRY, None).await;
    let registry = Registry::new();
    let by_tag = within("manifest", registry.fetch_manifest(&image.repository, &image.tag, None)).await.unwrap();
    assert_eq!(by_tag.descriptor, image.manifest);
    let by_digest = within("manifest", registry.fetch_manifest(&image.repository, &image.manifest.digest, None)).await.unwrap();
    assert_eq!(by_digest.descriptor, image.manifest);
    assert!(by_tag.subject.is_none() && by_tag.manifests.is_empty());
    assert!(!by_tag.layers.is_empty());

    let config = by_tag.config.expect("an image has a configuration");
    let config = within("config", registry.fetch_blob(&image.repository, &config, None)).await.unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let labels = &config["config"]["Labels"];
    assert_eq!(labels[LABEL], image.id.as_str(), "{config}");
    assert_eq!(labels["org.opencontainers.image.revision"], "0123abc", "{config}");
}

#[tokio::test]
async fn what_is_not_there_is_not_found_and_a_tagged_repository_is_refused() {
    let image = PushedImage::push("missing", OPEN_REGISTRY, None).await;
    let registry = Registry::new();
    match within("manifest", registry.fetch_manifest(&image.repository, "no-such-tag", None)).await {
        Err(RegistryError::NotFound { reference }) => assert!(reference.ends_with(":no-such-tag"), "{reference}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let unknown = format!("sha256:{}", "0".repeat(64));
    match within("manifest", registry.fetch_manifest(&image.repository, &unknown, None)).await {
        Err(RegistryError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    // An image nothing refers to has no referrers.
    assert!(within("referrers", registry.referrers(&image.repository, &image.manifest.digest, None)).await.unwrap().is_empty());

    let tagged = format!("{}:{}", image.repository, image.tag);
    match within("manifest", registry.fetch_manifest(&tagged, &image.tag, None)).await {
        Err(RegistryError::InvalidReference { reference, .. }) => assert_eq!(reference, tagged),
        other => panic!("expected InvalidReference, got {other:?}"),
    }
}
