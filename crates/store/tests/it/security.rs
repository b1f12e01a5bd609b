//! What the store does against an attacker and a race: repository credentials sealed at rest,
//! a database file only its owner reads, final states that exactly one finisher reaches, fork
//! builds that wait for approval, agents known by their own token, and re-queues that nobody
//! sees half-way.

use std::collections::BTreeMap;

use proto::State;
use sqlx::{Connection, Row};
use store::{Database, NewAgent, SecretBox, Store, StoreError};

use crate::fixtures::{NOW, new_build, new_repo, repo, workflow};
use crate::harness::Location;

location_tests!(repository_credentials_are_sealed_at_rest, credentials_stored_in_plain_text_are_sealed_when_the_store_opens);
store_tests!(
    of_concurrent_finishers_of_a_build_exactly_one_wins,
    of_concurrent_finishers_of_a_workflow_exactly_one_wins,
    approving_queues_a_blocked_build_and_its_workflows_once,
    agents_are_known_by_their_own_token,
    a_workflow_of_a_lost_agent_is_requeued_in_one_transition,
    users_delete_only_their_own_tokens,
);

/// The text of the first column of every row `sql` selects, read around the store.
async fn raw_texts(location: &Location, sql: &str) -> Vec<String> {
    match &location.database {
        Database::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut connection = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut connection).await.unwrap();
            rows.iter().map(|row| row.get::<String, _>(0)).collect()
        }
        Database::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut connection).await.unwrap();
            rows.iter().map(|row| row.get::<String, _>(0)).collect()
        }
    }
}

async fn raw_execute(location: &Location, sql: &str) {
    match &location.database {
        Database::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut connection = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut connection).await.unwrap();
        }
        Database::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut connection).await.unwrap();
        }
    }
}

const CREDENTIALS_SQL: &str =
    "SELECT webhook_secret FROM repos UNION ALL SELECT forge_token FROM repos UNION ALL SELECT clone_password FROM repos";

async fn repository_credentials_are_sealed_at_rest(location: Location) {
    let store = location.open().await;
    let mut new = new_repo("acme/web");
    new.settings.webhook_secret = "hook-secret-value".into();
    new.settings.forge_token = Some("ghp_forge_token_value".into());
    new.settings.clone_password = Some("clone-password-value".into());
    let created = store.create_repo(&new, NOW).await.unwrap();
    assert_eq!(
        (created.settings.webhook_secret.as_str(), created.settings.forge_token.as_deref(), created.settings.clone_password.as_deref()),
        ("hook-secret-value", Some("ghp_forge_token_value"), Some("clone-password-value"))
    );
    let mut changed = store.repo_by_name("acme/web").await.unwrap().unwrap();
    assert_eq!(changed, created, "credentials read back as written");
    changed.settings.forge_token = Some("ghp_second_token_value".into());
    store.update_repo(&changed).await.unwrap();
    assert_eq!(store.repo_by_id(created.id).await.unwrap().unwrap().settings.forge_token.as_deref(), Some("ghp_second_token_value"));

    let stored = raw_texts(&location, CREDENTIALS_SQL).await;
    assert_eq!(stored.len(), 3);
    for text in &stored {
        assert!(text.starts_with("sealed:v1:"), "{text}");
        for plain in ["hook-secret-value", "ghp_forge_token_value", "ghp_second_token_value", "clone-password-value"] {
            assert!(!text.contains(plain), "{plain} is stored in plain text");
        }
    }

    // A sealed value moved to another column (or repository) does not open.
    raw_execute(&location, "UPDATE repos SET clone_password = forge_token").await;
    assert!(matches!(store.repo_by_id(created.id).await, Err(StoreError::Corrupt(message)) if message.contains("clone_password")));
    store.close().await;

    // Another key opens nothing: the error says what to check, not what the value was.
    let other_key = Store::open(&location.database, &location.data_dir, SecretBox::from_key([1; 32])).await.unwrap();
    match other_key.repo_by_name("acme/web").await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("GANTRY_SECRET_KEY"), "{message}"),
        other => panic!("a repository read with another key: {other:?}"),
    }
    other_key.close().await;

    if let Database::Sqlite(path) = &location.database {
        use std::os::unix::fs::PermissionsExt as _;
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(metadata) = std::fs::metadata(&file) {
                assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{}", file.display());
            }
        }
    }
}

