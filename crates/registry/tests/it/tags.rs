//! What a repository holds and what a tag names now, as image automation asks: every tag
//! across pages, a tag's digest, an image's creation time and labels, and what the registry
//! with authentication answers without the right credentials.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use registry::{Registry, RegistryError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{AUTH_REGISTRY, LABEL, OPEN_REGISTRY, PushedImage, credentials, within};

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort_unstable();
    tags
}

#[tokio::test]
async fn every_tag_of_a_repository_is_listed_once_whatever_the_page_size() {
    let mut image = PushedImage::push("tags", OPEN_REGISTRY, None).await;
    image.push_tags(&["1.4.0", "1.4.1", "1.5.0", "2.0.0"], None).await;
    let expected = ["1.4.0", "1.4.1", "1.5.0", "2.0.0", "v1"];

    let whole = within("tags", Registry::new().list_tags(&image.repository, None)).await.unwrap();
    assert_eq!(sorted(whole), expected);
    // Two tags a page: the registry links the next page until the last (three pages).
    // Debian's registry sends every tag whatever `n` asks, without a `Link`: the page that
    // brings nothing new ends the listing.
    let paged = within("tags", Registry::new().with_tag_page_size(2).list_tags(&image.repository, None)).await.unwrap();
    assert_eq!(paged.len(), expected.len(), "{paged:?}");
    assert_eq!(sorted(paged), expected);

    let unknown = format!("{OPEN_REGISTRY}/gantry-registry-it/no-such-repository-{}", std::process::id());
    match within("tags", Registry::new().list_tags(&unknown, None)).await {
        Err(RegistryError::NotFound { reference }) => assert_eq!(reference, unknown),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tag_resolves_to_the_pushed_digest_and_its_configuration_tells_when_and_what() {
    let mut image = PushedImage::push("resolve", OPEN_REGISTRY, None).await;
    image.push_tags(&["1.0.0"], None).await;
    let registry = Registry::new();
    for tag in ["v1", "1.0.0"] {
        assert_eq!(within("resolve", registry.resolve(&image.repository, tag, None)).await.unwrap(), image.manifest.digest);
    }
    assert_eq!(within("resolve", registry.resolve(&image.repository, &image.manifest.digest, None)).await.unwrap(), image.manifest.digest);
    match within("resolve", registry.resolve(&image.repository, "no-such-tag", None)).await {
        Err(RegistryError::NotFound { reference }) => assert!(reference.ends_with(":no-such-tag"), "{reference}"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    let config = within("config", registry.image_config(&image.repository, "1.0.0", None)).await.unwrap();
    assert_eq!(config.digest, image.manifest.digest);
    assert_eq!(config.labels[LABEL], image.id);
    assert_eq!(config.labels["org.opencontainers.image.revision"], "0123abc");
    let created = config.created.expect("the engine writes the creation time");
    let age = SystemTime::now().duration_since(created).unwrap_or_default();
    assert!(age < Duration::from_secs(600), "built {age:?} ago");
    let by_digest = within("config", registry.image_config(&image.repository, &image.manifest.digest, None)).await.unwrap();
    assert_eq!(by_digest, config);
}

#[tokio::test]
async fn the_registry_with_authentication_lists_tags_with_credentials_and_says_so_without() {
    let credentials = credentials();
    let image = PushedImage::push("tags-auth", AUTH_REGISTRY, Some(&credentials)).await;
    let registry = Registry::new();
    let tags = within("tags", registry.list_tags(&image.repository, Some(&credentials))).await.unwrap();
    assert_eq!(tags, std::slice::from_ref(&image.tag));
    let config = within("config", registry.image_config(&image.repository, &image.tag, Some(&credentials))).await.unwrap();
    assert_eq!(config.digest, image.manifest.digest);

    let wrong = registry::Credentials { username: credentials.username.clone(), password: "wrong-password-5eed".to_owned() };
    for attempt in [None, Some(&wrong)] {
        let refusals = [
            within("tags", registry.list_tags(&image.repository, attempt)).await.unwrap_err(),
            within("resolve", registry.resolve(&image.repository, &image.tag, attempt)).await.unwrap_err(),
            within("config", registry.image_config(&image.repository, &image.tag, attempt)).await.unwrap_err(),
        ];
        for error in refusals {
            match &error {
                RegistryError::Unauthorized { registry, .. } => assert_eq!(registry, AUTH_REGISTRY),
                other => panic!("expected Unauthorized, got {other:?}"),
            }
            let shown = error.to_string();
            assert!(shown.contains(AUTH_REGISTRY) && shown.contains("username and password"), "{shown}");
            let debug = format!("{error:?}");
            assert!(!debug.contains(&wrong.password) && !debug.contains(&credentials.password), "{debug}");
        }
    }
}

/// How the fake registry of `paging_registry` says there is more.
#[derive(Clone, Copy)]
enum Paging {
    /// A `Link` header to the next page, as the distribution registry does.
    Link,
    /// Nothing: the client asks again with `last` while pages come back full.
    LastOnly,
}

/// A registry on a port of its own that pages `tags` as `paging` says, `n` at a time; it
/// answers until the test ends and records the query of every page it was asked for.
async fn paging_registry(tags: Vec<String>, paging: Paging) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let recorded = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            let request = String::from_utf8_lossy(&request).into_owned();
            let target = request.split(' ').nth(1).unwrap_or("/").to_owned();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let (mut headers, body) = if path == "/v2/team/app/tags/list" {
                recorded.lock().unwrap().push(query.to_owned());
                let parameter = |name: &str| query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='));
                let size: usize = parameter("n").and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
                let after = parameter("last").unwrap_or("");
                let page: Vec<&String> = tags.iter().filter(|tag| tag.as_str() > after).take(size).collect();
                let more = page.last().is_some_and(|last| tags.iter().any(|tag| tag > *last));
                let mut headers = String::new();
                if let (Paging::Link, true, Some(last)) = (paging, more, page.last()) {
                    headers.push_str(&format!("Link: </v2/team/app/tags/list?n={size}&last={last}>; rel=\"next\"\r\n"));
                }
                (headers, serde_json::json!({ "name": "team/app", "tags": page }).to_string())
            } else {
                (String::new(), "{}".to_owned())
            };
            headers.push_str("Content-Type: application/json\r\nConnection: close\r\n");
            let answer = format!("HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len());
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (format!("{address}/team/app"), asked)
}

#[tokio::test]
async fn pages_are_followed_by_their_link_and_else_by_the_last_tag_of_a_full_page() {
    let tags: Vec<String> = (0..7).map(|index| format!("1.0.{index}")).collect();
    for paging in [Paging::Link, Paging::LastOnly] {
        let (repository, asked) = paging_registry(tags.clone(), paging).await;
        let registry = Registry::new().with_tag_page_size(3).with_request_interval(Duration::ZERO);
        let listed = within("tags", registry.list_tags(&repository, None)).await.unwrap();
        assert_eq!(listed, tags);
        let asked = asked.lock().unwrap().clone();
        match paging {
            Paging::Link => assert_eq!(asked, ["n=3", "n=3&last=1.0.2", "n=3&last=1.0.5"]),
            // The last page is short: nothing more is asked.
            Paging::LastOnly => assert_eq!(asked, ["n=3", "n=3&last=1.0.2", "n=3&last=1.0.5"]),
        }
    }
    // A page that is full to the tag still asks once more, and the empty answer ends it.
    let (repository, asked) = paging_registry(tags[..6].to_vec(), Paging::LastOnly).await;
    let registry = Registry::new().with_tag_page_size(3).with_request_interval(Duration::ZERO);
    assert_eq!(within("tags", registry.list_tags(&repository, None)).await.unwrap(), tags[..6]);
    assert_eq!(asked.lock().unwrap().clone(), ["n=3", "n=3&last=1.0.2", "n=3&last=1.0.5"]);
}
