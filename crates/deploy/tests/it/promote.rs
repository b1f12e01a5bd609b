//! Promotions, the deployer's half, against real git repositories (a bare remote and the
//! deployer's checkout): each rule the deployer checks itself refuses with its reason and
//! commits nothing; an approved promotion is a commit on the branch (`review: commit`) or a
//! branch of its own for review (`review: branch`), with a message that says who asked and who
//! approved; a version already pinned is applied as it is. Then the sync with a Gantry server
//! (a small one of the test's own): signed, rules and results in the body, each promotion
//! carried out once, results kept until a sync is answered, and a commit made while the
//! repository was unreachable reported once it is pushed, or as failed when it was dropped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use deploy::EnvironmentRepo;
use deploy::envgit::Checkout;
use deploy::promote::{
    Carried, PromotionOutcome, PromotionResult, PromotionSync, PromotionSyncAnswer, Promotions, ReadyPromotion, apply, decide,
    review_branch, sync_url,
};
use deploy::reconcile::read_folder;
use deploy::{ReadOptions, read_repository};

const REPOSITORY: &str = "registry.example.com/shop/web";
const RUNNING: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const STAGED: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const OTHER: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
/// 2026-12-25T12:00:00Z, the deployer's clock in these tests.
const NOW_MS: u64 = 1_798_200_000_000;
const SECRET: &str = "notify-secret";

fn image(tag: &str, digest: &str) -> String {
    format!("{REPOSITORY}:{tag}@{digest}")
}

/// git's output, trimmed.
fn git(cwd: &Path, args: &[&str]) -> String {
    git_output(cwd, args).trim().to_owned()
}