async fn credentials_stored_in_plain_text_are_sealed_when_the_store_opens(location: Location) {
    let store = location.open().await;
    let created = repo(&store, "acme/web").await;
    store.close().await;
    // As an older Gantry wrote them.
    raw_execute(
        &location,
        &format!(
            "UPDATE repos SET webhook_secret = 'old-hook-secret', forge_token = 'old-forge-token', clone_password = NULL WHERE id = {}",
            created.id
        ),
    )
    .await;

    let store = location.open().await;
    let reopened = store.repo_by_id(created.id).await.unwrap().unwrap();
    assert_eq!(
        (reopened.settings.webhook_secret.as_str(), reopened.settings.forge_token.as_deref()),
        ("old-hook-secret", Some("old-forge-token"))
    );
    let stored = raw_texts(&location, "SELECT webhook_secret FROM repos UNION ALL SELECT forge_token FROM repos").await;
    assert!(stored.iter().all(|text| text.starts_with("sealed:v1:") && !text.contains("old-")), "{stored:?}");
    store.close().await;
}

async fn of_concurrent_finishers_of_a_build_exactly_one_wins(store: Store) {
    let web = repo(&store, "acme/web").await;
    for round in 0..5 {
        let build = store.create_build(&new_build(web.id, "main"), &[], NOW).await.unwrap();
        store.set_build_state(build.id, State::Running, None, NOW).await.unwrap();
        let finishers: Vec<_> = [State::Success, State::Failure, State::Killed, State::Error, State::Success, State::Failure]
            .into_iter()
            .map(|state| {
                let store = store.clone();
                tokio::spawn(async move { (state, store.set_build_state(build.id, state, None, NOW + 1).await.unwrap()) })
            })
            .collect();
        let mut winners = Vec::new();
        for finisher in finishers {
            let (state, won) = finisher.await.unwrap();
            if won {
                winners.push(state);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(store.build_by_id(build.id).await.unwrap().unwrap().state, winners[0]);
    }
}

async fn of_concurrent_finishers_of_a_workflow_exactly_one_wins(store: Store) {
    let web = repo(&store, "acme/web").await;
    let build = store.create_build(&new_build(web.id, "main"), &[workflow("ci", &["test"])], NOW).await.unwrap();
    let workflow_id = store.workflows_of_build(build.id).await.unwrap()[0].id;
    let finishers: Vec<_> = [State::Success, State::Failure, State::Success, State::Killed]
        .into_iter()
        .map(|state| {
            let store = store.clone();
            tokio::spawn(async move { store.set_workflow_state(workflow_id, state, None, NOW + 1).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for finisher in finishers {
        wins += usize::from(finisher.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(!store.set_workflow_state(workflow_id, State::Pending, Some("re-queued"), NOW + 2).await.unwrap(), "finished is final");
    assert!(matches!(store.set_workflow_state(workflow_id + 100, State::Success, None, NOW).await, Err(StoreError::NotFound { .. })));
}

async fn approving_queues_a_blocked_build_and_its_workflows_once(store: Store) {
    let web = repo(&store, "acme/web").await;
    let mut new = new_build(web.id, "main");
    new.state = State::Blocked;
    new.from_fork = true;
    let mut blocked = workflow("ci", &["test"]);
    blocked.state = State::Blocked;
    let mut skipped = workflow("docs", &["build"]);
    skipped.state = State::Skipped;
    let build = store.create_build(&new, &[blocked, skipped], NOW).await.unwrap();
    assert!(store.pending_workflows(10).await.unwrap().is_empty(), "a blocked workflow is not in the queue");

    assert!(store.approve_build(build.id, "user:maintainer", NOW + 5).await.unwrap());
    let approved = store.build_by_id(build.id).await.unwrap().unwrap();
    assert_eq!(
        (approved.state, approved.approved_by.as_deref(), approved.approved_at),
        (State::Pending, Some("user:maintainer"), Some(NOW + 5))
    );
    let states: Vec<State> = store.workflows_of_build(build.id).await.unwrap().iter().map(|workflow| workflow.state).collect();
    assert_eq!(states, [State::Pending, State::Skipped]);
    assert_eq!(store.pending_workflows(10).await.unwrap().len(), 1);

    assert!(!store.approve_build(build.id, "user:someone-else", NOW + 6).await.unwrap(), "an approved build is not approved again");
    assert_eq!(store.build_by_id(build.id).await.unwrap().unwrap().approved_by.as_deref(), Some("user:maintainer"));
    let plain = store.create_build(&new_build(web.id, "main"), &[], NOW).await.unwrap();
    assert!(!store.approve_build(plain.id, "user:maintainer", NOW).await.unwrap(), "a build that never waited");
}

async fn agents_are_known_by_their_own_token(store: Store) {
    let new = NewAgent { name: "builder".into(), labels: BTreeMap::new(), capacity: 1, version: "1".into() };
    let first = store.register_agent(&new, "first-token-hash", NOW).await.unwrap();
    assert_eq!(store.agent_by_token_hash("first-token-hash").await.unwrap().map(|agent| agent.id), Some(first.id));
    assert!(store.agent_token_matches("builder", "first-token-hash").await.unwrap());
    assert!(!store.agent_token_matches("other", "first-token-hash").await.unwrap());
    assert_eq!(store.agent_by_name("builder").await.unwrap().map(|agent| agent.id), Some(first.id));

    // Registering again replaces the token: the old one stops working.
    let again = store.register_agent(&new, "second-token-hash", NOW + 1).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(store.agent_by_token_hash("first-token-hash").await.unwrap(), None);
    assert_eq!(store.agent_by_token_hash("second-token-hash").await.unwrap().map(|agent| agent.id), Some(first.id));

    // A removed agent's workflows keep no agent, and its token is gone.
    let web = repo(&store, "acme/web").await;
    let build = store.create_build(&new_build(web.id, "main"), &[workflow("ci", &["test"])], NOW).await.unwrap();
    let held = store.workflows_of_build(build.id).await.unwrap().remove(0);
    assert!(store.claim_workflow(held.id, first.id, NOW).await.unwrap());
    assert!(store.delete_agent(first.id).await.unwrap());
    assert!(!store.delete_agent(first.id).await.unwrap());
    assert_eq!(store.agent_by_token_hash("second-token-hash").await.unwrap(), None);
    assert_eq!(store.workflow_by_id(held.id).await.unwrap().unwrap().agent_id, None);
}

async fn a_workflow_of_a_lost_agent_is_requeued_in_one_transition(store: Store) {
    let web = repo(&store, "acme/web").await;
    let new = NewAgent { name: "lost".into(), labels: BTreeMap::new(), capacity: 1, version: "1".into() };
    let lost = store.register_agent(&new, "lost-hash", NOW).await.unwrap();
    let other = store.register_agent(&NewAgent { name: "other".into(), ..new.clone() }, "other-hash", NOW).await.unwrap();
    let claimed_by_lost = async |name: &str| {
        let build = store.create_build(&new_build(web.id, "main"), &[workflow(name, &["step"])], NOW).await.unwrap();
        let held = store.workflows_of_build(build.id).await.unwrap().remove(0);
        assert!(store.claim_workflow(held.id, lost.id, NOW).await.unwrap());
        held
    };
    let running = claimed_by_lost("running").await;
    let cancelled = claimed_by_lost("cancelled").await;
    store.request_cancel(cancelled.build_id).await.unwrap();
    let reason = "re-queued: agent lost stopped answering 31s ago";

    assert!(!store.requeue_workflow_of_lost_agent(running.id, other.id, reason).await.unwrap(), "not that agent's");
    assert!(!store.requeue_workflow_of_lost_agent(cancelled.id, lost.id, reason).await.unwrap(), "a cancelled one is not re-queued");
    assert!(store.requeue_workflow_of_lost_agent(running.id, lost.id, reason).await.unwrap());
    let requeued = store.workflow_by_id(running.id).await.unwrap().unwrap();
    assert_eq!(
        (requeued.state, requeued.agent_id, requeued.started, requeued.reason.as_deref(), requeued.attempts),
        (State::Pending, None, None, Some(reason), 1)
    );
    assert!(!store.requeue_workflow_of_lost_agent(running.id, lost.id, reason).await.unwrap(), "once");
}

async fn users_delete_only_their_own_tokens(store: Store) {
    let alice = store.create_user("alice", "hash", false, NOW).await.unwrap();
    let bob = store.create_user("bob", "hash", false, NOW).await.unwrap();
    let alices = store.create_token(alice.id, "ci", "alice-hash", store::TokenKind::Api, None, NOW).await.unwrap();
    let bobs = store.create_token(bob.id, "session", "bob-hash", store::TokenKind::Session, Some(NOW + 10), NOW).await.unwrap();
    assert!(!store.delete_token_of(alice.id, bobs).await.unwrap(), "not alice's token");
    assert!(store.user_by_token_hash("bob-hash", NOW).await.unwrap().is_some());
    assert!(store.delete_token_of(alice.id, alices).await.unwrap());
    assert!(store.user_by_token_hash("alice-hash", NOW).await.unwrap().is_none());
    assert!(store.delete_token_by_hash("bob-hash").await.unwrap());
    assert!(!store.delete_token_by_hash("bob-hash").await.unwrap());
    assert!(store.list_tokens(bob.id).await.unwrap().is_empty());
}
