//! Notifiers: per repository, with the states they are sent for.

use proto::State;
use store::{Store, StoreError};

use crate::fixtures::repo;

store_tests!(notifiers_belong_to_their_repository);

async fn notifiers_belong_to_their_repository(store: Store) {
    let web = repo(&store, "acme/web").await;
    let api = repo(&store, "acme/api").await;
    let chat = store.create_notifier(web.id, "slack", "https://hooks.example.com/chat", &[State::Failure, State::Error]).await.unwrap();
    let hook = store.create_notifier(web.id, "webhook", "https://example.com/hook", &State::ALL).await.unwrap();
    let quiet = store.create_notifier(api.id, "webhook", "https://example.com/api", &[]).await.unwrap();

    assert_eq!(store.list_notifiers(web.id).await.unwrap(), [chat.clone(), hook.clone()]);
    assert_eq!(store.list_notifiers(api.id).await.unwrap(), std::slice::from_ref(&quiet));
    assert_eq!(chat.states, [State::Failure, State::Error]);

    assert!(!store.delete_notifier(web.id, quiet.id).await.unwrap(), "another repository's notifier stays");
    assert!(store.delete_notifier(web.id, chat.id).await.unwrap());
    assert!(!store.delete_notifier(web.id, chat.id).await.unwrap());
    assert_eq!(store.list_notifiers(web.id).await.unwrap(), [hook]);
    assert!(matches!(store.create_notifier(api.id + 100, "webhook", "https://x", &[]).await, Err(StoreError::NotFound { .. })));
}
