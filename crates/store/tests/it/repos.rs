//! Repositories: unique names, every field written back, members, and a deletion that leaves
//! nothing of the repository behind.

use std::collections::BTreeMap;

use proto::{ForgeKind, LostPolicy, State, Trust};
use store::{NewCron, NewSecret, Store, StoreError};

use crate::fixtures::{NOW, lines, new_build, new_repo, repo, workflow};

store_tests!(repositories_round_trip, names_are_unique, members_have_one_role, deleting_a_repository_removes_all_it_owns);

async fn repositories_round_trip(store: Store) {
    let mut wanted = new_repo("acme/web");
    wanted.settings.poll_interval_seconds = Some(300);
    wanted.settings.forge_token = Some("forge token".into());
    wanted.settings.clone_username = Some("bot".into());
    wanted.settings.clone_password = Some("bot password".into());
    let created = store.create_repo(&wanted, NOW).await.unwrap();
    assert_eq!(store.repo_by_id(created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.repo_by_name("acme/web").await.unwrap(), Some(created.clone()));
    assert_eq!(created.settings.poll_interval_seconds, Some(300));

    let mut changed = created.clone();
    changed.full_name = "acme/website".into();
    changed.settings.clone_url = "ssh://git@example.com/acme/website.git".into();
    changed.settings.forge = ForgeKind::Github;
    changed.settings.default_branch = "trunk".into();
    changed.settings.config_path = ".gantry.yml".into();
    changed.settings.webhook_secret = "new secret".into();
    changed.settings.trust = Trust { privileged: true, volumes: false, network: true };
    changed.settings.timeout_minutes = u32::MAX;
    changed.settings.cancel_previous = true;
    changed.settings.poll_interval_seconds = None;
    changed.settings.lost_policy = LostPolicy::Fail;
    changed.settings.forge_token = None;
    changed.settings.clone_username = None;
    changed.settings.clone_password = None;
    changed.created = 1; // not written
    store.update_repo(&changed).await.unwrap();
    changed.created = NOW;
    assert_eq!(store.repo_by_id(created.id).await.unwrap(), Some(changed.clone()));
    assert_eq!(store.repo_by_name("acme/web").await.unwrap(), None);

    repo(&store, "acme/api").await;
    let names: Vec<String> = store.list_repos().await.unwrap().into_iter().map(|repo| repo.full_name).collect();
    assert_eq!(names, ["acme/api", "acme/website"]);

    changed.id += 100;
    assert!(matches!(store.update_repo(&changed).await, Err(StoreError::NotFound { .. })));
}

async fn names_are_unique(store: Store) {
    repo(&store, "acme/web").await;
    let api = repo(&store, "acme/api").await;
    match store.create_repo(&new_repo("acme/web"), NOW).await {
        Err(StoreError::Conflict { what }) => assert!(what.contains("acme/web"), "{what}"),
        other => panic!("a second acme/web must be a conflict, got {other:?}"),
    }
    let mut renamed = api.clone();
    renamed.full_name = "acme/web".into();
    assert!(matches!(store.update_repo(&renamed).await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.repo_by_id(api.id).await.unwrap(), Some(api));
}

async fn members_have_one_role(store: Store) {
    let web = repo(&store, "acme/web").await;
    let bob = store.create_user("bob", "hash", false, NOW).await.unwrap();
    let alice = store.create_user("alice", "hash", false, NOW).await.unwrap();

    store.set_member(web.id, bob.id, "read").await.unwrap();
    store.set_member(web.id, alice.id, "admin").await.unwrap();
    store.set_member(web.id, bob.id, "write").await.unwrap();
    assert_eq!(store.member_role(web.id, bob.id).await.unwrap().as_deref(), Some("write"));
    assert_eq!(
        store.list_members(web.id).await.unwrap(),
        [("alice".to_owned(), "admin".to_owned()), ("bob".to_owned(), "write".to_owned())]
    );

    store.remove_member(web.id, bob.id).await.unwrap();
    assert_eq!(store.member_role(web.id, bob.id).await.unwrap(), None);
    assert!(matches!(store.set_member(web.id + 100, bob.id, "read").await, Err(StoreError::NotFound { .. })));
}

async fn deleting_a_repository_removes_all_it_owns(store: Store) {
    let web = repo(&store, "acme/web").await;
    let api = repo(&store, "acme/api").await;
    let alice = store.create_user("alice", "hash", false, NOW).await.unwrap();
    let mut owned = Vec::new();
    for repo in [&web, &api] {
        store.set_member(repo.id, alice.id, "admin").await.unwrap();
        let secret = NewSecret { name: "token".into(), ciphertext: vec![1, 2, 3], events: vec![], images: vec![] };
        store.put_secret(repo.id, &secret, NOW).await.unwrap();
        let build = store.create_build(&new_build(repo.id, "main"), &[workflow("ci", &["build", "test"])], NOW).await.unwrap();
        let steps = store.steps_of_workflow(store.workflows_of_build(build.id).await.unwrap()[0].id).await.unwrap();
        store.logs().append(steps[0].id, 0, &lines(0, 3)).await.unwrap();
        store.logs().finish(steps[0].id).await.unwrap();
        store.logs().append(steps[1].id, 0, &lines(0, 2)).await.unwrap();
        let cron = NewCron { repo_id: repo.id, name: "nightly".into(), schedule: "@daily".into(), branch: "main".into(), next: NOW };
        store.put_cron(&cron, NOW).await.unwrap();
        store
            .create_notifier(
                repo.id,
                &store::NewNotifier {
                    kind: "webhook".to_owned(),
                    url: "https://hooks.example.com".to_owned(),
                    states: vec![State::Failure],
                    events: vec!["build.finished".to_owned()],
                    secret_ciphertext: None,
                },
            )
            .await
            .unwrap();
        assert!(store.record_delivery(repo.id, "delivery-1", NOW).await.unwrap());
        let artifact = store::NewArtifact {
            build_id: build.id,
            workflow_id: store.workflows_of_build(build.id).await.unwrap()[0].id,
            step: "build".into(),
            repository: "127.0.0.1:5000/acme/app".into(),
            digest: "sha256:1234".into(),
            tags: vec!["latest".into()],
            size: None,
            provenance: None,
            provenance_digest: None,
        };
        store.record_artifact(&artifact, NOW).await.unwrap();
        store.set_polled_refs(repo.id, &BTreeMap::from([("refs/heads/main".into(), "abc".into())]), NOW).await.unwrap();
        owned.push((build, steps));
    }

    store.delete_repo(web.id).await.unwrap();

    let (build, steps) = &owned[0];
    assert_eq!(store.repo_by_id(web.id).await.unwrap(), None);
    assert_eq!(store.build_by_id(build.id).await.unwrap(), None);
    assert!(store.workflows_of_build(build.id).await.unwrap().is_empty());
    for step in steps {
        assert_eq!(store.step_by_id(step.id).await.unwrap(), None);
        assert!(!store.logs().path_of(step.id).exists() && !store.logs().compressed_path_of(step.id).exists(), "log of step {}", step.id);
    }
    assert!(store.list_secrets(web.id).await.unwrap().is_empty());
    assert!(store.list_crons(web.id).await.unwrap().is_empty());
    assert!(store.due_crons(NOW).await.unwrap().iter().all(|cron| cron.repo_id != web.id));
    assert!(store.list_notifiers(web.id).await.unwrap().is_empty());
    assert!(store.list_members(web.id).await.unwrap().is_empty());
    assert_eq!(store.polled_refs(web.id).await.unwrap(), None);
    assert!(store.artifacts_by_digest("sha256:1234").await.unwrap().iter().all(|artifact| artifact.repo_id != web.id));

    // The other repository keeps everything; the user stays; the name is free again.
    let (build, steps) = &owned[1];
    assert!(store.build_by_id(build.id).await.unwrap().is_some());
    assert_eq!(store.logs().read(steps[0].id, 0, 10).await.unwrap().len(), 3);
    assert_eq!(store.logs().read(steps[1].id, 0, 10).await.unwrap().len(), 2);
    assert_eq!(store.list_secrets(api.id).await.unwrap().len(), 1);
    assert_eq!(store.artifacts_of_build(build.id).await.unwrap().len(), 1);
    assert_eq!(store.list_members(api.id).await.unwrap().len(), 1);
    assert!(store.user_by_id(alice.id).await.unwrap().is_some());
    assert!(!store.record_delivery(api.id, "delivery-1", NOW).await.unwrap());
    let again = repo(&store, "acme/web").await;
    assert_eq!(store.create_build(&new_build(again.id, "main"), &[], NOW).await.unwrap().number, 1);

    // Deleting what is not there does nothing.
    store.delete_repo(web.id).await.unwrap();
}
