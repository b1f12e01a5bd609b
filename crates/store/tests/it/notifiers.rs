//! Notifiers: per repository, with the states and events they are sent for, signed or not.

use proto::State;
use store::{NewNotifier, Store, StoreError};

use crate::fixtures::repo;

store_tests!(notifiers_belong_to_their_repository, a_delivery_webhook_keeps_its_events_and_sealed_secret);

fn notifier(kind: &str, url: &str, states: &[State]) -> NewNotifier {
    NewNotifier {
        kind: kind.to_owned(),
        url: url.to_owned(),
        states: states.to_vec(),
        events: vec!["build.finished".to_owned()],
        secret_ciphertext: None,
    }
}

async fn notifiers_belong_to_their_repository(store: Store) {
    let web = repo(&store, "acme/web").await;
    let api = repo(&store, "acme/api").await;
    let chat =
        store.create_notifier(web.id, &notifier("slack", "https://hooks.example.com/chat", &[State::Failure, State::Error])).await.unwrap();
    let hook = store.create_notifier(web.id, &notifier("webhook", "https://example.com/hook", &State::ALL)).await.unwrap();
    let quiet = store.create_notifier(api.id, &notifier("webhook", "https://example.com/api", &[])).await.unwrap();

    assert_eq!(store.list_notifiers(web.id).await.unwrap(), [chat.clone(), hook.clone()]);
    assert_eq!(store.list_notifiers(api.id).await.unwrap(), std::slice::from_ref(&quiet));
    assert_eq!(chat.states, [State::Failure, State::Error]);

    assert!(!store.delete_notifier(web.id, quiet.id).await.unwrap(), "another repository's notifier stays");
    assert!(store.delete_notifier(web.id, chat.id).await.unwrap());
    assert!(!store.delete_notifier(web.id, chat.id).await.unwrap());
    assert_eq!(store.list_notifiers(web.id).await.unwrap(), [hook]);
    assert!(matches!(store.create_notifier(api.id + 100, &notifier("webhook", "https://x", &[])).await, Err(StoreError::NotFound { .. })));
}

async fn a_delivery_webhook_keeps_its_events_and_sealed_secret(store: Store) {
    let web = repo(&store, "acme/web").await;
    let delivery = NewNotifier {
        events: vec!["image.published".to_owned()],
        secret_ciphertext: Some(vec![0, 1, 2, 255]),
        ..notifier("webhook", "https://deploy.example.com/hooks/gantry", &[])
    };
    let created = store.create_notifier(web.id, &delivery).await.unwrap();

    let listed = store.list_notifiers(web.id).await.unwrap();
    assert_eq!(listed, [created]);
    assert_eq!(listed[0].events, ["image.published"]);
    assert_eq!(listed[0].secret_ciphertext.as_deref(), Some(&[0, 1, 2, 255][..]));
}
