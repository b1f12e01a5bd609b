//! Build requests, decided without IO: what each forge's webhook events (the `forge` crate's
//! fixtures, signed and parsed as the server does), a polled ref, a cron schedule, a person and
//! a restart ask to build, or why they build nothing; and which requests a `[skip ci]` stops.

use forge::webhook::{self, HookEvent};
use hmac::{KeyInit as _, Mac as _};
use proto::ForgeKind;
use serde_json::Value;
use server::trigger::{BuildRequest, Ignored};

const SECRET: &str = "request-secret";

/// The fixture `path` of the `forge` crate, with `edit` applied (for cases the docs show no
/// example of).
fn payload(path: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let file = format!("{}/../forge/tests/data/webhooks/{path}", env!("CARGO_MANIFEST_DIR"));
    let mut payload: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("fixture")).expect("fixture JSON");
    edit(&mut payload);
    serde_json::to_vec(&payload).unwrap()
}

fn unchanged(_: &mut Value) {}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The event a delivery of `body` as `event_name` from `forge` carries, verified as the server
/// verifies it.
fn hook_event(forge: ForgeKind, event_name: &str, body: &[u8]) -> HookEvent {
    let headers: Vec<(String, String)> = match forge {
        ForgeKind::Gitea => vec![("x-gitea-event".into(), event_name.into()), ("x-gitea-signature".into(), hmac_hex(body))],
        ForgeKind::Gitlab => vec![("x-gitlab-event".into(), event_name.into()), ("x-gitlab-token".into(), SECRET.into())],
        ForgeKind::Github | ForgeKind::Generic => {
            vec![("x-github-event".into(), event_name.into()), ("x-hub-signature-256".into(), format!("sha256={}", hmac_hex(body)))]
        }
    };
    webhook::parse(forge, &headers, body, SECRET).unwrap_or_else(|error| panic!("refused: {error}")).event
}

/// What every webhook request shares.
fn hook() -> BuildRequest {
    BuildRequest { trigger: "webhook".into(), honour_skip_ci: true, ..BuildRequest::default() }
}

