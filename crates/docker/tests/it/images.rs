//! Images: whether one is on this machine, what creating a container of a missing one says, a
//! pull that cannot reach its registry, and a root filesystem imported as an image.

use bytes::Bytes;
use docker::DockerError;

use crate::support::{BUSYBOX, TestResources, within};

#[tokio::test]
async fn an_image_is_on_this_machine_or_not_and_a_container_of_a_missing_one_says_which() {
    let test = TestResources::new("images").await;
    assert!(within("inspect", test.engine.image_exists(BUSYBOX)).await.unwrap());
    let missing = format!("gantry-test/{}:latest", test.name("missing"));
    assert!(!within("inspect", test.engine.image_exists(&missing)).await.unwrap());

    let spec = docker::ContainerSpec { image: missing.clone(), ..test.shell("of-missing-image", "true") };
    let error = within("create", test.engine.create_container(spec)).await.unwrap_err();
    match &error {
        DockerError::ImageNotFound { image } => assert_eq!(image, &missing),
        other => panic!("expected ImageNotFound, got {other:?}"),
    }
    assert!(error.is_not_found());
    assert_eq!(error.to_string(), format!("image `{missing}` is not on this machine"));
    test.finish().await;
}

/// Nothing listens on port 1 of this machine: the pull fails with the engine's reason.
#[tokio::test]
async fn a_pull_from_a_registry_that_is_not_there_fails_with_the_reason() {
    let test = TestResources::new("pull").await;
    let image = "127.0.0.1:1/gantry-test/unreachable:1";
    match within("pull", test.engine.pull_image(image)).await {
        Err(DockerError::PullFailed { image: failed, reason }) => {
            assert_eq!(failed, image);
            assert!(!reason.is_empty());
        }
        other => panic!("expected PullFailed, got {other:?}"),
    }
    assert!(!within("inspect", test.engine.image_exists(image)).await.unwrap());
    test.finish().await;
}

#[tokio::test]
async fn a_root_filesystem_is_imported_as_an_image() {
    let test = TestResources::new("import").await;
    let image = format!("gantry-test/{}:imported", test.name("image"));
    let mut root_filesystem = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    root_filesystem.append_data(&mut header, "etc/marker", &b"gantry"[..]).unwrap();
    let root_filesystem = Bytes::from(root_filesystem.into_inner().unwrap());

    within("import", test.engine.import_image(&image, root_filesystem)).await.unwrap();
    let imported = within("inspect", test.engine.image_exists(&image)).await.unwrap();
    // The crate has no call that removes an image: the docker CLI removes it, whatever the assertion said.
    let removed = std::process::Command::new("docker").args(["image", "rm", &image]).output().expect("the docker CLI runs");
    assert!(imported, "the imported image is not on this machine");
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    test.finish().await;
}