fn git_output(cwd: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn environment_file(promotion: &str) -> String {
    format!("version: 1\nname: production\ntargets:\n  main: {{kind: docker}}\n{promotion}")
}

fn web_file(extra: &str) -> String {
    format!("version: 1\nowner: {{team: shop, contact: shop@example.com}}\nimage: {}  # shop's storefront\n{extra}", image("1.0", RUNNING))
}

/// A promotion of `image` from staging to the `app`, asked by ada, approved by `approved_by`.
fn ready(id: i64, app: &str, image: &str, approved_by: &[&str]) -> ReadyPromotion {
    ReadyPromotion {
        id,
        app: app.to_owned(),
        image: image.to_owned(),
        from_environment: "staging".to_owned(),
        requested_by: "ada".to_owned(),
        approved_by: approved_by.iter().map(|user| (*user).to_owned()).collect(),
    }
}

/// An environment repository: the bare remote, a clone people commit from, and the deployer's
/// checkout of it.
struct Repo {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
    checkout: Checkout,
}

impl Repo {
    async fn new(promotion: &str, web_extra: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let (bare, work) = (dir.path().join("env.git"), dir.path().join("work"));
        git(dir.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        git(dir.path(), &["init", "-q", "-b", "main", work.to_str().unwrap()]);
        std::fs::create_dir(work.join("apps")).unwrap();
        std::fs::write(work.join("environment.yml"), environment_file(promotion)).unwrap();
        std::fs::write(work.join("apps/web.yml"), web_file(web_extra)).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "web 1.0"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        let checkout = Checkout::new(bare.to_str().unwrap(), "main", &dir.path().join("data"));
        checkout.sync().await.unwrap();
        Repo { _dir: dir, bare, work, checkout }
    }

    /// The checkout fetched again and read: its revision and repository.
    async fn read(&self) -> (String, EnvironmentRepo) {
        let revision = self.checkout.sync().await.unwrap();
        let (repository, diagnostics) = read_repository(&read_folder(&self.checkout.path).unwrap(), &ReadOptions::default());
        assert!(!diagnostics.iter().any(pipeline::Diagnostic::is_error), "{diagnostics:?}");
        (revision, repository.unwrap())
    }

    /// `git log -1 --format=FORMAT REF` in the remote.
    fn remote(&self, format: &str, reference: &str) -> String {
        git(&self.bare, &["log", "-1", &format!("--format={format}"), reference])
    }

    fn remote_file(&self, reference: &str) -> String {
        git_output(&self.bare, &["show", &format!("{reference}:apps/web.yml")])
    }

    fn branches(&self) -> String {
        git(&self.bare, &["for-each-ref", "--format=%(refname:short)", "refs/heads"])
    }

    /// A commit by a person on the remote: the web file's image set to `image`.
    fn push_by_hand(&self, image: &str, message: &str) {
        git(&self.work, &["pull", "-q", self.bare.to_str().unwrap(), "main"]);
        let text = std::fs::read_to_string(self.work.join("apps/web.yml")).unwrap();
        std::fs::write(self.work.join("apps/web.yml"), deploy::edit::set_image("apps/web.yml", &text, image).unwrap()).unwrap();
        git(&self.work, &["commit", "-q", "-am", message]);
        git(&self.work, &["push", "-q", self.bare.to_str().unwrap(), "main"]);
    }

    /// Makes the remote unreachable (`true`) or reachable again.
    fn unreachable(&self, away: bool) {
        let moved = self.bare.with_extension("away");
        let (from, to) = if away { (&self.bare, &moved) } else { (&moved, &self.bare) };
        std::fs::rename(from, to).unwrap();
    }
}

fn run(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test);
}

#[test]
fn each_rule_the_deployer_checks_refuses_with_its_reason() {
    let promotion_rules = "promotion:\n  from: [staging, qa]\n  approvals: 2\n  \
                           freeze:\n    - {from: 2026-12-24T00:00:00Z, to: 2026-12-27T00:00:00Z, reason: holidays}\n";
    let files = |rules: &str, web_extra: &str| {
        vec![
            deploy::RepoFile { path: "environment.yml".into(), text: environment_file(rules) },
            deploy::RepoFile { path: "apps/web.yml".into(), text: web_file(web_extra) },
        ]
    };
    let lenient = "promotion: {approvals: 1}\n";
    let held = &format!("holds: [{STAGED}, '1.2']\n");
    let staged = image("1.1", STAGED);
    let by_tag = image("1.2", OTHER);
    let held_by_digest = format!("`{staged}` is held in apps/web.yml (`{STAGED}`): remove the hold by a commit first");
    let held_by_tag = format!("`{by_tag}` is held in apps/web.yml (`1.2`): remove the hold by a commit first");
    let mut from_qa = ready(1, "web", &staged, &["bob"]);
    from_qa.from_environment = "prod-eu".into();
    let cases: Vec<(&str, &str, &str, ReadyPromotion, &str)> = vec![
        ("unknown app", lenient, "", ready(1, "api", &staged, &["bob"]), "the environment repository has no application `api`"),
        (
            "no promotion section",
            "",
            "",
            ready(1, "web", &staged, &["bob"]),
            "this environment takes no promotions: its environment.yml has no `promotion:` section",
        ),
        (
            "a tag only",
            lenient,
            "",
            ready(1, "web", &format!("{REPOSITORY}:1.1"), &["bob"]),
            "`registry.example.com/shop/web:1.1` is not an image pinned by digest",
        ),
        ("not an image", lenient, "", ready(1, "web", "Not An Image", &["bob"]), "`Not An Image` is not an image pinned by digest"),
        ("held by digest", lenient, held, ready(1, "web", &staged, &["bob"]), &held_by_digest),
        ("held by tag", lenient, held, ready(1, "web", &by_tag, &["bob"]), &held_by_tag),
        (
            "frozen by the deployer's clock",
            promotion_rules,
            "",
            ready(1, "web", &staged, &["bob", "carol"]),
            "a change freeze is on from 2026-12-24T00:00:00Z to 2026-12-27T00:00:00Z (holidays)",
        ),
        (
            "from an environment not listed",
            "promotion: {from: [staging, qa]}\n",
            "",
            from_qa,
            "this environment takes promotions only from staging, qa, not from `prod-eu`",
        ),
        (
            "too few approvals, each person counted once",
            "promotion: {approvals: 2}\n",
            "",
            ready(1, "web", &staged, &["bob", "bob"]),
            "1 approval(s) given, 2 required",
        ),
    ];
    for (case, rules, web_extra, promotion, expected) in cases {
        let (repository, diagnostics) = read_repository(&files(rules, web_extra), &ReadOptions::default());
        let repository = repository.unwrap_or_else(|| panic!("{case}: {diagnostics:?}"));
        match decide(&repository, &promotion, NOW_MS) {
            Err(refusal) => assert_eq!(refusal.to_string(), expected, "{case}"),
            Ok(decision) => panic!("{case}: {decision:?}"),
        }
    }

    // The same rules pass once the freeze is over, and what is already pinned needs no rule.
    let (repository, _) = read_repository(&files(promotion_rules, ""), &ReadOptions::default());
    let repository = repository.unwrap();
    let after_the_freeze = NOW_MS + 3 * 24 * 3_600_000;
    assert!(decide(&repository, &ready(1, "web", &staged, &["bob", "carol"]), after_the_freeze).is_ok());
    let (held_repository, _) = read_repository(&files(promotion_rules, held), &ReadOptions::default());
    let held_repository = held_repository.unwrap();
    let already = decide(&held_repository, &ready(1, "web", &image("1.0", RUNNING), &[]), NOW_MS);
    assert!(matches!(already, Ok(deploy::promote::Decision::AlreadyPinned { .. })), "{already:?}");
}

#[test]
fn a_refused_promotion_commits_nothing_and_an_image_the_deployer_cannot_edit_is_refused() {
    run(async {
        let repo = Repo::new("promotion: {from: [qa]}\n", "").await;
        let (revision, repository) = repo.read().await;
        let carried = apply(&repo.checkout, &repository, &revision, &ready(4, "web", &image("1.1", STAGED), &[]), NOW_MS).await.unwrap();
        assert_eq!(
            carried,
            Carried {
                result: PromotionResult {
                    id: 4,
                    outcome: PromotionOutcome::Failed,
                    commit: None,
                    branch: None,
                    reason: Some("this environment takes promotions only from qa, not from `staging`".into()),
                },
                committed: false,
                unpushed: false,
            }
        );
        assert_eq!(repo.remote("%H", "main"), revision, "nothing committed");

        // An image written as a block is not rewritten: refused, saying why.
        git(&repo.work, &["pull", "-q", repo.bare.to_str().unwrap(), "main"]);
        let text = std::fs::read_to_string(repo.work.join("apps/web.yml")).unwrap();
        let block = text
            .replace(&format!("image: {}  # shop's storefront", image("1.0", RUNNING)), &format!("image:\n  {}", image("1.0", RUNNING)));
        std::fs::write(repo.work.join("apps/web.yml"), block).unwrap();
        std::fs::write(repo.work.join("environment.yml"), environment_file("promotion: {}\n")).unwrap();
        git(&repo.work, &["commit", "-q", "-am", "image as a block"]);
        git(&repo.work, &["push", "-q", repo.bare.to_str().unwrap(), "main"]);
        let (revision, repository) = repo.read().await;
        let carried = apply(&repo.checkout, &repository, &revision, &ready(5, "web", &image("1.1", STAGED), &[]), NOW_MS).await.unwrap();
        assert_eq!(carried.result.outcome, PromotionOutcome::Failed);
        assert_eq!(
            carried.result.reason.as_deref(),
            Some("apps/web.yml: `image` is not a top-level `key: value` line, so the deployer cannot change it")
        );
        assert_eq!(repo.remote("%H", "main"), revision, "nothing committed");
    });
}

#[test]
fn an_approved_promotion_is_a_commit_on_the_branch_and_applying_it_again_changes_nothing() {
    run(async {
        let repo = Repo::new("promotion: {from: [staging], approvals: 2}\n", "").await;
        let (revision, repository) = repo.read().await;
        let staged = image("1.1", STAGED);
        let promotion = ready(12, "web", &staged, &["bob", "carol"]);
        let carried = apply(&repo.checkout, &repository, &revision, &promotion, NOW_MS).await.unwrap();
        let head = repo.remote("%H", "main");
        assert_ne!(head, revision);
        assert_eq!(
            carried,
            Carried {
                result: PromotionResult {
                    id: 12,
                    outcome: PromotionOutcome::Applied,
                    commit: Some(head.clone()),
                    branch: None,
                    reason: None
                },
                committed: true,
                unpushed: false,
            }
        );
        assert_eq!(repo.remote("%P", "main"), revision, "on top of what the deployer runs");
        assert_eq!(repo.remote("%an <%ae>", "main"), "Gantry deployer <deployer@gantry.invalid>");
        assert_eq!(
            repo.remote("%B", "main"),
            format!(
                "Promote web from staging: 1.1\n\nRequested by ada; approved by bob, carol.\n\n\
                 Gantry-Promotion: 12\nGantry-Promoted-From: staging\nGantry-Image: {staged}\nApproved-by: bob\nApproved-by: carol"
            )
        );
        assert_eq!(repo.remote("%(trailers:key=Approved-by,valueonly,separator=%x2C)", "main"), "bob,carol", "trailers git reads");
        assert_eq!(
            repo.remote_file("main"),
            web_file("").replace(&image("1.0", RUNNING), &staged),
            "the image line only, its comment kept"
        );
        assert_eq!(repo.branches(), "main");

        // Reported lost (the deployer stopped) and given again: the file pins it already.
        let (revision, repository) = repo.read().await;
        assert_eq!(revision, head);
        let again = apply(&repo.checkout, &repository, &revision, &promotion, NOW_MS).await.unwrap();
        assert_eq!(
            (again.result.outcome, again.result.commit.as_deref(), again.committed),
            (PromotionOutcome::Applied, Some(head.as_str()), false)
        );
        assert_eq!(repo.remote("%H", "main"), head, "no second commit");
    });
}

#[test]
fn without_approvals_the_message_says_none_were_required_and_a_digest_stands_for_a_missing_tag() {
    run(async {
        let repo = Repo::new("promotion: {}\n", "").await;
        let (revision, repository) = repo.read().await;
        let untagged = format!("{REPOSITORY}@{STAGED}");
        apply(&repo.checkout, &repository, &revision, &ready(3, "web", &untagged, &[]), NOW_MS).await.unwrap();
        assert_eq!(
            repo.remote("%B", "main"),
            format!(
                "Promote web from staging: sha256:222222222222\n\nRequested by ada; no approval required.\n\n\
                 Gantry-Promotion: 3\nGantry-Promoted-From: staging\nGantry-Image: {untagged}"
            )
        );
    });
}

#[test]
fn under_review_by_branch_a_promotion_is_a_branch_of_its_own_and_the_checkout_stays() {
    run(async {
        let repo = Repo::new("promotion: {review: branch}\n", "").await;
        let (revision, repository) = repo.read().await;
        let staged = image("1.1", STAGED);
        let promotion = ready(7, "web", &staged, &["bob"]);
        let carried = apply(&repo.checkout, &repository, &revision, &promotion, NOW_MS).await.unwrap();
        let branch = "gantry/promote/web-7";
        assert_eq!(review_branch(&promotion), branch);
        let proposed = repo.remote("%H", branch);
        assert_eq!(
            carried,
            Carried {
                result: PromotionResult {
                    id: 7,
                    outcome: PromotionOutcome::Proposed,
                    commit: Some(proposed.clone()),
                    branch: Some(branch.to_owned()),
                    reason: None,
                },
                committed: false,
                unpushed: false,
            }
        );
        assert_eq!(repo.remote("%P", branch), revision, "made from the revision the deployer runs");
        assert_eq!(repo.remote("%an", branch), "Gantry deployer");
        assert!(repo.remote("%B", branch).starts_with("Promote web from staging: 1.1\n\nRequested by ada; approved by bob.\n"));
        assert_eq!(repo.remote_file(branch), web_file("").replace(&image("1.0", RUNNING), &staged));
        // Nothing deployed: the branch it follows, its checkout and its index are as they were.
        assert_eq!(repo.remote("%H", "main"), revision);
        assert_eq!(repo.checkout.head().await.as_deref(), Some(revision.as_str()));
        assert_eq!(git(&repo.checkout.path, &["status", "--porcelain"]), "");
        assert_eq!(std::fs::read_to_string(repo.checkout.path.join("apps/web.yml")).unwrap(), web_file(""));
        assert!(repo.checkout.pending().is_empty());

        // Given again (the report was lost): the branch is the proposal, not a second one.
        let again = apply(&repo.checkout, &repository, &revision, &promotion, NOW_MS).await.unwrap();
        assert_eq!(again, carried);
        assert_eq!(repo.remote("%H", branch), proposed);
    });
}

/// A Gantry server's promotions endpoint as far as the deployer sees it: it answers each sync
/// with the promotions ready, or with the statuses queued, and keeps what it was sent.
#[derive(Default)]
struct Server {
    ready: Vec<ReadyPromotion>,
    statuses: Vec<StatusCode>,
    syncs: Vec<PromotionSync>,
}

/// The server, and the deployer's promotions with it as their one Gantry server.
async fn start_server() -> (Arc<Mutex<Server>>, Promotions) {
    let server = Arc::new(Mutex::new(Server::default()));
    let state = server.clone();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let state = state.clone();
        async move {
            let signature = headers.get("X-Gantry-Signature").and_then(|value| value.to_str().ok()).unwrap_or_default();
            assert_eq!(signature, forge::webhook::signature(SECRET, &body), "signed like the deployer's events");
            assert_eq!(headers.get("content-type").unwrap(), "application/json");
            let mut server = state.lock().unwrap();
            server.syncs.push(serde_json::from_slice(&body).unwrap());
            let status = if server.statuses.is_empty() { StatusCode::OK } else { server.statuses.remove(0) };
            let answer = serde_json::to_vec(&PromotionSyncAnswer { ready: server.ready.clone() }).unwrap();
            (status, answer)
        }
    };
    let app = axum::Router::new().route("/api/v1/environments/production/promotions/sync", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let events_url = format!("{base}/api/v1/environments/production/events");
    (server, Promotions::new(&[deploy::events::Receiver { url: events_url, secret: Some(SECRET.to_owned()) }]))
}

/// `(id, outcome, commit)` of each result of a sync.
fn results(sync: &PromotionSync) -> Vec<(i64, PromotionOutcome, Option<String>)> {
    sync.results.iter().map(|result| (result.id, result.outcome, result.commit.clone())).collect()
}

#[test]
fn the_promotions_endpoint_is_found_beside_a_gantry_servers_events_endpoint() {
    assert_eq!(
        sync_url("https://ci.example.com/api/v1/environments/production/events").as_deref(),
        Some("https://ci.example.com/api/v1/environments/production/promotions/sync")
    );
    for other in ["https://hooks.example.com/deployments", "https://ci.example.com/api/v1/events", "https://x.example.com/events/"] {
        assert_eq!(sync_url(other), None, "{other}");
    }
    let receivers = [deploy::events::Receiver { url: "https://hooks.example.com/deployments".into(), secret: None }];
    assert!(Promotions::new(&receivers).is_empty(), "a receiver that is not a Gantry server is sent no sync");
}

#[test]
fn each_pass_syncs_rules_and_results_carries_each_promotion_out_once_and_keeps_results_until_delivered() {
    run(async {
        let repo = Repo::new("promotion: {from: [staging], soak: 10m}\n", "").await;
        let (server, mut promotions) = start_server().await;
        let client = reqwest::Client::new();
        let nobody_else = BTreeSet::new();
        let (revision, repository) = repo.read().await;

        // Nothing ready: one sync, with the rules and the revision they were read at.
        assert!(!promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        {
            let server = server.lock().unwrap();
            assert_eq!(server.syncs.len(), 1);
            let sync = &server.syncs[0];
            assert_eq!((sync.environment.as_str(), sync.revision.as_str()), ("production", revision.as_str()));
            assert_eq!(sync.rules, repository.environment.promotion);
            assert_eq!(sync.rules.soak_ms, 600_000);
            assert!(sync.sent_at.abs_diff(now_ms()) < 60_000, "sent_at is the deployer's clock");
            assert!(sync.results.is_empty());
        }

        // Two ready: one carried out, one refused; the results go at once in a second sync.
        server.lock().unwrap().ready = vec![ready(1, "web", &image("1.1", STAGED), &[]), ready(2, "api", &image("2.0", OTHER), &[])];
        assert!(promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await, "committed: reconcile now");
        let head = repo.remote("%H", "main");
        {
            let server = server.lock().unwrap();
            assert_eq!(server.syncs.len(), 3);
            assert_eq!(
                results(&server.syncs[2]),
                [(1, PromotionOutcome::Applied, Some(head.clone())), (2, PromotionOutcome::Failed, None)]
            );
            assert_eq!(server.syncs[2].results[1].reason.as_deref(), Some("the environment repository has no application `api`"));
        }

        // Still listed (the server has not caught up): neither is carried out again.
        let (revision, repository) = repo.read().await;
        assert!(!promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        assert_eq!(repo.remote("%H", "main"), head);
        assert_eq!(server.lock().unwrap().syncs.len(), 4, "one sync: nothing new to report");
        assert!(server.lock().unwrap().syncs[3].results.is_empty(), "delivered results are not sent again");

        // The report is refused: kept, and sent with the next sync.
        {
            let mut server = server.lock().unwrap();
            server.ready = vec![ready(3, "web", &image("1.2", OTHER), &[])];
            server.statuses = vec![StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE];
        }
        assert!(promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        let head = repo.remote("%H", "main");
        server.lock().unwrap().ready.clear();
        let (revision, repository) = repo.read().await;
        assert!(!promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        {
            let server = server.lock().unwrap();
            assert_eq!(server.syncs.len(), 7);
            assert_eq!(results(&server.syncs[5]), results(&server.syncs[6]), "the refused report again");
            assert_eq!(results(&server.syncs[6]), [(3, PromotionOutcome::Applied, Some(head))]);
        }

        // An application another deployer keeps (`--target`) is left to it.
        server.lock().unwrap().ready = vec![ready(4, "web", &image("1.1", STAGED), &[])];
        let elsewhere = BTreeSet::from(["web".to_owned()]);
        assert!(!promotions.pass(&client, &repo.checkout, &repository, &revision, &elsewhere).await);
        assert_eq!(repo.remote("%H", "main"), revision);
        assert!(server.lock().unwrap().syncs.last().unwrap().results.is_empty());
    });
}

#[test]
fn a_promotion_committed_while_the_repository_is_unreachable_is_reported_once_pushed_or_as_failed_when_dropped() {
    run(async {
        let repo = Repo::new("promotion: {}\n", "").await;
        let (server, mut promotions) = start_server().await;
        let client = reqwest::Client::new();
        let nobody_else = BTreeSet::new();
        let (revision, repository) = repo.read().await;

        // Committed in the checkout, not pushed: deployed from there, not reported yet.
        server.lock().unwrap().ready = vec![ready(1, "web", &image("1.1", STAGED), &[])];
        repo.unreachable(true);
        assert!(promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        assert_eq!(repo.checkout.pending().len(), 1);
        assert_eq!(server.lock().unwrap().syncs.len(), 1, "nothing to report yet");
        assert!(repo.checkout.sync().await.is_err());
        assert!(!promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        assert!(server.lock().unwrap().syncs[1].results.is_empty(), "still not pushed");

        // Back: replayed onto the branch and pushed, then reported with the commit it is there.
        repo.unreachable(false);
        let (revision, repository) = repo.read().await;
        assert!(repo.checkout.pending().is_empty());
        let head = repo.remote("%H", "main");
        assert_eq!(repo.remote("%s", "main"), "Promote web from staging: 1.1");
        server.lock().unwrap().ready.clear();
        assert!(!promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        assert_eq!(results(server.lock().unwrap().syncs.last().unwrap()), [(1, PromotionOutcome::Applied, Some(head.clone()))]);

        // Committed while unreachable again, and meanwhile a person changed the same line: the
        // deployer's commit no longer applies and is dropped; the promotion is reported failed.
        server.lock().unwrap().ready = vec![ready(2, "web", &image("1.2", OTHER), &[])];
        repo.unreachable(true);
        assert!(promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        repo.unreachable(false);
        repo.push_by_hand(&image("0.9", RUNNING), "web back to 0.9 by hand");
        let (revision, repository) = repo.read().await;
        assert!(repo.checkout.pending().is_empty());
        assert_eq!(repo.remote("%s", "main"), "web back to 0.9 by hand", "the repository's version wins");
        server.lock().unwrap().ready.clear();
        assert!(!promotions.pass(&client, &repo.checkout, &repository, &revision, &nobody_else).await);
        let server = server.lock().unwrap();
        let last = server.syncs.last().unwrap();
        assert_eq!(results(last), [(2, PromotionOutcome::Failed, None)]);
        assert_eq!(
            last.results[0].reason.as_deref(),
            Some("its commit no longer applied to the branch (the application's file changed meanwhile)")
        );
    });
}

fn now_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}
