//! Promotions: a person with write on the repository that built an image asks to run in one
//! environment exactly what another runs; the target environment's rules (sent by its deployer
//! on every sync) decide where it may come from, how long it must have soaked, which checks
//! its build must have passed, when changes are frozen, and who approves; the one who asked
//! never approves; a request not approved in time expires, rejected and recorded; the deployer
//! is handed what is approved and reports what it did. Each change is told to the notifiers
//! that asked for it.
//!
//! Deployers' syncs and events travel over real HTTP, signed as a deployer signs them.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::artifacts::{DIGEST, hmac_hex, leased_release, pushed, report};
use crate::both;
use crate::harness::{Harness, Recorder};

const REVISION: &str = "3333333333333333333333333333333333333333";

fn image() -> String {
    format!("127.0.0.1:5000/acme/app:1.0@{DIGEST}")
}

fn now_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// A deployer of the test, over HTTP to a served harness.
struct Deployer {
    base: String,
    http: reqwest::Client,
    environment: String,
    secret: String,
}

impl Deployer {
    async fn register(harness: &Harness, base: &str, environment: &str) -> Deployer {
        let (status, answer) = harness.admin(Method::POST, "/api/v1/environments", Some(json!({ "name": environment }))).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        Deployer {
            base: base.to_owned(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            environment: environment.to_owned(),
            secret: answer["secret"].as_str().unwrap().to_owned(),
        }
    }

    async fn post(&self, path: &str, body: &Value, secret: &str) -> (u16, Value) {
        let body = body.to_string().into_bytes();
        let response = self
            .http
            .post(format!("{}/api/v1/environments/{}/{path}", self.base, self.environment))
            .header("content-type", "application/json")
            .header("x-gantry-signature", hmac_hex(secret, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Reports that `image` of `web` was deployed and healthy since `finished_at`.
    async fn deployed(&self, id: &str, image: &str, finished_at: u64) {
        let deployment = json!({
            "id": id, "environment": self.environment, "app": "web", "kind": "update", "to_image": image,
            "revision": REVISION, "author": "Ada <ada@example.com>", "started_at": finished_at - 2000, "finished_at": finished_at,
            "outcome": "succeeded",
        });
        let event = json!({ "event": "deployment.succeeded", "environment": self.environment, "app": "web", "deployment": deployment });
        let (status, answer) = self.post("events", &event, &self.secret).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// Syncs with `rules` and `results`: the status and the answer.
    async fn sync(&self, rules: Value, results: Value) -> (u16, Value) {
        let body =
            json!({ "environment": self.environment, "revision": REVISION, "rules": rules, "sent_at": now_ms(), "results": results });
        self.post("promotions/sync", &body, &self.secret).await
    }

    /// As `sync`, insisting on 200: the ids of the promotions ready, with who approved each.
    async fn ready(&self, rules: Value, results: Value) -> Vec<(i64, Vec<String>)> {
        let (status, answer) = self.sync(rules, results).await;
        assert_eq!(status, 200, "{answer}");
        answer["ready"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ready| {
                assert_eq!(ready["image"], image().as_str(), "{ready}");
                let approved_by = ready["approved_by"]
                    .as_array()
                    .map_or_else(Vec::new, |by| by.iter().map(|login| login.as_str().unwrap().to_owned()).collect());
                (ready["id"].as_i64().unwrap(), approved_by)
            })
            .collect()
    }
}

/// `acme/app` with build 1, which pushed the image and whose workflow succeeded; staging and
/// production registered, web running the image in staging since an hour; users: ada and bob
/// with write on acme/app, rita with read, mallory with nothing.
struct Scene {
    staging: Deployer,
    production: Deployer,
    ada: String,
    bob: String,
    rita: String,
    mallory: String,
}

async fn scene(harness: &Harness) -> Scene {
    let (agent, job) = leased_release(harness).await;
    let (status, answer) = report(harness, agent, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    harness.agent_ok(&format!("/jobs/{job}/done"), json!({ "agent_id": agent, "state": "success", "steps": [] })).await;
    let base = harness.serve().await;
    let staging = Deployer::register(harness, &base, "staging").await;
    let production = Deployer::register(harness, &base, "production").await;
    staging.deployed("s1", &image(), now_ms() - 3_600_000).await;
    let mut users = Vec::new();
    for (login, role) in [("ada", Some("write")), ("bob", Some("write")), ("rita", Some("read")), ("mallory", None)] {
        let token = harness.user(login).await;
        if let Some(role) = role {
            let (status, answer) =
                harness.admin(Method::PUT, &format!("/api/v1/repos/acme/app/members/{login}"), Some(json!({ "role": role }))).await;
            assert!(status.is_success(), "{answer}");
        }
        users.push(token);
    }
    let [ada, bob, rita, mallory] = <[String; 4]>::try_from(users).unwrap();
    Scene { staging, production, ada, bob, rita, mallory }
}

fn rules(extra: Value) -> Value {
    let mut rules = json!({ "open": true, "approvals": 1, "timeout_ms": 86_400_000 });
    for (key, value) in extra.as_object().unwrap() {
        rules[key] = value.clone();
    }
    rules
}

async fn request(harness: &Harness, token: &str, from: &str) -> (StatusCode, Value) {
    let body = json!({ "app": "web", "from": from, "comment": "ship it" });
    harness.call(Method::POST, "/api/v1/environments/production/promotions", Some(token), Some(body)).await
}

async fn decide(harness: &Harness, token: &str, id: i64, verb: &str) -> (StatusCode, Value) {
    harness.call(Method::POST, &format!("/api/v1/promotions/{id}/{verb}"), Some(token), Some(json!({ "comment": "looks good" }))).await
}

async fn approval_by_a_second_person(harness: Harness) {
    let scene = scene(&harness).await;
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let events = json!(["promotion.requested", "promotion.approved", "promotion.applied", "promotion.expired", "promotion.rejected"]);
    let (status, answer) = harness
        .admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(json!({ "kind": "webhook", "url": base, "events": events })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Until production's deployer syncs, nobody knows its rules: nothing is promoted blind.
    let (status, answer) = request(&harness, &scene.ada, "staging").await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("has not synced"), "{answer}");
    assert!(scene.production.ready(rules(json!({})), json!([])).await.is_empty());

    // Only who may write to the repository that built the image asks.
    for token in [&scene.rita, &scene.mallory] {
        let (status, answer) = request(&harness, token, "staging").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    }
    let (status, promotion) = request(&harness, &scene.ada, "staging").await;
    assert_eq!(status, StatusCode::CREATED, "{promotion}");
    let id = promotion["id"].as_i64().unwrap();
    assert_eq!(
        (
            promotion["state"].as_str(),
            promotion["image"].as_str(),
            promotion["requested_by"].as_str(),
            promotion["approvals_required"].as_i64()
        ),
        (Some("pending"), Some(image().as_str()), Some("ada"), Some(1)),
        "{promotion}"
    );
    assert_eq!(promotion["build"]["repo"], "acme/app", "{promotion}");
    let (status, answer) = request(&harness, &scene.bob, "staging").await;
    assert_eq!(status, StatusCode::CONFLICT, "one open promotion per application and environment: {answer}");
    assert!(scene.production.ready(rules(json!({})), json!([])).await.is_empty(), "nothing is handed out before it is approved");

    // The one who asked never approves; a reader or a stranger neither.
    for token in [&scene.ada, &scene.rita, &scene.mallory] {
        let (status, answer) = decide(&harness, token, id, "approve").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    }
    let (status, approved) = decide(&harness, &scene.bob, id, "approve").await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved", "{approved}");
    assert_eq!(approved["decisions"][0]["user"], "bob");
    assert_eq!(approved["decisions"][0]["comment"], "looks good");
    let (status, answer) = decide(&harness, &scene.bob, id, "approve").await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once: {answer}");

    // The deployer is handed it, with who approved, until it reports what it did.
    assert_eq!(scene.production.ready(rules(json!({})), json!([])).await, [(id, vec!["bob".to_owned()])]);
    let commit = "4444444444444444444444444444444444444444";
    let applied = json!([{ "id": id, "outcome": "applied", "commit": commit }]);
    assert!(scene.production.ready(rules(json!({})), applied.clone()).await.is_empty());
    assert!(scene.production.ready(rules(json!({})), applied).await.is_empty(), "a result reported twice changes nothing");
    let (_, shown) = harness.call(Method::GET, &format!("/api/v1/promotions/{id}"), Some(&scene.rita), None).await;
    assert_eq!((shown["state"].as_str(), shown["commit"].as_str()), (Some("applied"), Some(commit)), "{shown}");
    // Another environment's deployer cannot report on it.
    let (_, other) = scene.staging.sync(rules(json!({})), json!([{ "id": id, "outcome": "failed", "reason": "no" }])).await;
    assert_eq!(other["ready"], json!([]));
    let (_, shown) = harness.admin(Method::GET, &format!("/api/v1/promotions/{id}"), None).await;
    assert_eq!(shown["state"], "applied");

    // Strangers see the promotion, not the build behind it.
    let (status, shown) = harness.call(Method::GET, &format!("/api/v1/promotions/{id}"), Some(&scene.mallory), None).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(shown.get("build").is_none() && shown["image"] == image().as_str(), "{shown}");
    // A comment has a limit.
    let long = json!({ "app": "web", "from": "staging", "comment": "x".repeat(2001) });
    let (status, answer) = harness.call(Method::POST, "/api/v1/environments/production/promotions", Some(&scene.ada), Some(long)).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("comment")), "{answer}");
    // An image no build of this server pushed: only a server admin may promote it.
    let unknown = "127.0.0.1:5000/acme/app:2.0@sha256:5555555555555555555555555555555555555555555555555555555555555555";
    scene.staging.deployed("s2", unknown, now_ms() - 3_600_000).await;
    let (status, answer) = request(&harness, &scene.ada, "staging").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("only a server administrator"), "{answer}");
    let (status, answer) =
        harness.admin(Method::POST, "/api/v1/environments/production/promotions", Some(json!({ "app": "web", "from": "staging" }))).await;
    assert_eq!((status, answer["image"].as_str()), (StatusCode::CREATED, Some(unknown)), "{answer}");

    let told = recorder.wait_for("/", 3).await;
    let mut kinds: Vec<&str> = told.iter().map(|(body, _)| body["event"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["promotion.applied", "promotion.approved", "promotion.requested"], "{told:?}");
    assert_eq!((told[0].0["promotion"]["id"].as_i64(), told[0].0["repository"].as_str()), (Some(id), Some("acme/app")));
}
both!(a_promotion_is_approved_by_a_second_person_and_handed_to_the_deployer_once, approval_by_a_second_person);

async fn expiry(harness: Harness) {
    let scene = scene(&harness).await;
    scene.production.ready(rules(json!({ "timeout_ms": 1 })), json!([])).await;
    let (status, promotion) = request(&harness, &scene.ada, "staging").await;
    assert_eq!(status, StatusCode::CREATED, "{promotion}");
    let id = promotion["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let expired = loop {
        let (_, shown) = harness.admin(Method::GET, &format!("/api/v1/promotions/{id}"), None).await;
        if shown["state"] == "expired" {
            break shown;
        }
        assert!(std::time::Instant::now() < deadline, "never expired: {shown}");
        tokio::task::yield_now().await;
    };
    assert_eq!(expired["reason"], "not approved in time");
    let (status, answer) = decide(&harness, &scene.bob, id, "approve").await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("expired"), "{answer}");
    assert!(scene.production.ready(rules(json!({})), json!([])).await.is_empty());
    let (_, listed) = harness.admin(Method::GET, "/api/v1/environments/production/promotions?state=expired", None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // A rejection ends a request at once; the one who asked may withdraw theirs.
    let (_, promotion) = request(&harness, &scene.ada, "staging").await;
    let id = promotion["id"].as_i64().unwrap();
    scene.production.ready(rules(json!({})), json!([])).await;
    let (status, rejected) = decide(&harness, &scene.ada, id, "reject").await;
    assert_eq!((status, rejected["state"].as_str()), (StatusCode::OK, Some("rejected")), "{rejected}");
    assert_eq!(rejected["reason"], "rejected by ada");
}
both!(a_promotion_not_approved_in_time_expires_rejected_and_recorded, expiry);

async fn gates(harness: Harness) {
    let scene = scene(&harness).await;
    let now = now_ms();
    let refused = |rules: Value, field: &'static str, words: &'static str| {
        let harness = &harness;
        let scene = &scene;
        async move {
            scene.production.ready(rules, json!([])).await;
            let (status, answer) = request(harness, &scene.ada, "staging").await;
            assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{answer}");
            assert!(answer["error"].as_str().unwrap().contains(words), "{words} in {answer}");
        }
    };
    refused(rules(json!({ "open": false })), "environment", "takes no promotions").await;
    refused(rules(json!({ "from": ["qa"] })), "from", "from qa only, not from staging").await;
    refused(rules(json!({ "soak_ms": 2 * 3_600_000 })), "from", "asks for 2h (soak)").await;
    refused(rules(json!({ "checks": ["security-scan"] })), "from", "no workflow `security-scan`").await;
    let freeze = json!([{ "from_ms": now - 1000, "to_ms": now + 3_600_000, "reason": "year end" }]);
    refused(rules(json!({ "freezes": freeze })), "environment", "change freeze is in force").await;
    let (status, answer) = harness
        .call(
            Method::POST,
            "/api/v1/environments/production/promotions",
            Some(&scene.ada),
            Some(json!({ "app": "api", "from": "staging" })),
        )
        .await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("app")), "{answer}");

    // The build's workflow passed: a check naming it is met.
    let (_, build) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1", None).await;
    let workflow = build["workflows"][0]["name"].as_str().unwrap().to_owned();
    scene.production.ready(rules(json!({ "checks": [workflow], "approvals": 0 })), json!([])).await;
    let (status, promotion) = request(&harness, &scene.ada, "staging").await;
    assert_eq!((status, promotion["state"].as_str()), (StatusCode::CREATED, Some("approved")), "no approval asked: {promotion}");

    // Approved before a freeze, it waits for the freeze to end.
    let id = promotion["id"].as_i64().unwrap();
    assert!(scene.production.ready(rules(json!({ "freezes": freeze })), json!([])).await.is_empty());
    assert_eq!(scene.production.ready(rules(json!({})), json!([])).await, [(id, vec![])]);
}
both!(a_promotion_is_held_to_where_it_comes_from_soak_checks_and_freezes, gates);

async fn sync_is_signed(harness: Harness) {
    let scene = scene(&harness).await;
    let body = json!({ "environment": "production", "revision": REVISION, "rules": rules(json!({})), "sent_at": now_ms() });
    let (status, _) = scene.production.post("promotions/sync", &body, &scene.staging.secret).await;
    assert_eq!(status, 401, "another environment's secret");
    let stale = json!({ "environment": "production", "revision": REVISION, "rules": rules(json!({})), "sent_at": now_ms() - 3_600_000 });
    let (status, answer) = scene.production.post("promotions/sync", &stale, &scene.production.secret).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("sent_at")), "{answer}");
    let elsewhere = json!({ "environment": "staging", "revision": REVISION, "rules": rules(json!({})), "sent_at": now_ms() });
    let (status, answer) = scene.production.post("promotions/sync", &elsewhere, &scene.production.secret).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("environment")), "{answer}");
    let (status, answer) = scene.production.sync(rules(json!({ "timeout_ms": 0 })), json!([])).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("rules")), "{answer}");
    let (status, answer) = scene.production.sync(rules(json!({})), json!([])).await;
    assert_eq!(status, 200, "{answer}");
}
both!(only_the_environments_own_deployer_syncs_its_promotions, sync_is_signed);
