//! Volumes: made with labels (once, or by the engine for a mount), shared by containers,
//! mounted read-only, and removed once no container uses them.

use docker::{ContainerSpec, DockerError, VolumeMount};

use crate::support::{TestResources, within};

#[tokio::test]
async fn a_volume_outlives_its_containers_and_goes_once_none_uses_it() {
    let test = TestResources::new("volume").await;
    let volume = test.name("shared");
    within("create", test.engine.create_volume(&volume, &test.labels())).await.unwrap();
    // Creating it again returns the same volume.
    within("create again", test.engine.create_volume(&volume, &test.labels())).await.unwrap();
    let listed = within("listing", test.engine.list_volumes(&test.filter())).await.unwrap();
    assert_eq!(listed.iter().map(|summary| (summary.name.as_str(), summary.labels.len())).collect::<Vec<_>>(), [(volume.as_str(), 1)]);

    let mount = |read_only| VolumeMount { volume: volume.clone(), target: "/shared".to_owned(), read_only, ..VolumeMount::default() };
    let writer = ContainerSpec { volume_mounts: vec![mount(false)], ..test.shell("writer", "echo kept > /shared/note") };
    let (writer, _, exit_code) = test.run(writer).await;
    assert_eq!(exit_code, 0);
    let reader = ContainerSpec {
        volume_mounts: vec![mount(true)],
        ..test.shell("reader", "cat /shared/note; echo overwritten > /shared/note || echo read-only")
    };
    let (reader, output, exit_code) = test.run(reader).await;
    assert_eq!((output.stdout.as_str(), exit_code), ("kept\nread-only\n", 0));

    let in_use = within("remove in use", test.engine.remove_volume(&volume)).await.unwrap_err();
    assert!(matches!(&in_use, DockerError::Volume { operation: "remove", status: 409, .. }), "{in_use:?}");
    for container in [writer, reader] {
        within("remove container", test.engine.remove_container(&container)).await.unwrap();
    }
    within("remove", test.engine.remove_volume(&volume)).await.unwrap();
    assert!(within("listing", test.engine.list_volumes(&test.filter())).await.unwrap().is_empty());
    // Removing what is gone already is not an error.
    within("remove again", test.engine.remove_volume(&volume)).await.unwrap();
    test.finish().await;
}

/// A volume a mount names that does not exist (any more) is made by the engine, with the
/// mount's labels, so that cleanup by label still finds it.
#[tokio::test]
async fn a_mounted_volume_that_does_not_exist_is_made_with_the_mounts_labels() {
    let test = TestResources::new("mount").await;
    let volume = test.name("made-by-mount");
    let mount = VolumeMount { volume: volume.clone(), target: "/cache".to_owned(), labels: test.labels(), ..VolumeMount::default() };
    let spec = ContainerSpec { volume_mounts: vec![mount], ..test.shell("user", "touch /cache/used") };
    let (container, _, exit_code) = test.run(spec).await;
    let listed = within("listing", test.engine.list_volumes(&test.filter())).await.unwrap();
    // Removed by name before anything is asserted: a volume without the labels would leak.
    within("remove container", test.engine.remove_container(&container)).await.unwrap();
    within("remove volume", test.engine.remove_volume(&volume)).await.unwrap();
    assert_eq!(exit_code, 0);
    assert_eq!(listed.iter().map(|summary| summary.name.as_str()).collect::<Vec<_>>(), [volume.as_str()]);
    test.finish().await;
}
