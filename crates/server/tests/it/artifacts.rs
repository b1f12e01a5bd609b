//! Artifacts: the images an agent reports a build step pushed are recorded with the build,
//! listed with their provenance, found again by digest by whoever may read the repository,
//! and announced, signed, to the repository's delivery webhooks. An agent cannot make a build
//! announce an image the build was not planned to push.

use axum::http::{Method, StatusCode};
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Harness, Recorder, git_repo};

const RELEASE: &str = "\
steps:
  image:
    image: plugins/docker
    settings:
      repo: 127.0.0.1:5000/acme/app
      tags: [latest, '1.0']
  test:
    image: gantry-test/busybox:latest
    commands:
      - echo hello
";
pub(crate) const DIGEST: &str = "sha256:4d1c1ef2a8c7e6f1b3d2e9c4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e";
const PROVENANCE_DIGEST: &str = "sha256:9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";
const SIGNING_SECRET: &str = "a delivery secret of some length";

/// Repository `acme/app` with the release pipeline, build 1 started and leased by an agent:
/// (agent id, job id).
pub(crate) async fn leased_release(harness: &Harness) -> (i64, i64) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", RELEASE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (status, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    let agent = harness.register_agent("builder", json!({})).await;
    let job = harness.agent_ok("/lease", json!({ "agent_id": agent })).await;
    (agent, job["id"].as_i64().unwrap())
}

pub(crate) fn pushed(step: &str, repository: &str, digest: &str) -> Value {
    json!({
        "step": step,
        "repository": repository,
        "tags": ["latest", "1.0"],
        "digest": digest,
        "size": 2_097_152,
        "provenance": { "_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1" },
        "provenance_digest": PROVENANCE_DIGEST,
    })
}

pub(crate) async fn report(harness: &Harness, agent: i64, job: i64, published: Value) -> (StatusCode, Value) {
    harness.agent(&format!("/jobs/{job}/updates"), json!({ "agent_id": agent, "published": [published] })).await
}

