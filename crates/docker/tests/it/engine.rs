//! Connecting: the engine answers a ping and says its version; addresses that lead nowhere or
//! need what this build does not have are errors that say so.

use docker::{DockerError, Engine};

use crate::support::within;

#[tokio::test]
async fn the_engine_answers_and_says_its_version() {
    let engine = within("connect", Engine::connect()).await.expect("these tests need a Docker engine; run scripts/docker-up.sh");
    within("ping", engine.ping()).await.unwrap();
    let version = within("version", engine.version()).await.unwrap();
    assert!(!version.version.is_empty(), "{version:?}");
    let (major, minor) = version.api_version.split_once('.').expect("an API version is major.minor");
    assert!(major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok(), "{version:?}");
}

#[tokio::test]
async fn addresses_that_lead_nowhere_or_need_tls_are_errors_that_say_so() {
    let nowhere = "unix:///nonexistent/gantry-docker-it.sock";
    match within("connect", Engine::connect_to(nowhere)).await {
        Err(DockerError::Unreachable { host, .. }) => assert_eq!(host, nowhere),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    match within("connect", Engine::connect_to("https://127.0.0.1:2376")).await {
        Err(DockerError::UnsupportedHost { host, reason }) => {
            assert_eq!(host, "https://127.0.0.1:2376");
            assert!(reason.contains("TLS"), "{reason}");
        }
        other => panic!("expected UnsupportedHost, got {other:?}"),
    }
    match within("connect", Engine::connect_to("ftp://127.0.0.1")).await {
        Err(DockerError::UnsupportedHost { .. }) => {}
        other => panic!("expected UnsupportedHost, got {other:?}"),
    }
}
