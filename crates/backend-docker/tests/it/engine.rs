//! The `docker` crate on its own: reaching an engine, and errors that name what failed.

use backend_docker::DockerBackend;
use docker::{ContainerSpec, DockerError, Engine};
use runtime::BackendError;

use crate::support::{BUSYBOX, connect};

#[tokio::test]
async fn no_engine_at_the_address_is_unreachable_naming_it() {
    let host = "unix:///tmp/gantry-no-engine-here.sock";
    match Engine::connect_to(host).await {
        Err(DockerError::Unreachable { host: named, .. }) => assert_eq!(named, host),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    match DockerBackend::connect_to(host, Default::default()).await {
        Err(BackendError::Unavailable { message, hint }) => {
            assert!(message.contains(host), "{message}");
            assert!(hint.contains("DOCKER_HOST"), "{hint}");
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("expected Unavailable, got a backend"),
    }
}

#[tokio::test]
async fn an_unknown_transport_is_unsupported() {
    assert!(matches!(Engine::connect_to("ftp://example.invalid").await, Err(DockerError::UnsupportedHost { .. })));
}

#[tokio::test]
async fn the_engine_answers_with_its_version() {
    let engine = connect().await;
    engine.ping().await.unwrap();
    let version = engine.version().await.unwrap();
    assert!(!version.api_version.is_empty());
}

#[tokio::test]
async fn errors_name_the_container_or_image() {
    let engine = connect().await;
    match engine.wait_container("gantry-no-such-container").await {
        Err(DockerError::ContainerNotFound { container }) => assert_eq!(container, "gantry-no-such-container"),
        other => panic!("expected ContainerNotFound, got {other:?}"),
    }
    let spec = ContainerSpec { image: "gantry-test/not-here:1".to_string(), command: Some(vec!["true".to_string()]), ..Default::default() };
    match engine.create_container(spec).await {
        Err(DockerError::ImageNotFound { image }) => assert_eq!(image, "gantry-test/not-here:1"),
        other => panic!("expected ImageNotFound, got {other:?}"),
    }
    assert!(!engine.image_exists("gantry-test/not-here:1").await.unwrap());
    assert!(engine.image_exists(BUSYBOX).await.unwrap());
    match engine.pull_image("gantry-test/not-here:1").await {
        Err(DockerError::PullFailed { image, reason }) => {
            assert_eq!((image.as_str(), reason.is_empty()), ("gantry-test/not-here:1", false));
        }
        other => panic!("expected PullFailed, got {other:?}"),
    }
}
