//! Secrets: created or replaced by name, ciphertext bytes kept exactly.

use store::{NewSecret, Store, StoreError};

use crate::fixtures::{NOW, repo};

store_tests!(secrets_are_replaced_by_name);

async fn secrets_are_replaced_by_name(store: Store) {
    let web = repo(&store, "acme/web").await;
    let other = repo(&store, "acme/api").await;
    // Every byte value, as a nonce and ciphertext may hold (not UTF-8).
    let ciphertext: Vec<u8> = (0..=255).rev().collect();
    let first =
        NewSecret { name: "registry".into(), ciphertext: ciphertext.clone(), events: vec!["push".into(), "tag".into()], images: vec![] };
    store.put_secret(web.id, &first, NOW).await.unwrap();
    store.put_secret(web.id, &NewSecret { name: "deploy".into(), ..first.clone() }, NOW).await.unwrap();
    store.put_secret(other.id, &first, NOW).await.unwrap();

    check(&store, web.id, &[("deploy", &ciphertext, NOW), ("registry", &ciphertext, NOW)]).await;
    let listed = store.list_secrets(web.id).await.unwrap();
    assert_eq!((listed[1].events.clone(), listed[1].images.clone(), listed[1].repo_id), (first.events.clone(), vec![], web.id));

    let replacement = NewSecret {
        name: "registry".into(),
        ciphertext: vec![0, 0, 7],
        events: vec!["cron".into()],
        images: vec!["plugins/docker".into()],
    };
    store.put_secret(web.id, &replacement, NOW + 10).await.unwrap();
    check(&store, web.id, &[("deploy", &ciphertext, NOW), ("registry", &[0, 0, 7], NOW + 10)]).await;
    let replaced = store.list_secrets(web.id).await.unwrap().remove(1);
    assert_eq!((replaced.created, replaced.events, replaced.images), (NOW, vec!["cron".to_owned()], vec!["plugins/docker".to_owned()]));

    assert!(store.delete_secret(web.id, "registry").await.unwrap());
    assert!(!store.delete_secret(web.id, "registry").await.unwrap());
    check(&store, web.id, &[("deploy", &ciphertext, NOW)]).await;
    check(&store, other.id, &[("registry", &ciphertext, NOW)]).await;
    assert!(matches!(store.put_secret(other.id + 100, &first, NOW).await, Err(StoreError::NotFound { .. })));
}

/// The repository's secrets by name: (name, ciphertext, updated).
async fn check(store: &Store, repo_id: i64, expected: &[(&str, &[u8], i64)]) {
    let secrets = store.list_secrets(repo_id).await.unwrap();
    let found: Vec<(&str, &[u8], i64)> =
        secrets.iter().map(|secret| (secret.name.as_str(), secret.ciphertext.as_slice(), secret.updated)).collect();
    assert_eq!(found, expected);
}