fn text(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn github_pull_request(action: &str, event: &str) -> BuildRequest {
    BuildRequest {
        event: event.into(),
        reference: "refs/pull/2/head".into(),
        branch: "master".into(),
        commit: text("ec26c3e57ca3a959ca5aad62de7213c562f8c821"),
        message: text("Update the README with new information."),
        author: text("Codertocat"),
        pull_request: text("2"),
        source_branch: text("changes"),
        target_branch: text("master"),
        action: text(action),
        ..hook()
    }
}

fn gitlab_merge_request(action: &str, event: &str) -> BuildRequest {
    BuildRequest {
        event: event.into(),
        reference: "refs/merge-requests/1/head".into(),
        branch: "master".into(),
        commit: text("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
        message: text("MS-Viewport"),
        author: text("root"),
        pull_request: text("1"),
        source_branch: text("ms-viewport"),
        target_branch: text("master"),
        action: text(action),
        ..hook()
    }
}

/// The request an event asks for, or the reason it asks for none with the words a webhook's
/// answer gives for it.
type Expected = Result<BuildRequest, (Ignored, String)>;

/// Every kind of event each forge sends → the build it asks for, or the reason it asks for none
/// (and the words a webhook's answer gives for it).
#[test]
fn each_forge_event_becomes_a_build_request_or_a_reason_to_build_nothing() {
    use ForgeKind::{Gitea, Github, Gitlab};
    let ignored = |reason: Ignored, words: &str| Err((reason, words.to_owned()));
    #[rustfmt::skip]
    let cases: Vec<(&str, ForgeKind, &str, Vec<u8>, Expected)> = vec![
        ("github push", Github, "push", payload("github/push.json", unchanged), Ok(BuildRequest {
            event: "push".into(),
            reference: "refs/heads/master".into(),
            branch: "master".into(),
            commit: text("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            message: text("Initial commit"),
            author: text("Codertocat"),
            author_email: text("21031067+Codertocat@users.noreply.github.com"),
            changed_files: Some(vec!["README.md".into()]),
            ..hook()
        })),
        ("github tag", Github, "push", payload("github/push_tag.json", unchanged), Ok(BuildRequest {
            event: "tag".into(),
            reference: "refs/tags/simple-tag".into(),
            tag: text("simple-tag"),
            commit: text("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            message: text("Adding a .gitignore file"),
            author: text("Codertocat"),
            ..hook()
        })),
        ("github pull request opened", Github, "pull_request", payload("github/pull_request_opened.json", unchanged),
            Ok(github_pull_request("opened", "pull_request"))),
        ("github pull request reopened", Github, "pull_request",
            payload("github/pull_request_opened.json", |payload| payload["action"] = "reopened".into()),
            Ok(github_pull_request("reopened", "pull_request"))),
        ("github pull request synchronized", Github, "pull_request", payload("github/pull_request_synchronize.json", unchanged),
            Ok(github_pull_request("synchronized", "pull_request"))),
        ("github pull request closed", Github, "pull_request", payload("github/pull_request_closed.json", unchanged),
            Ok(github_pull_request("closed", "pull_request_closed"))),
        ("github pull request from a fork", Github, "pull_request",
            payload("github/pull_request_opened.json", |payload| {
                payload["pull_request"]["head"]["repo"]["full_name"] = "octocat/Hello-World".into();
                payload["pull_request"]["head"]["repo"]["clone_url"] = "https://github.com/octocat/Hello-World.git".into();
            }),
            Ok(BuildRequest { from_fork: true, ..github_pull_request("opened", "pull_request") })),
        ("github tag deleted", Github, "push", payload("github/push_tag_deleted.json", unchanged),
            ignored(Ignored::Deleted { reference: "refs/tags/simple-tag".into() }, "refs/tags/simple-tag was deleted")),
        ("github branch deleted", Github, "push",
            payload("github/push_tag_deleted.json", |payload| payload["ref"] = "refs/heads/feature".into()),
            ignored(Ignored::Deleted { reference: "refs/heads/feature".into() }, "refs/heads/feature was deleted")),
        ("github ping", Github, "ping", payload("github/ping.json", unchanged), ignored(Ignored::Ping, "ping")),
        ("github pull request labelled", Github, "pull_request", payload("github/pull_request_labeled.json", unchanged),
            ignored(Ignored::Event { event: "pull_request.labeled".into() }, "event `pull_request.labeled` starts no build")),
        ("github push to a note", Github, "push",
            payload("github/push.json", |payload| payload["ref"] = "refs/notes/commits".into()),
            ignored(Ignored::Event { event: "push".into() }, "event `push` starts no build")),
        ("github issue", Github, "issues", br#"{"action":"opened"}"#.to_vec(),
            ignored(Ignored::Event { event: "issues".into() }, "event `issues` starts no build")),
        ("gitea push", Gitea, "push", payload("gitea/push.json", unchanged), Ok(BuildRequest {
            event: "push".into(),
            reference: "refs/heads/develop".into(),
            branch: "develop".into(),
            commit: text("bffeb74224043ba2feb48d137756c8a9331c449a"),
            before: text("28e1879d029cb852e4844d9c718537df08844e03"),
            message: text("Webhooks Yay!"),
            author: text("gitea"),
            author_email: text("someone@gitea.io"),
            ..hook()
        })),
        ("gitea pull request from a fork", Gitea, "pull_request",
            payload("gitea/pull_request_opened.json", |payload| {
                let head = &mut payload["pull_request"]["head"];
                head["repo_id"] = 141.into();
                head["repo"]["id"] = 141.into();
                head["repo"]["full_name"] = "contributor/webhooks".into();
                head["repo"]["clone_url"] = "http://localhost:3000/contributor/webhooks.git".into();
            }),
            Ok(BuildRequest {
                event: "pull_request".into(),
                reference: "refs/pull/1/head".into(),
                branch: "main".into(),
                commit: text("bffeb74224043ba2feb48d137756c8a9331c449a"),
                message: text("Add webhooks"),
                author: text("gitea"),
                pull_request: text("1"),
                source_branch: text("develop"),
                target_branch: text("main"),
                action: text("opened"),
                from_fork: true,
                ..hook()
            })),
        ("gitea branch deleted", Gitea, "delete", br#"{"ref":"develop","ref_type":"branch","pusher_type":"user"}"#.to_vec(),
            ignored(Ignored::Deleted { reference: "refs/heads/develop".into() }, "refs/heads/develop was deleted")),
        ("gitlab push", Gitlab, "Push Hook", payload("gitlab/push.json", unchanged), Ok(BuildRequest {
            event: "push".into(),
            reference: "refs/heads/master".into(),
            branch: "master".into(),
            commit: text("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
            before: text("95790bf891e76fee5e1747ab589903a6a1f80f22"),
            message: text("fixed readme"),
            author: text("jsmith"),
            author_email: text("gitlabdev@dv6700.(none)"),
            ..hook()
        })),
        // The payload's tag has no message: the commit's is read from git then.
        ("gitlab tag without a message", Gitlab, "Tag Push Hook", payload("gitlab/tag_push.json", unchanged), Ok(BuildRequest {
            event: "tag".into(),
            reference: "refs/tags/v1.0.0".into(),
            tag: text("v1.0.0"),
            commit: text("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"),
            author: text("John Smith"),
            ..hook()
        })),
        ("gitlab merge request", Gitlab, "Merge Request Hook", payload("gitlab/merge_request.json", unchanged),
            Ok(gitlab_merge_request("opened", "pull_request"))),
        ("gitlab merge request merged", Gitlab, "Merge Request Hook",
            payload("gitlab/merge_request.json", |payload| payload["object_attributes"]["action"] = "merge".into()),
            Ok(gitlab_merge_request("closed", "pull_request_closed"))),
        ("gitlab merge request from a fork", Gitlab, "Merge Request Hook",
            payload("gitlab/merge_request.json", |payload| payload["object_attributes"]["source_project_id"] = 15.into()),
            Ok(BuildRequest { from_fork: true, ..gitlab_merge_request("opened", "pull_request") })),
        ("gitlab merge request approved", Gitlab, "Merge Request Hook",
            payload("gitlab/merge_request.json", |payload| payload["object_attributes"]["action"] = "approved".into()),
            ignored(Ignored::Event { event: "merge_request.approved".into() }, "event `merge_request.approved` starts no build")),
    ];
    for (case, forge, event_name, body, expected) in cases {
        let request = BuildRequest::from_hook(forge, hook_event(forge, event_name, &body));
        let request = request.map_err(|reason| {
            let words = reason.to_string();
            (reason, words)
        });
        assert_eq!(request, expected, "{case}");
    }
}

fn record(event: &str, reference: &str, pull_request: Option<&str>, from_fork: bool) -> store::BuildRecord {
    store::BuildRecord {
        id: 40,
        repo_id: 3,
        number: 12,
        event: event.into(),
        state: proto::State::Failure,
        reference: reference.into(),
        branch: "main".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        message: "Fix the parser".into(),
        author: "alice".into(),
        trigger: "webhook".into(),
        pull_request: pull_request.map(str::to_owned),
        reason: None,
        diagnostics: Vec::new(),
        variables: [("DEPLOY".to_owned(), "no".to_owned())].into(),
        from_fork,
        approved_by: None,
        approved_at: None,
        created: 1,
        started: Some(2),
        finished: Some(3),
    }
}

/// What the triggers with no forge event ask for: a polled ref, a cron schedule, a person, a
/// restart (which keeps the old build's commit, fork flag and variables, and is vouched for).
#[test]
fn polls_schedules_people_and_restarts_ask_for_their_builds() {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let variables: std::collections::BTreeMap<String, String> = [("DEPLOY".to_owned(), "no".to_owned())].into();
    let polled = |event: &str| BuildRequest {
        event: event.into(),
        commit: text(commit),
        trigger: "poll".into(),
        honour_skip_ci: true,
        ..BuildRequest::default()
    };
    let restarted = BuildRequest {
        event: "pull_request".into(),
        reference: "refs/pull/7/head".into(),
        branch: "main".into(),
        commit: text(commit),
        message: text("Fix the parser"),
        author: text("alice"),
        pull_request: text("7"),
        from_fork: true,
        trigger: "restart:12".into(),
        variables: variables.clone(),
        approved_by: text("user:bob"),
        ..BuildRequest::default()
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<BuildRequest>, Option<BuildRequest>)> = vec![
        ("a polled branch that moved", BuildRequest::polled("refs/heads/dev", commit, Some("fedcba")),
            Some(BuildRequest { reference: "refs/heads/dev".into(), branch: "dev".into(), before: text("fedcba"), ..polled("push") })),
        ("a polled branch that appeared", BuildRequest::polled("refs/heads/dev", commit, None),
            Some(BuildRequest { reference: "refs/heads/dev".into(), branch: "dev".into(), ..polled("push") })),
        ("a polled tag", BuildRequest::polled("refs/tags/v1", commit, None),
            Some(BuildRequest { reference: "refs/tags/v1".into(), tag: text("v1"), ..polled("tag") })),
        ("a polled note", BuildRequest::polled("refs/notes/commits", commit, None), None),
        ("a cron schedule", Some(BuildRequest::cron("nightly", "main")), Some(BuildRequest {
            event: "cron".into(),
            reference: "refs/heads/main".into(),
            branch: "main".into(),
            cron: text("nightly"),
            trigger: "cron:nightly".into(),
            ..BuildRequest::default()
        })),
        ("a person", Some(BuildRequest::manual("dev".into(), None, "alice", variables.clone())), Some(BuildRequest {
            event: "manual".into(),
            reference: "refs/heads/dev".into(),
            branch: "dev".into(),
            trigger: "user:alice".into(),
            variables: variables.clone(),
            ..BuildRequest::default()
        })),
        ("a restart of a fork's pull request",
            Some(BuildRequest::restart(&record("pull_request", "refs/pull/7/head", Some("7"), true), "user:bob".into())),
            Some(restarted.clone())),
        ("a restart of a tag",
            Some(BuildRequest::restart(&record("tag", "refs/tags/v2", None, false), "user:bob".into())),
            Some(BuildRequest {
                event: "tag".into(),
                reference: "refs/tags/v2".into(),
                tag: text("v2"),
                pull_request: None,
                from_fork: false,
                ..restarted.clone()
            })),
    ];
    for (case, request, expected) in cases {
        assert_eq!(request, expected, "{case}");
    }
}

/// `[skip ci]` and its spellings stop builds no person asked for; a person's build runs anyway.
#[test]
fn a_skip_ci_message_stops_only_builds_no_person_asked_for() {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let push = BuildRequest::polled("refs/heads/main", commit, None).unwrap();
    let webhook = BuildRequest { event: "push".into(), ..hook() };
    let manual = BuildRequest::manual("main".into(), None, "alice", Default::default());
    let restart = BuildRequest::restart(&record("push", "refs/heads/main", None, false), "user:bob".into());
    let cron = BuildRequest::cron("nightly", "main");
    let skipped = Some("commit 01234567 asks to skip CI");
    #[rustfmt::skip]
    let cases: Vec<(&str, &BuildRequest, &str, Option<&str>)> = vec![
        ("webhook, [skip ci]", &webhook, "Fix typo [skip ci]", skipped),
        ("webhook, [CI SKIP]", &webhook, "[CI SKIP] docs", skipped),
        ("webhook, [no ci]", &webhook, "docs\n\n[no ci]", skipped),
        ("webhook, [skip actions]", &webhook, "docs [skip actions]", skipped),
        ("webhook, ***NO_CI***", &webhook, "***NO_CI***", skipped),
        ("webhook, no brackets", &webhook, "skip ci later", None),
        ("poll, [skip ci]", &push, "[skip ci]", skipped),
        ("person, [skip ci]", &manual, "[skip ci]", None),
        ("restart, [skip ci]", &restart, "[skip ci]", None),
        ("cron, [skip ci]", &cron, "[skip ci]", None),
    ];
    for (case, request, message, expected) in cases {
        let reason = request.skip_ci(commit, message);
        assert_eq!(reason.as_ref().map(ToString::to_string).as_deref(), expected, "{case}");
        if let Some(reason) = reason {
            assert_eq!(reason, Ignored::SkipCi { commit: commit.into() }, "{case}");
        }
    }
}
