//! Triggers: webhook redeliveries recognised, polled refs remembered, crons due and advanced
//! once.

use std::collections::BTreeMap;

use store::{NewCron, Store, StoreError};

use crate::fixtures::{NOW, repo};

store_tests!(redeliveries_are_recognised, polled_refs_are_remembered, crons_fire_once_when_due, concurrent_advances_move_a_cron_once);

async fn redeliveries_are_recognised(store: Store) {
    let web = repo(&store, "acme/web").await;
    let api = repo(&store, "acme/api").await;
    // (repository, delivery id, is new)
    for (repo_id, delivery, new) in
        [(web.id, "d-1", true), (web.id, "d-1", false), (web.id, "d-2", true), (api.id, "d-1", true), (api.id, "d-1", false)]
    {
        assert_eq!(store.record_delivery(repo_id, delivery, NOW).await.unwrap(), new, "{delivery} to repository {repo_id}");
    }
    assert!(matches!(store.record_delivery(api.id + 100, "d-1", NOW).await, Err(StoreError::NotFound { .. })));

    store.record_delivery(web.id, "d-3", NOW + 10).await.unwrap();
    assert_eq!(store.forget_deliveries_before(NOW + 10).await.unwrap(), 3);
    assert!(store.record_delivery(web.id, "d-1", NOW + 20).await.unwrap(), "a forgotten delivery is new again");
    assert!(!store.record_delivery(web.id, "d-3", NOW + 20).await.unwrap());
}

async fn polled_refs_are_remembered(store: Store) {
    let web = repo(&store, "acme/web").await;
    assert_eq!(store.polled_refs(web.id).await.unwrap(), None);
    let first = BTreeMap::from([("refs/heads/main".to_owned(), "aaa".to_owned()), ("refs/tags/v1".to_owned(), "bbb".to_owned())]);
    store.set_polled_refs(web.id, &first, NOW).await.unwrap();
    assert_eq!(store.polled_refs(web.id).await.unwrap(), Some(first));
    let second = BTreeMap::from([("refs/heads/main".to_owned(), "ccc".to_owned())]);
    store.set_polled_refs(web.id, &second, NOW + 1).await.unwrap();
    assert_eq!(store.polled_refs(web.id).await.unwrap(), Some(second));
    let empty = BTreeMap::new();
    store.set_polled_refs(web.id, &empty, NOW + 2).await.unwrap();
    assert_eq!(store.polled_refs(web.id).await.unwrap(), Some(empty));
}

fn cron(repo_id: i64, name: &str, next: i64) -> NewCron {
    NewCron { repo_id, name: name.into(), schedule: "0 3 * * *".into(), branch: "main".into(), next }
}

async fn crons_fire_once_when_due(store: Store) {
    let web = repo(&store, "acme/web").await;
    store.put_cron(&cron(web.id, "nightly", NOW + 100), NOW).await.unwrap();
    store.put_cron(&cron(web.id, "hourly", NOW + 50), NOW).await.unwrap();
    let names: Vec<String> = store.list_crons(web.id).await.unwrap().into_iter().map(|cron| cron.name).collect();
    assert_eq!(names, ["hourly", "nightly"]);

    // (now, the names due)
    for (now, due) in [(NOW, vec![]), (NOW + 50, vec!["hourly"]), (NOW + 100, vec!["hourly", "nightly"])] {
        let found: Vec<String> = store.due_crons(now).await.unwrap().into_iter().map(|cron| cron.name).collect();
        assert_eq!(found, due, "at {now}");
    }

    let hourly = store.due_crons(NOW + 50).await.unwrap().remove(0);
    assert!(store.advance_cron(hourly.id, NOW + 50, NOW + 3_600_050).await.unwrap());
    assert!(!store.advance_cron(hourly.id, NOW + 50, NOW + 3_600_050).await.unwrap(), "already moved on");
    assert!(store.due_crons(NOW + 50).await.unwrap().is_empty());

    // Replacing by name keeps the id and creation time.
    let mut replaced = cron(web.id, "hourly", NOW + 7);
    replaced.schedule = "@hourly".into();
    replaced.branch = "develop".into();
    store.put_cron(&replaced, NOW + 1_000).await.unwrap();
    let stored = store.list_crons(web.id).await.unwrap().remove(0);
    assert_eq!(
        (stored.id, stored.schedule.as_str(), stored.branch.as_str(), stored.next, stored.created),
        (hourly.id, "@hourly", "develop", NOW + 7, NOW)
    );

    assert!(store.delete_cron(web.id, "hourly").await.unwrap());
    assert!(!store.delete_cron(web.id, "hourly").await.unwrap());
    assert!(matches!(store.put_cron(&cron(web.id + 100, "x", NOW), NOW).await, Err(StoreError::NotFound { .. })));
}

async fn concurrent_advances_move_a_cron_once(store: Store) {
    let web = repo(&store, "acme/web").await;
    store.put_cron(&cron(web.id, "nightly", NOW), NOW).await.unwrap();
    let id = store.list_crons(web.id).await.unwrap()[0].id;
    for round in 0..10 {
        let previous = NOW + round;
        // Two servers saw it due and both try to move it on.
        let advances: Vec<_> = (0..2)
            .map(|server| {
                let store = store.clone();
                tokio::spawn(async move { store.advance_cron(id, previous, previous + 1 + server * 1_000).await.unwrap() })
            })
            .collect();
        let mut moved = 0;
        for advance in advances {
            moved += i32::from(advance.await.unwrap());
        }
        assert_eq!(moved, 1, "round {round}");
        // Put it where the next round expects it.
        store.put_cron(&cron(web.id, "nightly", previous + 1), NOW).await.unwrap();
    }
}