pub(crate) fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn published_images(harness: Harness) {
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let (agent, job) = leased_release(&harness).await;
    let delivery = json!({ "kind": "webhook", "url": format!("{base}/deliver"), "events": ["image.published"], "secret": SIGNING_SECRET });
    let (status, hook) = harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(delivery)).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert_eq!((hook["events"].clone(), hook["signed"].clone()), (json!(["image.published"]), json!(true)));
    assert!(!hook.to_string().contains(SIGNING_SECRET), "the secret is never shown back: {hook}");
    let finished_only = json!({ "kind": "webhook", "url": format!("{base}/finished") });
    harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(finished_only)).await;

    let (status, answer) = report(&harness, agent, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = report(&harness, agent, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    assert_eq!(status, StatusCode::OK, "an agent repeats what it is not sure arrived");

    // Listed with the build, the statement one link away.
    let (status, artifacts) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1/artifacts", None).await;
    assert_eq!(status, StatusCode::OK, "{artifacts}");
    let artifact = &artifacts.as_array().unwrap()[..];
    assert_eq!(artifact.len(), 1, "{artifacts}");
    let artifact = &artifact[0];
    assert_eq!(artifact["image"], "127.0.0.1:5000/acme/app");
    assert_eq!(artifact["pinned"], format!("127.0.0.1:5000/acme/app@{DIGEST}"));
    assert_eq!(artifact["tags"], json!(["latest", "1.0"]));
    assert_eq!(
        (artifact["build"].clone(), artifact["step"].clone(), artifact["size"].clone()),
        (json!(1), json!("image"), json!(2_097_152))
    );
    assert_eq!(artifact["provenance_digest"], PROVENANCE_DIGEST);
    let link = artifact["provenance"].as_str().unwrap();
    let (status, statement) = harness.admin(Method::GET, link, None).await;
    assert_eq!(status, StatusCode::OK, "{link}: {statement}");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");

    // Found again by digest, with or without a tag.
    for image in [format!("127.0.0.1:5000/acme/app@{DIGEST}"), format!("127.0.0.1:5000/acme/app:1.0@{DIGEST}"), DIGEST.to_owned()] {
        let (status, origins) = harness.admin(Method::GET, &format!("/api/v1/artifacts?image={image}"), None).await;
        assert_eq!(status, StatusCode::OK, "{image}: {origins}");
        assert_eq!(origins[0]["repo"], "acme/app");
        assert_eq!(origins[0]["build"]["number"], 1);
        assert_eq!(origins[0]["url"], "http://gantry.test/repos/acme/app/builds/1");
    }
    let (status, _) = harness.admin(Method::GET, &format!("/api/v1/artifacts?image=127.0.0.1:5000/acme/other@{DIGEST}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another repository with the same digest is not this one");
    let (status, answer) = harness.admin(Method::GET, "/api/v1/artifacts?image=127.0.0.1:5000/acme/app:latest", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a tag moves; only a digest names one image: {answer}");

    // Announced once, signed; the build.finished notifier is not told of images.
    harness.agent_ok(&format!("/jobs/{job}/done"), json!({ "agent_id": agent, "state": "success", "steps": [] })).await;
    recorder.wait_for("/finished", 1).await;
    let deliveries: Vec<_> = recorder.raw.lock().unwrap().iter().filter(|(path, _, _)| path == "/deliver").cloned().collect();
    assert_eq!(deliveries.len(), 1, "one announcement for one image, however often it is reported");
    let (_, headers, body) = &deliveries[0];
    assert_eq!(headers["x-gantry-event"], "image.published");
    assert_eq!(headers["x-gantry-signature"].to_str().unwrap(), hmac_hex(SIGNING_SECRET, body));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["event"], "image.published");
    assert_eq!(event["repository"], "acme/app");
    assert_eq!(event["build"], 1);
    assert_eq!(event["image"], "127.0.0.1:5000/acme/app");
    assert_eq!(event["digest"], DIGEST);
    assert_eq!(event["pinned"], format!("127.0.0.1:5000/acme/app@{DIGEST}"));
    assert_eq!(event["tags"], json!(["latest", "1.0"]));
    assert_eq!(event["commit"].as_str().map(str::len), Some(40));
    assert!(!String::from_utf8_lossy(body).contains(SIGNING_SECRET));
    let finished = recorder.to("/finished");
    assert_eq!(finished[0].0["build"]["state"], "success", "the finished notifier got its build, not an image");
}
both!(published_images_are_listed_found_by_digest_and_announced_signed, published_images);

async fn rogue_reports(harness: Harness) {
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let (agent, job) = leased_release(&harness).await;
    let delivery = json!({ "kind": "webhook", "url": format!("{base}/deliver"), "events": ["image.published"] });
    harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(delivery)).await;

    let cases = [
        (pushed("image", "127.0.0.1:5000/acme/production", DIGEST), "published.repository"),
        (pushed("test", "127.0.0.1:5000/acme/app", DIGEST), "published.step"),
        (pushed("nothing", "127.0.0.1:5000/acme/app", DIGEST), "published.step"),
        (pushed("image", "127.0.0.1:5000/acme/app", "sha256:short"), "published.digest"),
        (json!({ "step": "image", "repository": "127.0.0.1:5000/acme/app", "tags": ["no spaces"], "digest": DIGEST }), "published.tags"),
    ];
    for (published, field) in cases {
        let (status, answer) = report(&harness, agent, job, published.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{published}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (_, artifacts) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1/artifacts", None).await;
    assert_eq!(artifacts, json!([]), "nothing refused is recorded");

    // A job leased to one agent is reported on by that agent only.
    let other = harness.register_agent("other", json!({})).await;
    let (status, _) = report(&harness, other, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(recorder.to("/deliver").is_empty(), "nothing was announced");
}
both!(an_agent_cannot_announce_an_image_the_build_was_not_planned_to_push, rogue_reports);

async fn fork_images(harness: Harness) {
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let (agent, job) = leased_release(&harness).await;
    let delivery = json!({ "kind": "webhook", "url": format!("{base}/deliver"), "events": ["image.published"] });
    harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(delivery)).await;
    harness.sql("UPDATE builds SET from_fork = 1").await.unwrap();

    let (status, answer) = report(&harness, agent, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, artifacts) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/1/artifacts", None).await;
    assert_eq!(artifacts.as_array().map(Vec::len), Some(1), "listed with its build: {artifacts}");
    // The finished build's notification is the marker that deliveries had their chance.
    let finished = json!({ "kind": "webhook", "url": format!("{base}/finished") });
    harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(finished)).await;
    harness.agent_ok(&format!("/jobs/{job}/done"), json!({ "agent_id": agent, "state": "success", "steps": [] })).await;
    recorder.wait_for("/finished", 1).await;
    assert!(recorder.to("/deliver").is_empty(), "a fork's image is never announced to deployers");
}
both!(an_image_pushed_by_a_forks_pull_request_is_never_announced, fork_images);

async fn who_sees(harness: Harness) {
    let (agent, job) = leased_release(&harness).await;
    report(&harness, agent, job, pushed("image", "127.0.0.1:5000/acme/app", DIGEST)).await;
    let lookup = format!("/api/v1/artifacts?image=127.0.0.1:5000/acme/app@{DIGEST}");

    let stranger = harness.user("mallory").await;
    let (status, answer) = harness.call(Method::GET, &lookup, Some(&stranger), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a private repository's images are not told to strangers: {answer}");
    assert!(!answer.to_string().contains("acme/app\""), "{answer}");
    let (status, _) = harness.call(Method::GET, "/api/v1/repos/acme/app/builds/1/artifacts", Some(&stranger), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = harness.call(Method::GET, &lookup, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let reader = harness.user("rita").await;
    harness.admin(Method::PUT, "/api/v1/repos/acme/app/members/rita", Some(json!({ "role": "read" }))).await;
    let (status, origins) = harness.call(Method::GET, &lookup, Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK, "{origins}");
    assert_eq!(origins[0]["artifact"]["digest"], DIGEST);
}
both!(a_digest_is_traced_to_its_build_only_for_those_who_may_read_it, who_sees);

async fn notifier_mistakes(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", RELEASE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let cases = [
        (json!({ "kind": "webhook", "url": "https://deploy.example.com/", "events": ["image.pushed"] }), "events"),
        (json!({ "kind": "webhook", "url": "https://deploy.example.com/", "secret": "short" }), "secret"),
    ];
    for (body, field) in cases {
        let (status, answer) = harness.admin(Method::POST, "/api/v1/repos/acme/app/notifiers", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(!answer.to_string().contains("short\""), "the secret is not echoed: {answer}");
    }
    let (_, notifiers) = harness.admin(Method::GET, "/api/v1/repos/acme/app/notifiers", None).await;
    assert_eq!(notifiers, json!([]));
}
both!(a_notifier_with_an_unknown_event_or_a_weak_secret_is_refused, notifier_mistakes);
