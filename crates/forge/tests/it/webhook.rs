//! Webhooks: the payloads the forges document (`tests/data/webhooks`, sources in SOURCES.md),
//! signed here with a test secret, read into deliveries; and every way a delivery is refused.

use forge::webhook::{self, AuthFailure, Delivery, HookEvent, PullRequest, PullRequestAction, Push, Tag, WebhookError};
use hmac::{Hmac, KeyInit, Mac};
use proto::ForgeKind;
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "It's a Secret to Everybody";

fn fixture(path: &str) -> Vec<u8> {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/webhooks").join(path);
    std::fs::read(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

/// The fixture with `change` applied: for cases the docs show no example of.
fn edited(path: &str, change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture(path)).unwrap();
    change(&mut payload);
    serde_json::to_vec(&payload).unwrap()
}

fn hmac_hex(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn github_headers(event: &str, body: &[u8]) -> Vec<(String, String)> {
    headers(&[
        ("x-github-event", event),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-hub-signature-256", &format!("sha256={}", hmac_hex(body, SECRET))),
        ("content-type", "application/json"),
    ])
}

fn gitea_headers(event: &str, body: &[u8]) -> Vec<(String, String)> {
    headers(&[
        ("x-gitea-event", event),
        ("x-gitea-delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ("x-gitea-signature", &hmac_hex(body, SECRET)),
    ])
}

fn gitlab_headers(event: &str, token: &str) -> Vec<(String, String)> {
    headers(&[("x-gitlab-event", event), ("x-gitlab-token", token), ("x-gitlab-event-uuid", "13792a34-cac6-4fda-95a8-c58e00a3954e")])
}

fn event(result: Result<Delivery, WebhookError>) -> HookEvent {
    result.unwrap_or_else(|error| panic!("refused: {error}")).event
}

fn github(event_name: &str, body: &[u8]) -> HookEvent {
    event(webhook::parse(ForgeKind::Github, &github_headers(event_name, body), body, SECRET))
}

fn gitea(event_name: &str, body: &[u8]) -> HookEvent {
    event(webhook::parse(ForgeKind::Gitea, &gitea_headers(event_name, body), body, SECRET))
}

fn gitlab(event_name: &str, body: &[u8]) -> HookEvent {
    event(webhook::parse(ForgeKind::Gitlab, &gitlab_headers(event_name, SECRET), body, SECRET))
}

fn malformed_detail(result: Result<Delivery, WebhookError>) -> String {
    match result {
        Err(WebhookError::Malformed { detail }) => detail,
        other => panic!("expected a malformed delivery, got {other:?}"),
    }
}

fn auth_failure(result: Result<Delivery, WebhookError>) -> AuthFailure {
    match result {
        Err(WebhookError::Unauthenticated(failure)) => failure,
        other => panic!("expected an unauthenticated delivery, got {other:?}"),
    }
}

mod github {
    use super::*;

    #[test]
    fn push_of_a_new_branch() {
        let body = fixture("github/push.json");
        let delivery = webhook::parse(ForgeKind::Github, &github_headers("push", &body), &body, SECRET).unwrap();
        assert_eq!(delivery.id.as_deref(), Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        assert_eq!(
            delivery.event,
            HookEvent::Push(Push {
                reference: "refs/heads/master".into(),
                branch: "master".into(),
                commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
                before: None,
                message: "Initial commit".into(),
                author: "Codertocat".into(),
                author_email: "21031067+Codertocat@users.noreply.github.com".into(),
                changed_files: Some(vec!["README.md".into()]),
                commit_url: Some("https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246".into()),
                compare_url: Some("https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246".into()),
            })
        );
    }

    #[test]
    fn push_keeps_the_commit_before_and_unions_changed_files_over_commits() {
        let body = edited("github/push.json", |payload| {
            payload["before"] = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into();
            let mut second = payload["commits"][0].clone();
            second["added"] = serde_json::json!(["docs/guide.md"]);
            second["modified"] = serde_json::json!(["README.md"]);
            second["removed"] = serde_json::json!([".travis.yml"]);
            payload["commits"].as_array_mut().unwrap().push(second);
        });
        let HookEvent::Push(push) = github("push", &body) else { panic!("not a push") };
        assert_eq!(push.before.as_deref(), Some("f95f852bd8fca8fcc58a9a2d6c842781e32a215e"));
        assert_eq!(push.changed_files, Some(vec![".travis.yml".into(), "README.md".into(), "docs/guide.md".into()]));
    }

    #[test]
    fn push_of_a_tag() {
        assert_eq!(
            github("push", &fixture("github/push_tag.json")),
            HookEvent::Tag(Tag {
                reference: "refs/tags/simple-tag".into(),
                tag: "simple-tag".into(),
                commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
                message: "Adding a .gitignore file".into(),
                author: "Codertocat".into(),
            })
        );
    }

    #[test]
    fn a_head_commit_of_all_zeros_names_no_commit_and_the_tag_points_where_after_says() {
        // Found by the webhook fuzz target: a tag push whose head commit id is the null commit.
        let body =
            edited("github/push_tag.json", |payload| payload["head_commit"]["id"] = "0000000000000000000000000000000000000000".into());
        let HookEvent::Tag(tag) = github("push", &body) else { panic!("not a tag") };
        assert_eq!(tag.commit, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    }

    #[test]
    fn deleting_a_tag_or_branch_builds_nothing() {
        // The example of GitHub's docs is a deletion: `after` is all zeros.
        assert_eq!(
            github("push", &fixture("github/push_tag_deleted.json")),
            HookEvent::Deleted { reference: "refs/tags/simple-tag".into() }
        );
        let branch = edited("github/push_tag_deleted.json", |payload| payload["ref"] = "refs/heads/feature".into());
        assert_eq!(github("push", &branch), HookEvent::Deleted { reference: "refs/heads/feature".into() });
    }

    #[test]
    fn push_to_another_kind_of_reference_is_ignored() {
        let body = edited("github/push.json", |payload| payload["ref"] = "refs/notes/commits".into());
        assert_eq!(github("push", &body), HookEvent::Ignored { event: "push".into() });
    }

    fn opened() -> PullRequest {
        PullRequest {
            action: PullRequestAction::Opened,
            number: 2,
            title: "Update the README with new information.".into(),
            head_commit: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
            head_branch: "changes".into(),
            base_branch: "master".into(),
            source_clone_url: "https://github.com/Codertocat/Hello-World.git".into(),
            from_fork: false,
            author: "Codertocat".into(),
        }
    }

    #[test]
    fn pull_request_actions_that_change_code() {
        assert_eq!(github("pull_request", &fixture("github/pull_request_opened.json")), HookEvent::PullRequest(opened()));
        for (file, action) in [
            ("github/pull_request_synchronize.json", PullRequestAction::Synchronized),
            ("github/pull_request_closed.json", PullRequestAction::Closed),
        ] {
            assert_eq!(github("pull_request", &fixture(file)), HookEvent::PullRequest(PullRequest { action, ..opened() }), "{file}");
        }
        let reopened = edited("github/pull_request_opened.json", |payload| payload["action"] = "reopened".into());
        assert_eq!(
            github("pull_request", &reopened),
            HookEvent::PullRequest(PullRequest { action: PullRequestAction::Reopened, ..opened() })
        );
    }

    #[test]
    fn pull_request_actions_that_change_no_code_are_ignored() {
        assert_eq!(
            github("pull_request", &fixture("github/pull_request_labeled.json")),
            HookEvent::Ignored { event: "pull_request.labeled".into() }
        );
        let edited_title = edited("github/pull_request_opened.json", |payload| payload["action"] = "edited".into());
        assert_eq!(github("pull_request", &edited_title), HookEvent::Ignored { event: "pull_request.edited".into() });
    }

    #[test]
    fn pull_request_from_a_fork() {
        let body = edited("github/pull_request_opened.json", |payload| {
            payload["pull_request"]["head"]["repo"]["full_name"] = "octocat/Hello-World".into();
            payload["pull_request"]["head"]["repo"]["clone_url"] = "https://github.com/octocat/Hello-World.git".into();
        });
        assert_eq!(
            github("pull_request", &body),
            HookEvent::PullRequest(PullRequest {
                from_fork: true,
                source_clone_url: "https://github.com/octocat/Hello-World.git".into(),
                ..opened()
            })
        );
    }

    #[test]
    fn pull_request_whose_fork_was_deleted_is_a_fork_fetched_from_the_base() {
        let body = edited("github/pull_request_synchronize.json", |payload| payload["pull_request"]["head"]["repo"] = Value::Null);
        let HookEvent::PullRequest(pull_request) = github("pull_request", &body) else { panic!("not a pull request") };
        assert!(pull_request.from_fork);
        assert_eq!(pull_request.source_clone_url, "https://github.com/Codertocat/Hello-World.git");
    }

    #[test]
    fn ping_and_unknown_events() {
        assert_eq!(github("ping", &fixture("github/ping.json")), HookEvent::Ping);
        assert_eq!(github("issues", br#"{"action":"opened"}"#), HookEvent::Ignored { event: "issues".into() });
    }

    #[test]
    fn a_generic_forge_speaks_githubs_format() {
        let body = fixture("github/push.json");
        let delivery = webhook::parse(ForgeKind::Generic, &github_headers("push", &body), &body, SECRET).unwrap();
        assert!(matches!(delivery.event, HookEvent::Push(_)));
    }

    /// The example of GitHub's "Validating webhook deliveries": this secret, the body
    /// `Hello, World!` and this signature. The body is no payload, so it is malformed — after
    /// the signature passed.
    #[test]
    fn the_signature_example_of_githubs_docs_verifies() {
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let headers = headers(&[("x-github-event", "push"), ("x-hub-signature-256", signature)]);
        let detail = malformed_detail(webhook::parse(ForgeKind::Github, &headers, b"Hello, World!", SECRET));
        assert!(detail.starts_with("the body is not JSON"), "{detail}");
    }
}

mod gitea {
    use super::*;

    fn docs_push() -> Push {
        Push {
            reference: "refs/heads/develop".into(),
            branch: "develop".into(),
            commit: "bffeb74224043ba2feb48d137756c8a9331c449a".into(),
            before: Some("28e1879d029cb852e4844d9c718537df08844e03".into()),
            message: "Webhooks Yay!".into(),
            author: "gitea".into(),
            author_email: "someone@gitea.io".into(),
            // The docs' commits carry no added/modified/removed lists: git must tell.
            changed_files: None,
            commit_url: Some("http://localhost:3000/gitea/webhooks/commit/bffeb74224043ba2feb48d137756c8a9331c449a".into()),
            compare_url: Some(
                "http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a"
                    .into(),
            ),
        }
    }

    #[test]
    fn push() {
        let body = fixture("gitea/push.json");
        let delivery = webhook::parse(ForgeKind::Gitea, &gitea_headers("push", &body), &body, SECRET).unwrap();
        assert_eq!(delivery.id.as_deref(), Some("f6266f16-1bf3-46a5-9ea4-602e06ead473"));
        assert_eq!(delivery.event, HookEvent::Push(docs_push()));
    }

    #[test]
    fn push_from_forgejo_with_its_own_headers() {
        let body = fixture("gitea/push_forgejo.json");
        let headers = headers(&[
            ("x-forgejo-event", "push"),
            ("x-forgejo-delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
            ("x-forgejo-signature", &hmac_hex(&body, SECRET)),
        ]);
        let delivery = webhook::parse(ForgeKind::Gitea, &headers, &body, SECRET).unwrap();
        assert_eq!(delivery.id.as_deref(), Some("f6266f16-1bf3-46a5-9ea4-602e06ead473"));
        let HookEvent::Push(push) = delivery.event else { panic!("not a push") };
        assert_eq!((push.author.as_str(), push.author_email.as_str()), ("forgejo", "someone@forgejo.org"));
    }

    #[test]
    fn push_signed_the_github_way_and_typed_by_event_type() {
        let body = fixture("gitea/push.json");
        let headers = headers(&[("x-gitea-event-type", "push"), ("x-hub-signature-256", &format!("sha256={}", hmac_hex(&body, SECRET)))]);
        assert_eq!(event(webhook::parse(ForgeKind::Gitea, &headers, &body, SECRET)), HookEvent::Push(docs_push()));
    }

    #[test]
    fn push_that_lists_changed_files() {
        let body = edited("gitea/push.json", |payload| {
            let commit = &mut payload["commits"][0];
            commit["added"] = serde_json::json!(["b.txt"]);
            commit["modified"] = serde_json::json!(["a.txt"]);
            commit["removed"] = serde_json::json!([]);
            payload["total_commits"] = 1.into();
        });
        let HookEvent::Push(push) = gitea("push", &body) else { panic!("not a push") };
        assert_eq!(push.changed_files, Some(vec!["a.txt".into(), "b.txt".into()]));
        let truncated = edited("gitea/push.json", |payload| {
            payload["commits"][0]["added"] = serde_json::json!(["b.txt"]);
            payload["commits"][0]["modified"] = serde_json::json!([]);
            payload["commits"][0]["removed"] = serde_json::json!([]);
            payload["total_commits"] = 30.into();
        });
        let HookEvent::Push(push) = gitea("push", &truncated) else { panic!("not a push") };
        assert_eq!(push.changed_files, None, "30 commits pushed, 1 listed");
    }

    #[test]
    fn tag_push_and_deletions() {
        let tag = edited("gitea/push.json", |payload| payload["ref"] = "refs/tags/v1.0.0".into());
        assert_eq!(
            gitea("push", &tag),
            HookEvent::Tag(Tag {
                reference: "refs/tags/v1.0.0".into(),
                tag: "v1.0.0".into(),
                commit: "bffeb74224043ba2feb48d137756c8a9331c449a".into(),
                message: "Webhooks Yay!".into(),
                author: "gitea".into(),
            })
        );
        let deleted = edited("gitea/push.json", |payload| {
            payload["after"] = "0000000000000000000000000000000000000000".into();
            payload["commits"] = serde_json::json!([]);
        });
        assert_eq!(gitea("push", &deleted), HookEvent::Deleted { reference: "refs/heads/develop".into() });
        // Gitea's `delete` event names the reference without its prefix.
        let branch = br#"{"ref":"develop","ref_type":"branch","pusher_type":"user"}"#;
        assert_eq!(gitea("delete", branch), HookEvent::Deleted { reference: "refs/heads/develop".into() });
        let tag = br#"{"ref":"v1.0.0","ref_type":"tag","pusher_type":"user"}"#;
        assert_eq!(gitea("delete", tag), HookEvent::Deleted { reference: "refs/tags/v1.0.0".into() });
    }

    fn opened() -> PullRequest {
        PullRequest {
            action: PullRequestAction::Opened,
            number: 1,
            title: "Add webhooks".into(),
            head_commit: "bffeb74224043ba2feb48d137756c8a9331c449a".into(),
            head_branch: "develop".into(),
            base_branch: "main".into(),
            source_clone_url: "http://localhost:3000/gitea/webhooks.git".into(),
            from_fork: false,
            author: "gitea".into(),
        }
    }

    #[test]
    fn pull_request_actions() {
        assert_eq!(gitea("pull_request", &fixture("gitea/pull_request_opened.json")), HookEvent::PullRequest(opened()));
        for (action, expected) in [
            ("synchronized", PullRequestAction::Synchronized),
            ("reopened", PullRequestAction::Reopened),
            ("closed", PullRequestAction::Closed),
        ] {
            let body = edited("gitea/pull_request_opened.json", |payload| payload["action"] = action.into());
            assert_eq!(gitea("pull_request", &body), HookEvent::PullRequest(PullRequest { action: expected, ..opened() }), "{action}");
        }
        let labelled = edited("gitea/pull_request_opened.json", |payload| payload["action"] = "label_updated".into());
        assert_eq!(gitea("pull_request", &labelled), HookEvent::Ignored { event: "pull_request.label_updated".into() });
    }

    #[test]
    fn pull_request_from_a_fork() {
        let body = edited("gitea/pull_request_opened.json", |payload| {
            let head = &mut payload["pull_request"]["head"];
            head["repo_id"] = 141.into();
            head["repo"]["id"] = 141.into();
            head["repo"]["full_name"] = "contributor/webhooks".into();
            head["repo"]["clone_url"] = "http://localhost:3000/contributor/webhooks.git".into();
        });
        assert_eq!(
            gitea("pull_request", &body),
            HookEvent::PullRequest(PullRequest {
                from_fork: true,
                source_clone_url: "http://localhost:3000/contributor/webhooks.git".into(),
                ..opened()
            })
        );
    }

    #[test]
    fn unknown_events_are_ignored() {
        assert_eq!(gitea("issues", br#"{"action":"opened"}"#), HookEvent::Ignored { event: "issues".into() });
        assert_eq!(gitea("create", br#"{"ref":"v1","ref_type":"tag"}"#), HookEvent::Ignored { event: "create".into() });
    }
}

mod gitlab {
    use super::*;

    #[test]
    fn push_of_more_commits_than_listed_leaves_changed_files_to_git() {
        let body = fixture("gitlab/push.json");
        let delivery = webhook::parse(ForgeKind::Gitlab, &gitlab_headers("Push Hook", SECRET), &body, SECRET).unwrap();
        assert_eq!(delivery.id.as_deref(), Some("13792a34-cac6-4fda-95a8-c58e00a3954e"));
        assert_eq!(
            delivery.event,
            HookEvent::Push(Push {
                reference: "refs/heads/master".into(),
                branch: "master".into(),
                commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
                before: Some("95790bf891e76fee5e1747ab589903a6a1f80f22".into()),
                message: "fixed readme".into(),
                author: "jsmith".into(),
                author_email: "gitlabdev@dv6700.(none)".into(),
                // `total_commits_count` is 4 and two commits are listed.
                changed_files: None,
                commit_url: Some("http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into()),
                compare_url: None,
            })
        );
    }

    #[test]
    fn push_listing_every_commit_unions_their_files() {
        let body = edited("gitlab/push.json", |payload| payload["total_commits_count"] = 2.into());
        let HookEvent::Push(push) = gitlab("Push Hook", &body) else { panic!("not a push") };
        assert_eq!(push.changed_files, Some(vec!["CHANGELOG".into(), "app/controller/application.rb".into()]));
    }

    #[test]
    fn tag_push() {
        assert_eq!(
            gitlab("Tag Push Hook", &fixture("gitlab/tag_push.json")),
            HookEvent::Tag(Tag {
                reference: "refs/tags/v1.0.0".into(),
                tag: "v1.0.0".into(),
                commit: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7".into(),
                message: String::new(),
                author: "John Smith".into(),
            })
        );
    }

    #[test]
    fn annotated_tag_push_names_the_commit_and_the_tag_message() {
        let body = edited("gitlab/tag_push.json", |payload| {
            payload["after"] = "4bd6a5a6cb0d4c5b8b7bd7ac0e5e4c0b2a9f6a11".into();
            payload["message"] = "Release 1.0.0".into();
        });
        let HookEvent::Tag(tag) = gitlab("Tag Push Hook", &body) else { panic!("not a tag") };
        assert_eq!((tag.commit.as_str(), tag.message.as_str()), ("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", "Release 1.0.0"));
    }

    #[test]
    fn deletions() {
        let branch = edited("gitlab/push.json", |payload| {
            payload["after"] = "0000000000000000000000000000000000000000".into();
            payload["commits"] = serde_json::json!([]);
        });
        assert_eq!(gitlab("Push Hook", &branch), HookEvent::Deleted { reference: "refs/heads/master".into() });
        let tag = edited("gitlab/tag_push.json", |payload| {
            payload["before"] = payload["after"].clone();
            payload["after"] = "0000000000000000000000000000000000000000".into();
        });
        assert_eq!(gitlab("Tag Push Hook", &tag), HookEvent::Deleted { reference: "refs/tags/v1.0.0".into() });
    }

    fn opened() -> PullRequest {
        PullRequest {
            action: PullRequestAction::Opened,
            number: 1,
            title: "MS-Viewport".into(),
            head_commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
            head_branch: "ms-viewport".into(),
            base_branch: "master".into(),
            source_clone_url: "http://example.com/awesome_space/awesome_project.git".into(),
            from_fork: false,
            author: "root".into(),
        }
    }

    fn with_action(action: &str, oldrev: Option<&str>) -> Vec<u8> {
        edited("gitlab/merge_request.json", |payload| {
            payload["object_attributes"]["action"] = action.into();
            if let Some(oldrev) = oldrev {
                payload["object_attributes"]["oldrev"] = oldrev.into();
            }
        })
    }

    #[test]
    fn merge_request_actions() {
        assert_eq!(gitlab("Merge Request Hook", &fixture("gitlab/merge_request.json")), HookEvent::PullRequest(opened()));
        for (action, oldrev, expected) in [
            ("reopen", None, PullRequestAction::Reopened),
            ("close", None, PullRequestAction::Closed),
            ("merge", None, PullRequestAction::Closed),
            ("update", Some("95790bf891e76fee5e1747ab589903a6a1f80f22"), PullRequestAction::Synchronized),
        ] {
            assert_eq!(
                gitlab("Merge Request Hook", &with_action(action, oldrev)),
                HookEvent::PullRequest(PullRequest { action: expected, ..opened() }),
                "{action}"
            );
        }
    }

    #[test]
    fn merge_request_updates_without_new_commits_are_ignored() {
        assert_eq!(gitlab("Merge Request Hook", &with_action("update", None)), HookEvent::Ignored { event: "merge_request.update".into() });
        assert_eq!(
            gitlab("Merge Request Hook", &with_action("approved", None)),
            HookEvent::Ignored { event: "merge_request.approved".into() }
        );
    }

    #[test]
    fn merge_request_from_a_fork() {
        let body = edited("gitlab/merge_request.json", |payload| payload["object_attributes"]["source_project_id"] = 15.into());
        assert_eq!(gitlab("Merge Request Hook", &body), HookEvent::PullRequest(PullRequest { from_fork: true, ..opened() }));
    }

    #[test]
    fn unknown_events_are_ignored() {
        assert_eq!(gitlab("Issue Hook", br#"{"object_kind":"issue"}"#), HookEvent::Ignored { event: "Issue Hook".into() });
    }

    #[test]
    fn wrong_or_missing_token() {
        let body = fixture("gitlab/push.json");
        let wrong = webhook::parse(ForgeKind::Gitlab, &gitlab_headers("Push Hook", "guessed"), &body, SECRET);
        let error = wrong.unwrap_err();
        assert!(error.is_unauthenticated());
        assert!(!error.to_string().contains(SECRET), "{error}");
        assert_eq!(
            auth_failure(webhook::parse(ForgeKind::Gitlab, &gitlab_headers("Push Hook", "guessed"), &body, SECRET)),
            AuthFailure::BadToken { header: "x-gitlab-token" }
        );
        let prefix = &SECRET[..SECRET.len() - 1];
        assert!(
            webhook::parse(ForgeKind::Gitlab, &gitlab_headers("Push Hook", prefix), &body, SECRET).is_err(),
            "a prefix is not the token"
        );
        let without = headers(&[("x-gitlab-event", "Push Hook")]);
        assert_eq!(
            auth_failure(webhook::parse(ForgeKind::Gitlab, &without, &body, SECRET)),
            AuthFailure::MissingSignature { header: "x-gitlab-token" }
        );
    }
}

mod refused {
    use super::*;

    #[test]
    fn bad_signature_never_shows_the_secret_or_the_expected_mac() {
        let body = fixture("github/push.json");
        let forged = format!("sha256={}", hmac_hex(&body, "not the secret"));
        let headers = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &forged)]);
        let error = webhook::parse(ForgeKind::Github, &headers, &body, SECRET).unwrap_err();
        let message = error.to_string();
        assert_eq!(message, "webhook not authenticated: the signature in header 'x-hub-signature-256' does not match the body");
        assert!(!message.contains(SECRET) && !message.contains(&hmac_hex(&body, SECRET)));
        assert!(!format!("{error:?}").contains(&hmac_hex(&body, SECRET)));
    }

    #[test]
    fn missing_signature() {
        let body = fixture("github/push.json");
        assert_eq!(
            auth_failure(webhook::parse(ForgeKind::Github, &headers(&[("x-github-event", "push")]), &body, SECRET)),
            AuthFailure::MissingSignature { header: "x-hub-signature-256" }
        );
        assert_eq!(
            auth_failure(webhook::parse(ForgeKind::Gitea, &headers(&[("x-gitea-event", "push")]), &body, SECRET)),
            AuthFailure::MissingSignature { header: "x-gitea-signature" }
        );
    }

    #[test]
    fn body_altered_by_one_byte_after_signing() {
        for (forge, file, event) in [(ForgeKind::Github, "github/push.json", "push"), (ForgeKind::Gitea, "gitea/push.json", "push")] {
            let body = fixture(file);
            let headers = if forge == ForgeKind::Github { github_headers(event, &body) } else { gitea_headers(event, &body) };
            let mut altered = body.clone();
            let position = altered.iter().position(|byte| *byte == b'6').unwrap();
            altered[position] = b'7';
            assert!(matches!(auth_failure(webhook::parse(forge, &headers, &altered, SECRET)), AuthFailure::BadSignature { .. }));
            assert!(webhook::parse(forge, &headers, &body, SECRET).is_ok());
        }
    }

    #[test]
    fn signatures_that_are_not_hex_or_lack_githubs_prefix() {
        let body = fixture("github/push.json");
        for signature in [hmac_hex(&body, SECRET), "sha256=zz".to_owned(), "sha1=0123".to_owned(), String::new()] {
            let headers = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &signature)]);
            assert_eq!(
                auth_failure(webhook::parse(ForgeKind::Github, &headers, &body, SECRET)),
                AuthFailure::BadSignature { header: "x-hub-signature-256" },
                "{signature:?}"
            );
        }
    }

    #[test]
    fn a_repository_without_a_secret_accepts_nothing() {
        let body = fixture("github/push.json");
        let headers = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &format!("sha256={}", hmac_hex(&body, "")))]);
        assert_eq!(auth_failure(webhook::parse(ForgeKind::Github, &headers, &body, "")), AuthFailure::NoSecret);
    }

    #[test]
    fn header_names_match_whatever_their_case() {
        let body = fixture("github/push.json");
        let headers = headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &format!("sha256={}", hmac_hex(&body, SECRET)))]);
        assert!(webhook::parse(ForgeKind::Github, &headers, &body, SECRET).is_ok());
    }
}

mod malformed {
    use super::*;

    #[test]
    fn body_that_is_not_json() {
        let body = b"{\"ref\": \"refs/heads/main\",";
        let detail = malformed_detail(webhook::parse(ForgeKind::Github, &github_headers("push", body), body, SECRET));
        assert!(detail.starts_with("the body is not JSON: EOF while parsing"), "{detail}");
    }

    #[test]
    fn missing_fields_are_named() {
        /// Forge, fixture, event, the detail expected, and how the fixture is broken.
        type Case = (ForgeKind, &'static str, &'static str, &'static str, fn(&mut Value));
        let cases: [Case; 5] = [
            (ForgeKind::Github, "github/push.json", "push", "field 'after' is missing", |payload| {
                payload.as_object_mut().unwrap().remove("after");
            }),
            (ForgeKind::Github, "github/pull_request_opened.json", "pull_request", "field 'pull_request.head.sha' is missing", |payload| {
                payload["pull_request"]["head"]["sha"] = Value::Null;
            }),
            (ForgeKind::Github, "github/pull_request_opened.json", "pull_request", "field 'number' is not a whole number", |payload| {
                payload["number"] = "two".into();
            }),
            (ForgeKind::Gitea, "gitea/push.json", "push", "field 'ref' is not a string", |payload| {
                payload["ref"] = 7.into();
            }),
            (
                ForgeKind::Gitlab,
                "gitlab/merge_request.json",
                "Merge Request Hook",
                "field 'object_attributes.last_commit.id' is missing",
                |payload| {
                    payload["object_attributes"].as_object_mut().unwrap().remove("last_commit");
                },
            ),
        ];
        for (forge, file, event, expected, change) in cases {
            let body = edited(file, change);
            let headers = match forge {
                ForgeKind::Gitea => gitea_headers(event, &body),
                ForgeKind::Gitlab => gitlab_headers(event, SECRET),
                _ => github_headers(event, &body),
            };
            let error = webhook::parse(forge, &headers, &body, SECRET).unwrap_err();
            assert_eq!(error.to_string(), format!("malformed webhook: {expected}"), "{file}");
        }
    }

    #[test]
    fn missing_event_header() {
        let body = fixture("github/push.json");
        let headers = headers(&[("x-hub-signature-256", &format!("sha256={}", hmac_hex(&body, SECRET)))]);
        assert_eq!(malformed_detail(webhook::parse(ForgeKind::Github, &headers, &body, SECRET)), "header 'x-github-event' is missing");
    }
}
