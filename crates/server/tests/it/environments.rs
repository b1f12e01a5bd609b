//! Environments and their deployers' events: an environment's signing secret is shown once
//! and never again; only a body signed with it is recorded (an unknown environment answers as
//! a forged event does, and one environment's deployer cannot write into another); a deployment
//! goes from running to its outcome once, whatever order and however often its events arrive;
//! and a deployed image links to the build that produced it, for those who may see that build.
//!
//! Events travel over real HTTP, as a deployer sends them; the rest goes through the router.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::artifacts::{DIGEST, hmac_hex, leased_release, pushed, report};
use crate::both;
use crate::harness::{Harness, captured_logs};

/// When every deployment of these tests started (Unix ms).
const STARTED: u64 = 1_767_225_600_000;
const REVISION: &str = "2222222222222222222222222222222222222222";

/// Registers `name` as the admin token; its signing secret.
async fn register(harness: &Harness, name: &str) -> String {
    let (status, answer) = harness.admin(Method::POST, "/api/v1/environments", Some(json!({ "name": name }))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["secret"].as_str().unwrap().to_owned()
}

/// The event `name` about deployment `id` of `web`, as a deployer sends it.
fn event(name: &str, environment: &str, id: &str, outcome: &str, to_image: &str) -> Value {
    let mut deployment = json!({
        "id": id, "environment": environment, "app": "web", "kind": "update",
        "from_image": "registry.example.com/web:1", "to_image": to_image, "from_revision": "1111111111111111111111111111111111111111",
        "revision": REVISION, "author": "Ada <ada@example.com>", "started_at": STARTED, "outcome": outcome,
    });
    if outcome != "running" {
        deployment["finished_at"] = json!(STARTED + 2500);
    }
    if outcome == "failed" {
        deployment["reason"] = json!("did not become healthy");
    }
    json!({ "event": name, "environment": environment, "app": "web", "owner_team": "web-team", "deployment": deployment })
}

/// A deployer of the test: sends events over HTTP to a served harness.
struct Sender {
    base: String,
    http: reqwest::Client,
}

impl Sender {
    async fn new(harness: &Harness) -> Sender {
        Sender { base: harness.serve().await, http: reqwest::Client::builder().no_proxy().build().unwrap() }
    }

    /// POSTs `body` to the events URL of `environment` with `signature` as `X-Gantry-Signature`:
    /// the status and the answer's text.
    async fn raw(&self, environment: &str, body: &[u8], signature: Option<&str>) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}/api/v1/environments/{environment}/events", self.base))
            .header("content-type", "application/json")
            .header("x-gantry-event", "deployment.started")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-gantry-signature", signature);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `event` signed with `secret` and sent to `environment`: the status and the answer.
    async fn send(&self, environment: &str, secret: &str, event: &Value) -> (u16, Value) {
        let body = event.to_string().into_bytes();
        let (status, text) = self.raw(environment, &body, Some(&hmac_hex(secret, &body))).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// As `send`, insisting on 200; whether it changed anything.
    async fn changed(&self, environment: &str, secret: &str, event: &Value) -> bool {
        let (status, answer) = self.send(environment, secret, event).await;
        assert_eq!(status, 200, "{event}: {answer}");
        answer["changed"].as_bool().unwrap()
    }
}

async fn secret_once(harness: Harness) {
    let ((secrets, answers), logs) = captured_logs(async {
        let mut answers = Vec::new();
        let (status, created) = harness.admin(Method::POST, "/api/v1/environments", Some(json!({ "name": "production" }))).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()), "32 random bytes as hex: {secret}");
        assert_eq!(created["events_url"], "http://gantry.test/api/v1/environments/production/events");

        let body = event("deployment.started", "production", "d1", "running", "web:2").to_string().into_bytes();
        let signed = hmac_hex(&secret, &body);
        let (status, answer) =
            harness.raw("/api/v1/environments/production/events", &[("x-gantry-signature", &signed)], body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answers.push(answer);
        for path in ["/api/v1/environments", "/api/v1/environments/production/deployments", "/api/v1/environments/production/apps"] {
            let (status, answer) = harness.admin(Method::GET, path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {answer}");
            answers.push(answer);
        }
        let (status, answer) = harness.admin(Method::POST, "/api/v1/environments", Some(json!({ "name": "production" }))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        answers.push(answer);
        for bad in ["Production", "-prod", "a/b", "", &"x".repeat(64)] {
            let (status, answer) = harness.admin(Method::POST, "/api/v1/environments", Some(json!({ "name": bad }))).await;
            assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("name")), "{bad}: {answer}");
        }

        // A user who is not a server admin reads, but neither registers, regenerates nor removes.
        let user = harness.user("reader").await;
        for path in ["/api/v1/environments", "/api/v1/environments/production/deployments", "/api/v1/environments/production/apps"] {
            let (status, answer) = harness.call(Method::GET, path, Some(&user), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {answer}");
            answers.push(answer);
        }
        for (method, path, body) in [
            (Method::POST, "/api/v1/environments", Some(json!({ "name": "staging" }))),
            (Method::POST, "/api/v1/environments/production/secret", None),
            (Method::DELETE, "/api/v1/environments/production", None),
        ] {
            let (status, answer) = harness.call(method.clone(), path, Some(&user), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
            answers.push(answer);
        }

        // A new secret is shown once; the old one stops working at once.
        let (status, regenerated) = harness.admin(Method::POST, "/api/v1/environments/production/secret", None).await;
        assert_eq!(status, StatusCode::OK, "{regenerated}");
        let second = regenerated["secret"].as_str().unwrap().to_owned();
        assert_ne!(second, secret);
        let (status, answer) =
            harness.raw("/api/v1/environments/production/events", &[("x-gantry-signature", &signed)], body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the old secret: {answer}");
        answers.push(answer);
        let resigned = hmac_hex(&second, &body);
        let (status, answer) = harness.raw("/api/v1/environments/production/events", &[("x-gantry-signature", &resigned)], body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answers.push(answer);
        let (_, listed) = harness.admin(Method::GET, "/api/v1/environments", None).await;
        answers.push(listed);
        let (status, answer) = harness.admin(Method::POST, "/api/v1/environments/nowhere/secret", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        ((secret, second), answers)
    })
    .await;
    let (first, second) = secrets;
    for answer in &answers {
        let text = answer.to_string();
        assert!(!text.contains(&first) && !text.contains(&second), "a signing secret was shown again: {text}");
    }
    assert!(!logs.contains(&first) && !logs.contains(&second), "a signing secret was logged:\n{logs}");
    assert!(logs.contains("environment registered") && logs.contains("deployment recorded"), "{logs}");

    // Removed: its events are refused as if it never existed, and its records are gone.
    let (status, _) = harness.admin(Method::DELETE, "/api/v1/environments/production", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = harness.admin(Method::DELETE, "/api/v1/environments/production", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = harness.admin(Method::GET, "/api/v1/environments/production/deployments", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body = event("deployment.started", "production", "d2", "running", "web:2").to_string().into_bytes();
    let (status, _) =
        harness.raw("/api/v1/environments/production/events", &[("x-gantry-signature", &hmac_hex(&second, &body))], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both!(an_environments_signing_secret_is_shown_once_and_never_again, secret_once);

async fn only_signed_events(harness: Harness) {
    let production = register(&harness, "production").await;
    let staging = register(&harness, "staging").await;
    let sender = Sender::new(&harness).await;
    let body = event("deployment.started", "production", "d1", "running", "web:2").to_string().into_bytes();
    let good = hmac_hex(&production, &body);

    // The answer to an environment that does not exist is the answer to every forgery.
    let nowhere = event("deployment.started", "nowhere", "d1", "running", "web:2").to_string().into_bytes();
    let (status, unknown) = sender.raw("nowhere", &nowhere, Some(&hmac_hex(&production, &nowhere))).await;
    assert_eq!(status, 401, "{unknown}");
    let mut tampered = body.clone();
    let position = tampered.windows(5).position(|window| window == b"web:2").unwrap();
    tampered[position + 4] = b'3';
    let forgeries: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("unsigned", body.clone(), None),
        ("an empty signature", body.clone(), Some(String::new())),
        ("a signature without its scheme", body.clone(), Some(good.trim_start_matches("sha256=").to_owned())),
        ("not hex", body.clone(), Some("sha256=not-hex".to_owned())),
        ("signed with a wrong secret", body.clone(), Some(hmac_hex("a secret someone guessed", &body))),
        ("signed with another environment's secret", body.clone(), Some(hmac_hex(&staging, &body))),
        ("a tampered body", tampered, Some(good.clone())),
    ];
    for (what, body, signature) in forgeries {
        let (status, answer) = sender.raw("production", &body, signature.as_deref()).await;
        assert_eq!((status, &answer), (401, &unknown), "{what}: the same answer as for an unknown environment");
    }

    // The deployer of production cannot write into staging, in either way it could try.
    let into_staging = event("deployment.started", "staging", "d9", "running", "web:666").to_string().into_bytes();
    let signed_by_production = hmac_hex(&production, &into_staging);
    let (status, answer) = sender.raw("staging", &into_staging, Some(&signed_by_production)).await;
    assert_eq!((status, &answer), (401, &unknown));
    let (status, answer) = sender.raw("production", &into_staging, Some(&signed_by_production)).await;
    assert_eq!(status, 400, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["field"], "environment", "{answer}");
    let mut mixed = event("deployment.started", "production", "d9", "running", "web:666");
    mixed["deployment"]["environment"] = json!("staging");
    let (status, answer) = sender.send("production", &production, &mixed).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("deployment")), "{answer}");

    // Unknown events are taken and ignored; one too large is refused before it is read.
    let paused = json!({ "event": "deployment.paused", "environment": "production", "app": "web" });
    let (status, answer) = sender.send("production", &production, &paused).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["changed"], false);
    assert!(answer["ignored"].as_str().unwrap().contains("deployment.paused"), "{answer}");
    let mut huge = event("deployment.started", "production", "d2", "running", "web:2");
    huge["deployment"]["reason"] = json!("x".repeat(100 * 1024));
    let huge = huge.to_string().into_bytes();
    let (status, answer) =
        harness.raw("/api/v1/environments/production/events", &[("x-gantry-signature", &hmac_hex(&production, &huge))], huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");

    for environment in ["production", "staging"] {
        let (_, deployments) = harness.admin(Method::GET, &format!("/api/v1/environments/{environment}/deployments"), None).await;
        assert_eq!(deployments, json!([]), "nothing refused was recorded in {environment}");
    }
    let (_, environments) = harness.admin(Method::GET, "/api/v1/environments", None).await;
    assert!(environments[1].get("last_event").is_none(), "staging never heard from its deployer: {environments}");

    // The genuine event is recorded.
    let (status, answer) = sender.raw("production", &body, Some(&good)).await;
    assert_eq!(status, 200, "{answer}");
}
both!(only_events_signed_with_the_environments_own_secret_are_recorded, only_signed_events);

async fn deployment_lifecycle(harness: Harness) {
    let secret = register(&harness, "production").await;
    let sender = Sender::new(&harness).await;
    let started = event("deployment.started", "production", "d1", "running", "web:2");
    let succeeded = event("deployment.succeeded", "production", "d1", "succeeded", "web:2");
    assert!(sender.changed("production", &secret, &started).await);
    assert!(!sender.changed("production", &secret, &started).await, "a retry changes nothing");
    assert!(sender.changed("production", &secret, &succeeded).await, "running → succeeded");
    assert!(!sender.changed("production", &secret, &succeeded).await);
    assert!(!sender.changed("production", &secret, &started).await, "the start arriving late never undoes the end");

    // The next deployment fails and is rolled back; its end arrives before its start.
    let mut failed = event("deployment.failed", "production", "d2", "failed", "web:3");
    failed["deployment"]["started_at"] = json!(STARTED + 60_000);
    failed["deployment"]["finished_at"] = json!(STARTED + 65_000);
    let mut late_start = event("deployment.started", "production", "d2", "running", "web:3");
    late_start["deployment"]["started_at"] = json!(STARTED + 60_000);
    let mut rolled_back = failed.clone();
    rolled_back["event"] = json!("deployment.rolled-back");
    assert!(sender.changed("production", &secret, &failed).await);
    assert!(!sender.changed("production", &secret, &late_start).await);
    assert!(sender.changed("production", &secret, &rolled_back).await);
    assert!(!sender.changed("production", &secret, &rolled_back).await);
    let drift = json!({ "event": "drift.detected", "environment": "production", "app": "web", "owner_team": "web-team",
        "drift": ["1 of 2 running"] });
    assert!(sender.changed("production", &secret, &drift).await);
    assert!(!sender.changed("production", &secret, &drift).await, "a redelivered drift report");

    let (status, deployments) = harness.admin(Method::GET, "/api/v1/environments/production/deployments", None).await;
    assert_eq!(status, StatusCode::OK, "{deployments}");
    let summary: Vec<(&str, &str, bool)> = deployments
        .as_array()
        .unwrap()
        .iter()
        .map(|deployment| {
            (deployment["id"].as_str().unwrap(), deployment["outcome"].as_str().unwrap(), deployment["rolled_back"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(summary, [("d2", "failed", true), ("d1", "succeeded", false)], "newest first: {deployments}");
    let first = &deployments[1];
    assert_eq!(first["author"], "Ada <ada@example.com>");
    assert_eq!(first["revision"], REVISION);
    assert_eq!((first["started"].as_i64(), first["finished"].as_i64()), (Some(1_767_225_600), Some(1_767_225_602)));
    assert_eq!(first["duration_ms"], 2500);
    assert_eq!(first["owner_team"], "web-team");
    assert_eq!(deployments[0]["reason"], "did not become healthy");
    let (_, only_web) = harness.admin(Method::GET, "/api/v1/environments/production/deployments?app=web&limit=1", None).await;
    assert_eq!(only_web.as_array().map(Vec::len), Some(1), "{only_web}");
    let (_, none) = harness.admin(Method::GET, "/api/v1/environments/production/deployments?app=api", None).await;
    assert_eq!(none, json!([]));
    let (status, answer) = harness.admin(Method::GET, "/api/v1/environments/production/deployments?limit=0", None).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")), "{answer}");

    let (status, apps) = harness.admin(Method::GET, "/api/v1/environments/production/apps", None).await;
    assert_eq!(status, StatusCode::OK, "{apps}");
    let web = &apps[0];
    assert_eq!((web["app"].as_str(), web["owner_team"].as_str()), (Some("web"), Some("web-team")), "{apps}");
    assert_eq!((web["current"]["id"].as_str(), web["current"]["to_image"].as_str()), (Some("d1"), Some("web:2")), "what runs: {web}");
    assert_eq!(
        (web["latest"]["id"].as_str(), web["latest"]["outcome"].as_str(), web["latest"]["rolled_back"].as_bool()),
        (Some("d2"), Some("failed"), Some(true)),
        "what happened last: {web}"
    );
    assert_eq!(web["drift"]["drift"], json!(["1 of 2 running"]));
    assert!(web["current"].get("build").is_none(), "a tag names no one build: {web}");

    let (_, environments) = harness.admin(Method::GET, "/api/v1/environments", None).await;
    let production = &environments[0];
    assert_eq!((production["deployments"].as_i64(), production["apps"].as_i64()), (Some(2), Some(1)), "{production}");
    assert!(production["last_event"].as_i64().is_some(), "{production}");
}
both!(a_deployment_is_recorded_once_and_never_goes_back_to_an_older_state, deployment_lifecycle);

async fn build_of_a_deployment(harness: Harness) {
    let (agent, job) = leased_release(&harness).await;
    let (status, answer) = report(&harness, agent, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, build) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    let secret = register(&harness, "production").await;
    let sender = Sender::new(&harness).await;
    let image = format!("127.0.0.1:5000/acme/app:1.0@{DIGEST}");
    assert!(sender.changed("production", &secret, &event("deployment.succeeded", "production", "d1", "succeeded", &image)).await);

    let expected = json!({
        "repo": "acme/app", "build": 1, "commit": build["commit"], "url": "http://gantry.test/repos/acme/app/builds/1",
    });
    let (_, apps) = harness.admin(Method::GET, "/api/v1/environments/production/apps", None).await;
    assert_eq!(apps[0]["current"]["build"], expected, "{apps}");
    assert_eq!(apps[0]["latest"]["build"], expected, "{apps}");
    let (_, deployments) = harness.admin(Method::GET, "/api/v1/environments/production/deployments", None).await;
    assert_eq!(deployments[0]["build"], expected, "{deployments}");

    // Someone who cannot read the repository sees the deployment, not the build.
    let stranger = harness.user("mallory").await;
    let (status, apps) = harness.call(Method::GET, "/api/v1/environments/production/apps", Some(&stranger), None).await;
    assert_eq!(status, StatusCode::OK, "{apps}");
    assert_eq!(apps[0]["current"]["to_image"], image.as_str());
    assert!(apps[0]["current"].get("build").is_none() && !apps.to_string().contains("acme/app\""), "{apps}");
    let reader = harness.user("rita").await;
    harness.admin(Method::PUT, "/api/v1/repos/acme/app/members/rita", Some(json!({ "role": "read" }))).await;
    let (_, apps) = harness.call(Method::GET, "/api/v1/environments/production/apps", Some(&reader), None).await;
    assert_eq!(apps[0]["current"]["build"], expected, "{apps}");
}
both!(a_deployed_image_links_to_the_build_that_produced_it, build_of_a_deployment);

/// A second image of `acme/app`, built from a later commit.
const LATER_DIGEST: &str = "sha256:7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f";

async fn changelog(harness: &Harness, token: Option<&str>, from: &str, to: &str) -> (StatusCode, Value) {
    let query = format!("from={}&to={}", urlencoding(from), urlencoding(to));
    match token {
        Some(token) => harness.call(Method::GET, &format!("/api/v1/apps/web/changelog?{query}"), Some(token), None).await,
        None => harness.admin(Method::GET, &format!("/api/v1/apps/web/changelog?{query}"), None).await,
    }
}

/// Enough of percent-encoding for the versions these tests write (`:`, `/`, `@`).
fn urlencoding(text: &str) -> String {
    text.replace('%', "%25").replace(':', "%3A").replace('/', "%2F").replace('@', "%40")
}

fn titles(commits: &Value) -> Vec<&str> {
    commits.as_array().unwrap().iter().map(|commit| commit["title"].as_str().unwrap()).collect()
}

async fn changelog_between_versions(harness: Harness) {
    // Build 1 publishes the image production runs; two commits later, build 2 publishes the
    // image staging runs.
    let (agent, first_job) = leased_release(&harness).await;
    report(&harness, agent, first_job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    let work = harness.dir.path().join("work");
    let fix = crate::harness::commit(&work, &[("src/login.rs", "fn login() {}\n")], "Fix the login redirect\n\nIt lost the query.");
    let search = crate::harness::commit(&work, &[("src/search.rs", "fn search() {}\n")], "Add search");
    crate::harness::git(&work, &["push", "-q", "origin", "main"]);
    let (status, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    assert_eq!(build["commit"], search.as_str());
    let second_job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await["id"].as_i64().unwrap();
    report(&harness, agent, second_job, pushed("image", "127.0.0.1:5000/acme/app", LATER_DIGEST)).await;

    let sender = Sender::new(&harness).await;
    let production = register(&harness, "production").await;
    let staging = register(&harness, "staging").await;
    let old_image = format!("127.0.0.1:5000/acme/app:1.0@{DIGEST}");
    let new_image = format!("127.0.0.1:5000/acme/app:1.1@{LATER_DIGEST}");
    assert!(sender.changed("production", &production, &event("deployment.succeeded", "production", "p1", "succeeded", &old_image)).await);
    assert!(sender.changed("staging", &staging, &event("deployment.succeeded", "staging", "s1", "succeeded", &new_image)).await);

    // Promoting staging to production would bring in the two commits, newest first, with the
    // builds that ran on them.
    let (status, answer) = changelog(&harness, None, "production", "staging").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["repo"], "acme/app");
    assert_eq!(titles(&answer["added"]), ["Add search", "Fix the login redirect"], "{answer}");
    assert_eq!(answer["removed"], json!([]));
    assert_eq!(answer["truncated"], false);
    let added = &answer["added"];
    assert_eq!((added[0]["sha"].as_str(), added[1]["sha"].as_str()), (Some(search.as_str()), Some(fix.as_str())));
    assert_eq!(added[1]["message"], "Fix the login redirect\n\nIt lost the query.");
    assert_eq!(added[1]["author"], "Test <test@example.com>");
    assert!(added[1]["committed"].as_i64().unwrap() > 1_700_000_000, "{added}");
    assert_eq!(
        added[0]["builds"],
        json!([{ "number": 2, "event": "manual", "state": "running", "url": "http://gantry.test/repos/acme/app/builds/2" }])
    );
    assert_eq!(added[1]["builds"], json!([]), "no build ran on the middle commit");
    assert_eq!(
        (answer["from"]["environment"].as_str(), answer["from"]["deployment"].as_str(), answer["from"]["build"]["build"].as_i64()),
        (Some("production"), Some("p1"), Some(1))
    );
    assert_eq!(
        (answer["to"]["image"].as_str(), answer["to"]["build"]["commit"].as_str()),
        (Some(new_image.as_str()), Some(search.as_str()))
    );

    // The other way round (a rollback), the same commits are taken out.
    let (_, back) = changelog(&harness, None, "staging", "production").await;
    assert_eq!((titles(&back["added"]), titles(&back["removed"])), (vec![], vec!["Add search", "Fix the login redirect"]), "{back}");
    // A deployment by its id and an image by its digest name the same versions.
    let (status, same) = changelog(&harness, None, "production:p1", &format!("127.0.0.1:5000/acme/app@{LATER_DIGEST}")).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["added"], answer["added"]);
    let (_, nothing) = changelog(&harness, None, "staging", "staging").await;
    assert_eq!((nothing["added"].clone(), nothing["removed"].clone()), (json!([]), json!([])));

    // Mistakes are named.
    let (status, answer) = changelog(&harness, None, "nowhere", "staging").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no environment nowhere"), "{answer}");
    let (status, answer) = changelog(&harness, None, "production:p9", "staging").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("production has no deployment p9 of web"), "{answer}");
    let qa = register(&harness, "qa").await;
    assert!(sender.changed("qa", &qa, &event("deployment.succeeded", "qa", "q1", "succeeded", "127.0.0.1:5000/acme/app:latest")).await);
    let (status, answer) = changelog(&harness, None, "qa", "staging").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "from");
    assert!(answer["error"].as_str().unwrap().contains("not pinned by digest"), "{answer}");
    let unknown = "127.0.0.1:5000/acme/app@sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let (status, answer) = changelog(&harness, None, "staging", unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no build you can read published"), "{answer}");

    // Someone who cannot read the repository learns nothing of its commits.
    let stranger = harness.user("mallory").await;
    let (status, answer) = changelog(&harness, Some(&stranger), "production", "staging").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(!answer.to_string().contains("Add search") && !answer.to_string().contains(&search), "{answer}");
    let reader = harness.user("rita").await;
    harness.admin(Method::PUT, "/api/v1/repos/acme/app/members/rita", Some(json!({ "role": "read" }))).await;
    let (status, answer) = changelog(&harness, Some(&reader), "production", "staging").await;
    assert_eq!((status, titles(&answer["added"])), (StatusCode::OK, vec!["Add search", "Fix the login redirect"]));
}
both!(the_changelog_between_two_versions_lists_the_commits_and_their_builds, changelog_between_versions);

/// A deployment event of `web` at a moment of its own (Unix ms), finished a minute later.
fn deployment_at(name: &str, id: &str, kind: &str, outcome: &str, from_image: Option<&str>, to_image: &str, started: i64) -> Value {
    let mut deployment = json!({
        "id": id, "environment": "production", "app": "web", "kind": kind, "to_image": to_image,
        "revision": REVISION, "author": "Ada <ada@example.com>", "started_at": started, "outcome": outcome,
    });
    if let Some(from_image) = from_image {
        deployment["from_image"] = json!(from_image);
    }
    if outcome != "running" {
        deployment["finished_at"] = json!(started + 60_000);
    }
    json!({ "event": name, "environment": "production", "app": "web", "owner_team": "web-team", "deployment": deployment })
}

async fn delivery_metrics(harness: Harness) {
    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    // Build 1 (the first image) on the first commit; two commits made four days ago; build 2
    // (the second image) on the last of them.
    let (agent, first_job) = leased_release(&harness).await;
    report(&harness, agent, first_job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    let work = harness.dir.path().join("work");
    let four_days_ago = format!("@{} +0000", (now - 4 * DAY) / 1000);
    for (file, message) in [("src/login.rs", "Fix the login redirect"), ("src/search.rs", "Add search")] {
        std::fs::create_dir_all(work.join("src")).unwrap();
        std::fs::write(work.join(file), "x\n").unwrap();
        crate::harness::git(&work, &["add", "-A"]);
        let output = std::process::Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "--allow-empty", "-m", message])
            .env("GIT_COMMITTER_DATE", &four_days_ago)
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    crate::harness::git(&work, &["push", "-q", "origin", "main"]);
    let (status, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    let second_job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await["id"].as_i64().unwrap();
    report(&harness, agent, second_job, pushed("image", "127.0.0.1:5000/acme/app", LATER_DIGEST)).await;
    let old = format!("127.0.0.1:5000/acme/app:1.0@{DIGEST}");
    let new = format!("127.0.0.1:5000/acme/app:1.1@{LATER_DIGEST}");

    // Three days ago web was created; two days ago it was updated, and that went live but was
    // rolled back half an hour later; a day ago an update failed, and the next, an hour later,
    // succeeded. An old deployment, before the window, counts for nothing.
    let secret = register(&harness, "production").await;
    let sender = Sender::new(&harness).await;
    let events = [
        deployment_at("deployment.succeeded", "p0", "create", "succeeded", None, &old, now - 40 * DAY),
        deployment_at("deployment.succeeded", "p1", "create", "succeeded", None, &old, now - 3 * DAY),
        deployment_at("deployment.succeeded", "p2", "update", "succeeded", Some(&old), &new, now - 2 * DAY),
        deployment_at("deployment.rolled-back", "p2", "update", "succeeded", Some(&old), &new, now - 2 * DAY),
        deployment_at("deployment.succeeded", "p3", "rollback", "succeeded", Some(&new), &old, now - 2 * DAY + 30 * MINUTE),
        deployment_at("deployment.failed", "p4", "update", "failed", Some(&old), &new, now - DAY),
        deployment_at("deployment.succeeded", "p5", "update", "succeeded", Some(&old), &new, now - DAY + HOUR),
    ];
    for event in &events {
        assert!(sender.changed("production", &secret, event).await, "{event}");
    }

    let (status, metrics) = harness.admin(Method::GET, "/api/v1/environments/production/metrics?app=web&days=30", None).await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    assert_eq!(
        (metrics["environment"].as_str(), metrics["app"].as_str(), metrics["days"].as_u64()),
        (Some("production"), Some("web"), Some(30))
    );
    // Three changes went live in 30 days: one a week or less, more than one a month.
    let frequency = &metrics["deployment_frequency"];
    assert_eq!((frequency["deployments"].as_u64(), frequency["level"].as_str()), (Some(3), Some("medium")), "{metrics}");
    // p1 brought the first commit (made just now, after the deployment: 0); p2 and p5 each
    // brought the two commits of four days ago.
    let lead = &metrics["lead_time"];
    assert_eq!((lead["commits"].as_u64(), lead["unlinked_deployments"].as_u64()), (Some(5), Some(0)), "{metrics}");
    let median = lead["median_seconds"].as_i64().unwrap();
    assert!((2 * DAY / 1000..2 * DAY / 1000 + 600).contains(&median), "two days from commit to p2 live: {median}");
    assert_eq!(lead["level"], "high");
    // p2 (rolled back) and p4 (failed) of four changes that ended.
    let rate = &metrics["change_failure_rate"];
    assert_eq!(
        (rate["failures"].as_u64(), rate["deployments"].as_u64(), rate["rate"].as_f64()),
        (Some(2), Some(4), Some(0.5)),
        "{metrics}"
    );
    assert_eq!(rate["level"], "low");
    // p2 was restored by the rollback half an hour after it went live, p4 by p5 an hour later.
    let restore = &metrics["time_to_restore"];
    assert_eq!((restore["failures"].as_u64(), restore["restored"].as_u64()), (Some(2), Some(2)), "{metrics}");
    assert_eq!(restore["median_seconds"].as_i64(), Some(30 * 60), "{metrics}");
    assert_eq!(restore["level"], "elite");

    // The same keys, but lead time (which reads git), as Prometheus gauges over 30 days.
    let (status, scraped) = harness.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let scraped = scraped.as_str().unwrap();
    for line in [
        "gantry_delivery_deployments{environment=\"production\",app=\"web\"} 3",
        "gantry_delivery_failures{environment=\"production\",app=\"web\"} 2",
        "gantry_delivery_change_failure_rate{environment=\"production\",app=\"web\"} 0.5",
        "gantry_delivery_time_to_restore_seconds{environment=\"production\",app=\"web\"} 1800",
        "# TYPE gantry_delivery_change_failure_rate gauge",
    ] {
        assert!(scraped.lines().any(|scraped| scraped == line), "{line} in:\n{scraped}");
    }

    // The whole environment (only web here) and a longer window that takes in p0.
    let (_, all) = harness.admin(Method::GET, "/api/v1/environments/production/metrics?days=60", None).await;
    assert_eq!(all["deployment_frequency"]["deployments"], 4, "{all}");
    assert!(all.get("app").is_none(), "{all}");
    let (_, other) = harness.admin(Method::GET, "/api/v1/environments/production/metrics?app=api", None).await;
    assert_eq!((other["deployment_frequency"]["deployments"].as_u64(), other["lead_time"].get("level")), (Some(0), None), "{other}");

    // Someone who cannot read the repository sees the counts, not what the commits were.
    let stranger = harness.user("mallory").await;
    let (status, theirs) = harness.call(Method::GET, "/api/v1/environments/production/metrics?app=web", Some(&stranger), None).await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(
        (theirs["lead_time"]["commits"].as_u64(), theirs["lead_time"]["unlinked_deployments"].as_u64()),
        (Some(0), Some(3)),
        "{theirs}"
    );
    assert_eq!(theirs["change_failure_rate"], metrics["change_failure_rate"]);

    for (query, field) in [("days=0", "days"), ("days=366", "days")] {
        let (status, answer) = harness.admin(Method::GET, &format!("/api/v1/environments/production/metrics?{query}"), None).await;
        assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{query}: {answer}");
    }
    let (status, _) = harness.admin(Method::GET, "/api/v1/environments/nowhere/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both!(delivery_metrics_come_from_the_deployments_and_the_commits_they_brought, delivery_metrics);

async fn deployment_notifications(harness: Harness) {
    let recorder = crate::harness::Recorder::default();
    let base = recorder.start().await;
    let (agent, job) = leased_release(&harness).await;
    report(&harness, agent, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    let deploys = json!({
        "kind": "webhook", "url": format!("{base}/deploys"), "events": ["deployment.succeeded", "deployment.failed", "drift.detected"],
    });
    let (status, answer) = harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(deploys)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let builds_only = json!({ "kind": "webhook", "url": format!("{base}/builds") });
    harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(builds_only)).await;
    let (status, answer) = harness
        .admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(json!({ "kind": "webhook", "url": base, "events": ["deploy.done"] })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("deployment.succeeded"), "the known events are listed: {answer}");

    let secret = register(&harness, "production").await;
    let sender = Sender::new(&harness).await;
    let image = format!("127.0.0.1:5000/acme/app:1.0@{DIGEST}");
    // Not subscribed: the start. Subscribed: the success, once however often it is delivered.
    assert!(sender.changed("production", &secret, &event("deployment.started", "production", "d1", "running", &image)).await);
    let succeeded = event("deployment.succeeded", "production", "d1", "succeeded", &image);
    assert!(sender.changed("production", &secret, &succeeded).await);
    assert!(!sender.changed("production", &secret, &succeeded).await);
    // An image no build pushed (a tag) concerns no repository.
    assert!(
        sender
            .changed("production", &secret, &event("deployment.failed", "production", "d2", "failed", "127.0.0.1:5000/acme/app:2.0"))
            .await
    );
    // Drift of the application, whose running image build 1 pushed.
    let drift = json!({ "event": "drift.detected", "environment": "production", "app": "web", "owner_team": "web-team", "drift": ["1 of 2 running"] });
    assert!(sender.changed("production", &secret, &drift).await);

    let told = recorder.wait_for("/deploys", 2).await;
    let events: Vec<&str> = told.iter().map(|(body, _)| body["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["deployment.succeeded", "drift.detected"], "{told:?}");
    let (success, _) = &told[0];
    assert_eq!(
        (success["repository"].as_str(), success["build"].as_i64(), success["build_url"].as_str()),
        (Some("acme/app"), Some(1), Some("http://gantry.test/repos/acme/app/builds/1"))
    );
    assert_eq!((success["deployment"]["id"].as_str(), success["deployment"]["to_image"].as_str()), (Some("d1"), Some(image.as_str())));
    assert_eq!(told[1].0["drift"], json!(["1 of 2 running"]));
    assert!(recorder.to("/builds").is_empty(), "a notifier for builds hears nothing of deployments");
}
both!(a_deployment_of_a_repositorys_image_is_told_to_its_notifiers_once, deployment_notifications);
