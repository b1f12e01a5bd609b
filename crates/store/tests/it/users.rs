//! Users: unique logins; tokens found by hash until they expire.

use store::{Store, StoreError, TokenKind};

use crate::fixtures::NOW;

store_tests!(logins_are_unique, tokens_find_their_user_until_they_expire);

async fn logins_are_unique(store: Store) {
    let alice = store.create_user("alice", "$argon2id$alice", true, NOW).await.unwrap();
    let bob = store.create_user("bob", "$argon2id$bob", false, NOW + 1).await.unwrap();

    assert_eq!(store.user_by_login("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user_by_id(bob.id).await.unwrap(), Some(bob.clone()));
    assert!(alice.admin && !bob.admin);
    assert_eq!(store.user_by_login("carol").await.unwrap(), None);
    assert_eq!(store.user_by_id(bob.id + 100).await.unwrap(), None);

    match store.create_user("alice", "$argon2id$other", false, NOW).await {
        Err(StoreError::Conflict { what }) => assert!(what.contains("alice"), "{what}"),
        other => panic!("a second alice must be a conflict, got {other:?}"),
    }
    // By login, whatever the order of creation.
    store.create_user("aaron", "$argon2id$aaron", false, NOW).await.unwrap();
    let logins: Vec<String> = store.list_users().await.unwrap().into_iter().map(|user| user.login).collect();
    assert_eq!(logins, ["aaron", "alice", "bob"]);
}

async fn tokens_find_their_user_until_they_expire(store: Store) {
    let alice = store.create_user("alice", "hash", false, NOW).await.unwrap();
    let api = store.create_token(alice.id, "laptop", "api-hash", TokenKind::Api, None, NOW).await.unwrap();
    let session = store.create_token(alice.id, "browser", "session-hash", TokenKind::Session, Some(NOW + 1_000), NOW).await.unwrap();

    // (token hash, at, the token found)
    let cases: [(&str, i64, Option<i64>); 6] = [
        ("api-hash", NOW, Some(api)),
        ("api-hash", i64::MAX, Some(api)),
        ("session-hash", NOW + 999, Some(session)),
        ("session-hash", NOW + 1_000, None),
        ("session-hash", NOW + 5_000, None),
        ("unknown-hash", NOW, None),
    ];
    for (hash, at, expected) in cases {
        check_token(&store, hash, at, expected, "alice").await;
    }

    let (_, token) = store.user_by_token_hash("session-hash", NOW).await.unwrap().unwrap();
    assert_eq!((token.name.as_str(), token.kind, token.expires, token.created), ("browser", TokenKind::Session, Some(NOW + 1_000), NOW));
    assert!(matches!(store.create_token(alice.id, "again", "api-hash", TokenKind::Api, None, NOW).await, Err(StoreError::Conflict { .. })));
    assert!(matches!(
        store.create_token(alice.id + 100, "nobody's", "x", TokenKind::Api, None, NOW).await,
        Err(StoreError::NotFound { .. })
    ));

    let names: Vec<String> = store.list_tokens(alice.id).await.unwrap().into_iter().map(|token| token.name).collect();
    assert_eq!(names, ["laptop", "browser"]);

    assert_eq!(store.delete_expired_tokens(NOW + 1_000).await.unwrap(), 1);
    store.delete_token(api).await.unwrap();
    check_token(&store, "api-hash", NOW, None, "alice").await;
    assert!(store.list_tokens(alice.id).await.unwrap().is_empty());
}

async fn check_token(store: &Store, hash: &str, at: i64, expected: Option<i64>, login: &str) {
    let found = store.user_by_token_hash(hash, at).await.unwrap();
    match (found, expected) {
        (None, None) => {}
        (Some((user, token)), Some(expected)) => {
            assert_eq!((user.login.as_str(), token.id, token.user_id), (login, expected, user.id), "token {hash} at {at}");
        }
        (found, expected) => panic!("token {hash} at {at}: found {found:?}, expected {expected:?}"),
    }
}
