//! Attestations: an in-toto statement pushed next to an image is found among the image's
//! referrers and reads back byte for byte; a second one for the same image keeps the first;
//! the registry with authentication takes them only with the right password.

use registry::{Descriptor, EMPTY_CONFIG_MEDIA_TYPE, IN_TOTO_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, Registry, RegistryError};

use crate::support::{AUTH_REGISTRY, OPEN_REGISTRY, PushedImage, credentials, within};

/// An in-toto statement about `image`, told apart from others by `note`.
fn statement(image: &PushedImage, note: &str) -> Vec<u8> {
    let hex = image.manifest.digest.trim_start_matches("sha256:");
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": image.repository, "digest": { "sha256": hex } }],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": { "buildDefinition": { "buildType": "https://gantry.dev/build/v1" }, "runDetails": { "builder": { "id": note } } },
    }))
    .unwrap()
}

fn digests(descriptors: &[Descriptor]) -> Vec<&str> {
    let mut digests: Vec<&str> = descriptors.iter().map(|descriptor| descriptor.digest.as_str()).collect();
    digests.sort_unstable();
    digests
}

#[tokio::test]
async fn an_attestation_pushed_next_to_an_image_is_one_of_its_referrers_and_reads_back() {
    let image = PushedImage::push("attest", OPEN_REGISTRY, None).await;
    let registry = Registry::new();
    assert!(within("referrers", registry.referrers(&image.repository, &image.manifest.digest, None)).await.unwrap().is_empty());

    let statement = statement(&image, "first");
    let artifact = within("push", registry.push_attestation(&image.repository, &image.manifest, &statement, None)).await.unwrap();
    assert_eq!(artifact.artifact_type.as_deref(), Some(IN_TOTO_MEDIA_TYPE));

    let referrers = within("referrers", registry.referrers(&image.repository, &image.manifest.digest, None)).await.unwrap();
    assert_eq!(digests(&referrers), [artifact.digest.as_str()]);
    assert_eq!(referrers[0].artifact_type.as_deref(), Some(IN_TOTO_MEDIA_TYPE));
    assert_eq!(referrers[0].size, artifact.size);

    let manifest = within("manifest", registry.fetch_manifest(&image.repository, &artifact.digest, None)).await.unwrap();
    assert_eq!(manifest.descriptor.digest, artifact.digest);
    assert_eq!(manifest.descriptor.artifact_type.as_deref(), Some(IN_TOTO_MEDIA_TYPE));
    let subject = manifest.subject.as_ref().expect("the artifact names its image");
    assert_eq!((subject.digest.as_str(), subject.size), (image.manifest.digest.as_str(), image.manifest.size));
    assert_eq!(manifest.config.as_ref().map(|config| config.media_type.as_str()), Some(EMPTY_CONFIG_MEDIA_TYPE));
    let config = within("config", registry.fetch_blob(&image.repository, manifest.config.as_ref().unwrap(), None)).await.unwrap();
    assert_eq!(config, b"{}");
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, IN_TOTO_MEDIA_TYPE);
    let read_back = within("statement", registry.fetch_blob(&image.repository, &manifest.layers[0], None)).await.unwrap();
    assert_eq!(read_back, statement);

    // Docker's distribution 2.8 has no referrers API: the list is the referrers tag's index.
    let tag = image.manifest.digest.replace(':', "-");
    let index = within("referrers tag", registry.fetch_manifest(&image.repository, &tag, None)).await.unwrap();
    assert_eq!(index.descriptor.media_type, OCI_IMAGE_INDEX_MEDIA_TYPE);
    assert_eq!(digests(&index.manifests), [artifact.digest.as_str()]);
}

#[tokio::test]
async fn a_second_attestation_for_the_same_image_keeps_the_first_and_a_repeated_one_is_listed_once() {
    let image = PushedImage::push("attest-twice", OPEN_REGISTRY, None).await;
    let registry = Registry::new();
    let first =
        within("push", registry.push_attestation(&image.repository, &image.manifest, &statement(&image, "first"), None)).await.unwrap();
    let second =
        within("push", registry.push_attestation(&image.repository, &image.manifest, &statement(&image, "second"), None)).await.unwrap();
    assert_ne!(first.digest, second.digest);
    let again =
        within("push", registry.push_attestation(&image.repository, &image.manifest, &statement(&image, "first"), None)).await.unwrap();
    assert_eq!(again, first);

    let referrers = within("referrers", registry.referrers(&image.repository, &image.manifest.digest, None)).await.unwrap();
    let mut expected = vec![first.digest.as_str(), second.digest.as_str()];
    expected.sort_unstable();
    assert_eq!(digests(&referrers), expected);
}

#[tokio::test]
async fn a_registry_with_authentication_needs_the_right_password_and_never_shows_it() {
    let credentials = credentials();
    let image = PushedImage::push("attest-auth", AUTH_REGISTRY, Some(&credentials)).await;
    let registry = Registry::new();
    let wrong = registry::Credentials { username: credentials.username.clone(), password: "wrong-password-c0ffee".to_owned() };
    let statement = statement(&image, "authenticated");

    for attempt in [Some(&wrong), None] {
        let refusals = [
            within("push", registry.push_attestation(&image.repository, &image.manifest, &statement, attempt)).await.unwrap_err(),
            within("referrers", registry.referrers(&image.repository, &image.manifest.digest, attempt)).await.unwrap_err(),
            within("manifest", registry.fetch_manifest(&image.repository, &image.tag, attempt)).await.unwrap_err(),
        ];
        for error in refusals {
            match &error {
                RegistryError::Unauthorized { registry, .. } => assert_eq!(registry, AUTH_REGISTRY),
                other => panic!("expected Unauthorized, got {other:?}"),
            }
            let (shown, debug) = (error.to_string(), format!("{error:?}"));
            assert!(shown.contains(AUTH_REGISTRY), "{shown}");
            assert!(!shown.contains(&wrong.password) && !debug.contains(&wrong.password), "{debug}");
            assert!(!shown.contains(&credentials.password) && !debug.contains(&credentials.password), "{debug}");
        }
    }
    assert!(!format!("{wrong:?}").contains(&wrong.password));

    let artifact =
        within("push", registry.push_attestation(&image.repository, &image.manifest, &statement, Some(&credentials))).await.unwrap();
    let referrers = within("referrers", registry.referrers(&image.repository, &image.manifest.digest, Some(&credentials))).await.unwrap();
    assert_eq!(digests(&referrers), [artifact.digest.as_str()]);
}
