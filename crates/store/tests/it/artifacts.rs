//! Artifacts: what builds published, listed per build and found again by digest.

use store::{ArtifactChange, ArtifactRecord, NewArtifact, Store};

use crate::fixtures::{NOW, new_build, repo, workflow};

store_tests!(
    a_build_lists_what_its_steps_pushed,
    a_repeated_report_changes_nothing_and_a_new_push_replaces,
    a_digest_leads_back_to_every_build_that_pushed_it
);

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn pushed(build_id: i64, workflow_id: i64, step: &str, repository: &str, digest: &str) -> NewArtifact {
    NewArtifact {
        build_id,
        workflow_id,
        step: step.to_owned(),
        repository: repository.to_owned(),
        digest: digest.to_owned(),
        tags: vec!["latest".to_owned(), "1.2.0".to_owned()],
        size: Some(4096),
        provenance: Some(r#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_owned()),
        provenance_digest: Some(OTHER_DIGEST.to_owned()),
    }
}

fn recorded(change: ArtifactChange) -> ArtifactRecord {
    match change {
        ArtifactChange::Recorded(record) => record,
        ArtifactChange::Unchanged(record) => panic!("expected a new record, the store kept {record:?}"),
    }
}

/// A build with one workflow `release` of steps `image` and `docs`: (build id, workflow id).
async fn release_build(store: &Store, full_name: &str) -> (i64, i64, i64) {
    let repo = repo(store, full_name).await;
    let build = store.create_build(&new_build(repo.id, "main"), &[workflow("release", &["image", "docs"])], NOW).await.unwrap();
    let workflows = store.workflows_of_build(build.id).await.unwrap();
    (repo.id, build.id, workflows[0].id)
}

async fn a_build_lists_what_its_steps_pushed(store: Store) {
    let (repo_id, build, workflow) = release_build(&store, "acme/web").await;
    let app = recorded(store.record_artifact(&pushed(build, workflow, "image", "127.0.0.1:5000/acme/web", DIGEST), NOW).await.unwrap());
    let docs = NewArtifact {
        provenance: None,
        provenance_digest: None,
        size: None,
        ..pushed(build, workflow, "docs", "127.0.0.1:5000/acme/docs", OTHER_DIGEST)
    };
    let docs = recorded(store.record_artifact(&docs, NOW + 1).await.unwrap());

    assert_eq!(store.artifacts_of_build(build).await.unwrap(), [app.clone(), docs.clone()]);
    assert_eq!((app.repo_id, app.build_number, app.workflow.as_str(), app.step.as_str()), (repo_id, 1, "release", "image"));
    assert_eq!(app.tags, ["latest", "1.2.0"]);
    assert_eq!(app.size, Some(4096));
    assert!(app.has_provenance);
    assert!(!docs.has_provenance);
    assert_eq!(docs.size, None);

    let statement = store.artifact_provenance(build, app.id).await.unwrap();
    assert_eq!(statement.as_deref(), Some(r#"{"_type":"https://in-toto.io/Statement/v1"}"#));
    assert_eq!(store.artifact_provenance(build, docs.id).await.unwrap(), None, "no statement was stored");
    assert_eq!(store.artifact_provenance(build + 100, app.id).await.unwrap(), None, "an artifact is read through its own build");
}

async fn a_repeated_report_changes_nothing_and_a_new_push_replaces(store: Store) {
    let (_, build, workflow) = release_build(&store, "acme/web").await;
    let first = recorded(store.record_artifact(&pushed(build, workflow, "image", "127.0.0.1:5000/acme/web", DIGEST), NOW).await.unwrap());

    let again = store.record_artifact(&pushed(build, workflow, "image", "127.0.0.1:5000/acme/web", DIGEST), NOW + 5).await.unwrap();
    assert_eq!(again, ArtifactChange::Unchanged(first.clone()));

    let replaced =
        recorded(store.record_artifact(&pushed(build, workflow, "image", "127.0.0.1:5000/acme/web", OTHER_DIGEST), NOW + 9).await.unwrap());
    assert_eq!(replaced.id, first.id, "one row per workflow, step and repository");
    assert_eq!(replaced.digest, OTHER_DIGEST);
    assert_eq!(store.artifacts_of_build(build).await.unwrap(), [replaced]);
}

async fn a_digest_leads_back_to_every_build_that_pushed_it(store: Store) {
    let (_, first_build, first_workflow) = release_build(&store, "acme/web").await;
    let (_, second_build, second_workflow) = release_build(&store, "acme/copy").await;
    let first = recorded(
        store.record_artifact(&pushed(first_build, first_workflow, "image", "127.0.0.1:5000/acme/web", DIGEST), NOW).await.unwrap(),
    );
    let second = recorded(
        store.record_artifact(&pushed(second_build, second_workflow, "image", "127.0.0.1:5000/acme/web", DIGEST), NOW).await.unwrap(),
    );
    store.record_artifact(&pushed(second_build, second_workflow, "docs", "127.0.0.1:5000/acme/docs", OTHER_DIGEST), NOW).await.unwrap();

    assert_eq!(store.artifacts_by_digest(DIGEST).await.unwrap(), [second, first], "newest first");
    assert!(store.artifacts_by_digest("sha256:0000").await.unwrap().is_empty());
}
