//! Networks: a labelled bridge network on which containers reach each other by alias, joined at
//! creation or connected later, and removed once empty.

use docker::{ContainerSpec, DockerError, NetworkAttachment};

use crate::support::{TestResources, read_until, within};

/// A web server that says it is listening once it is.
const WEB_SERVER: &str =
    "mkdir -p /www && echo 'hello over the network' > /www/index.html && httpd -p 8080 -h /www && echo listening && exec sleep 300";

#[tokio::test]
async fn containers_on_a_network_reach_each_other_by_alias() {
    let test = TestResources::new("network").await;
    let network = test.name("net");
    let network_id = within("create", test.engine.create_network(&network, &test.labels())).await.unwrap();
    let listed = within("listing", test.engine.list_networks(&test.filter())).await.unwrap();
    assert_eq!(
        listed.iter().map(|summary| (summary.id.as_str(), summary.name.as_str())).collect::<Vec<_>>(),
        [(network_id.as_str(), network.as_str())]
    );

    let attachment = NetworkAttachment { network: network.clone(), aliases: vec!["web".to_owned()] };
    let (server, mut server_output) = test.start(ContainerSpec { network: Some(attachment), ..test.shell("server", WEB_SERVER) }).await;
    read_until(&mut server_output, "listening").await;

    // Created on the default bridge, then connected: it reaches the server by its alias.
    let client = within("create", test.engine.create_container(test.shell("client", "wget -q -O - http://web:8080/"))).await.unwrap();
    within("connect", test.engine.connect_network(&network, &client, &["client".to_owned()])).await.unwrap();
    let output = within("attach", test.engine.attach_output(&client)).await.unwrap();
    within("start", test.engine.start_container(&client)).await.unwrap();
    let output = crate::support::collect(output).await;
    assert_eq!(output.stdout, "hello over the network\n", "{output:?}");
    assert_eq!(within("wait", test.engine.wait_container(&client)).await.unwrap(), 0);

    // A network with a running container on it stays.
    let in_use = within("remove in use", test.engine.remove_network(&network)).await.unwrap_err();
    assert!(matches!(&in_use, DockerError::Network { operation: "remove", .. }), "{in_use:?}");
    within("disconnect", test.engine.disconnect_network(&network, &server)).await.unwrap();
    within("disconnect", test.engine.disconnect_network(&network, &client)).await.unwrap();
    within("remove", test.engine.remove_network(&network)).await.unwrap();
    assert!(within("listing", test.engine.list_networks(&test.filter())).await.unwrap().is_empty());
    // Removing what is gone already is not an error.
    within("remove again", test.engine.remove_network(&network)).await.unwrap();
    test.finish().await;
}
