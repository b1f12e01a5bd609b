//! Agents: registered by name, so a restarting agent keeps its id.

use std::collections::BTreeMap;

use store::{NewAgent, Store, StoreError};

use crate::fixtures::NOW;

store_tests!(agents_register_by_name);

async fn agents_register_by_name(store: Store) {
    let mut new = NewAgent {
        name: "builder-1".into(),
        labels: BTreeMap::from([("arch".into(), "amd64".into())]),
        capacity: 2,
        version: "1.0.0".into(),
    };
    let first = store.register_agent(&new, "hash-1", NOW).await.unwrap();
    assert_eq!((first.labels.clone(), first.capacity, first.last_seen, first.created), (new.labels.clone(), 2, NOW, NOW));

    // The same agent restarting with other labels, capacity and version.
    new.labels = BTreeMap::from([("arch".into(), "arm64".into()), ("gpu".into(), "yes".into())]);
    new.capacity = 8;
    new.version = "1.1.0".into();
    let again = store.register_agent(&new, "hash-2", NOW + 100).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(
        (again.labels.clone(), again.capacity, again.version.as_str(), again.last_seen, again.created),
        (new.labels.clone(), 8, "1.1.0", NOW + 100, NOW)
    );
    assert_eq!(store.agent_by_id(first.id).await.unwrap(), Some(again.clone()));

    store.touch_agent(first.id, NOW + 200).await.unwrap();
    assert_eq!(store.agent_by_id(first.id).await.unwrap().unwrap().last_seen, NOW + 200);
    assert!(matches!(store.touch_agent(first.id + 100, NOW).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.agent_by_id(first.id + 100).await.unwrap(), None);

    let other = store.register_agent(&NewAgent { name: "alpha".into(), ..new.clone() }, "hash-3", NOW).await.unwrap();
    assert_ne!(other.id, first.id);
    let names: Vec<String> = store.list_agents().await.unwrap().into_iter().map(|agent| agent.name).collect();
    assert_eq!(names, ["alpha", "builder-1"]);
}
