//! Triggers: webhook redeliveries recognised, polled refs remembered, crons due and advanced
//! once.

use std::collections::BTreeMap;

use store::{NewCron, Store, StoreError};

use crate::fixtures::{NOW, repo};

store_tests!(
    redeliveries_are_recognised,
    remote_approvals_follow_the_last_admin_change,
    polled_refs_are_remembered,
    crons_fire_once_when_due,
    concurrent_advances_move_a_cron_once
);

async fn redeliveries_are_recognised(store: Store) {
    let web = repo(&store, "acme/web").await;
    let api = repo(&store, "acme/api").await;
    let keys = |keys: &[&str]| keys.iter().map(ToString::to_string).collect::<Vec<_>>();
    // (repository, delivery keys, is new); every claim is completed at once.
    for (repo_id, delivery, new) in [
        (web.id, keys(&["d-1", "body-1"]), true),
        (web.id, keys(&["d-1", "body-1"]), false),
        (web.id, keys(&["d-2", "body-1"]), false),
        (web.id, keys(&["d-2", "body-2"]), true),
        (web.id, keys(&["body-3"]), true),
        (web.id, keys(&["body-3"]), false),
        (api.id, keys(&["d-1", "body-1"]), true),
        (api.id, keys(&["d-1"]), false),
    ] {
        assert_eq!(store.claim_delivery(repo_id, &delivery, NOW, NOW - 1000).await.unwrap(), new, "{delivery:?} to repository {repo_id}");
        if new {
            store.complete_delivery(repo_id, &delivery, NOW).await.unwrap();
        }
    }
    assert!(!store.claim_delivery(web.id, &keys(&["d-9", "body-1"]), NOW, NOW - 1000).await.unwrap());
    assert!(store.claim_delivery(web.id, &keys(&["d-9"]), NOW, NOW - 1000).await.unwrap(), "a refused claim leaves no key behind");
    assert!(matches!(store.claim_delivery(api.id + 100, &keys(&["d-1"]), NOW, NOW).await, Err(StoreError::NotFound { .. })));

    // A claim given up (the build did not start) is taken again; one still being worked on is
    // not, until it is stale.
    assert!(store.claim_delivery(web.id, &keys(&["d-4"]), NOW, NOW - 1000).await.unwrap());
    assert!(!store.claim_delivery(web.id, &keys(&["d-4"]), NOW + 1, NOW - 1000).await.unwrap(), "in progress");
    store.release_delivery(web.id, &keys(&["d-4"])).await.unwrap();
    assert!(store.claim_delivery(web.id, &keys(&["d-4"]), NOW + 2, NOW - 1000).await.unwrap(), "given up");
    assert!(store.claim_delivery(web.id, &keys(&["d-4"]), NOW + 5000, NOW + 3).await.unwrap(), "stale");
    store.complete_delivery(web.id, &keys(&["d-4"]), NOW + 5000).await.unwrap();
    assert!(!store.claim_delivery(web.id, &keys(&["d-4"]), NOW + 9000, NOW + 8000).await.unwrap(), "completed is never stale");
    store.release_delivery(web.id, &keys(&["d-4"])).await.unwrap();
    assert!(!store.claim_delivery(web.id, &keys(&["d-4"]), NOW + 9000, NOW + 8000).await.unwrap(), "completed is never given up");

    assert!(store.claim_delivery(web.id, &keys(&["d-3"]), NOW + 10, NOW).await.unwrap());
    assert!(store.forget_deliveries_before(NOW + 10).await.unwrap() >= 3);
    assert!(store.claim_delivery(web.id, &keys(&["d-1"]), NOW + 20, NOW).await.unwrap(), "a forgotten delivery is new again");
    assert!(!store.claim_delivery(web.id, &keys(&["d-3"]), NOW + 20, NOW).await.unwrap());
}

async fn remote_approvals_follow_the_last_admin_change(store: Store) {
    let web = repo(&store, "acme/web").await;
    assert_eq!(store.approved_remote(web.id).await.unwrap(), None);
    store.approve_remote(web.id, "file:///srv/web.git", "root", NOW).await.unwrap();
    store.approve_remote(web.id, "file:///srv/web2.git", "root", NOW + 1).await.unwrap();
    assert_eq!(store.approved_remote(web.id).await.unwrap().as_deref(), Some("file:///srv/web2.git"));
    store.forget_remote_approval(web.id).await.unwrap();
    assert_eq!(store.approved_remote(web.id).await.unwrap(), None);
    assert!(matches!(store.approve_remote(web.id + 100, "x", "root", NOW).await, Err(StoreError::NotFound { .. })));
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
