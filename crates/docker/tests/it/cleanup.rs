//! Label-based cleanup: everything carrying a label is found, and removed in the order the
//! engine allows (a running container first, then the network and volume it uses).

use docker::{ContainerSpec, NetworkAttachment, VolumeMount};

use crate::support::{TestResources, within};

#[tokio::test]
async fn everything_carrying_a_label_is_found_and_removed() {
    let test = TestResources::new("cleanup").await;
    let (network, volume) = (test.name("net"), test.name("vol"));
    within("network", test.engine.create_network(&network, &test.labels())).await.unwrap();
    within("volume", test.engine.create_volume(&volume, &test.labels())).await.unwrap();
    let spec = ContainerSpec {
        network: Some(NetworkAttachment { network: network.clone(), aliases: vec![] }),
        volume_mounts: vec![VolumeMount { volume: volume.clone(), target: "/data".to_owned(), ..VolumeMount::default() }],
        ..test.shell("busy", "exec sleep 300")
    };
    let (container, _output) = test.start(spec).await;

    let found = within("listing", test.engine.list_labelled(&test.filter())).await.unwrap();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found.containers.iter().map(|summary| summary.id.as_str()).collect::<Vec<_>>(), [container.as_str()]);
    assert_eq!(found.networks.iter().map(|summary| summary.name.as_str()).collect::<Vec<_>>(), [network.as_str()]);
    assert_eq!(found.volumes.iter().map(|summary| summary.name.as_str()).collect::<Vec<_>>(), [volume.as_str()]);
    assert!(found.clone().filter(|labels| !labels.contains_key("io.gantry.docker-it")).is_empty());

    let removed = within("removing", test.engine.remove_labelled(&test.filter())).await.unwrap();
    assert_eq!(removed.len(), 3);
    let left = within("listing", test.engine.list_labelled(&test.filter())).await.unwrap();
    assert!(left.is_empty(), "{left:#?}");
    test.finish().await;
}
