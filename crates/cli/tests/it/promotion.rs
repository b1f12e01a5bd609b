//! The whole delivery path on real processes: a commit builds and pushes an image; staging's
//! deployer runs it; a person asks to promote it to production, whose repository asks for one
//! approval; the person who asked cannot approve it, a second person does; production's
//! deployer picks it up on its next sync, commits the exact image with the approval in the
//! commit's trailers, and deploys it. Server, agent and both deployers are `gantry` processes,
//! on the real engine, registry and git.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::delivery::{Deployer, EnvRepo, Environment, OWNER, eventually};
use crate::e2e::{Cluster, deliver_push, push_commit, remote};

/// A user with the write role on acme/app and an API token of theirs, made as a team would:
/// `gantry user add` by an admin, then `gantry login` by the person.
async fn writer(cluster: &Cluster, login: &str) -> String {
    let password = "a password of the e2e test";
    let run = |args: &[&str], token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"));
        command.args(args).env("GANTRY_SERVER", cluster.url()).env("E2E_PASSWORD", password).env_remove("GANTRY_TOKEN");
        if let Some(token) = token {
            command.env("GANTRY_TOKEN", token);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "gantry {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    run(&["user", "add", login, "--password-from-env", "E2E_PASSWORD"], Some(crate::e2e::ADMIN));
    let (status, answer) =
        cluster.api(reqwest::Method::PUT, &format!("/api/v1/repos/acme/app/members/{login}"), Some(json!({ "role": "write" }))).await;
    assert!((200..300).contains(&status), "{answer}");
    let created: Value = serde_json::from_str(&run(&["login", login, "--password-from-env", "E2E_PASSWORD", "--json"], None)).unwrap();
    created["token"].as_str().unwrap().to_owned()
}

/// `gantry` with `args` as the holder of `token`: exit code, stdout, stderr.
fn gantry(cluster: &Cluster, token: &str, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .env("GANTRY_SERVER", cluster.url())
        .env("GANTRY_TOKEN", token)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Registers `environment` and starts its deployer on `repo`, reporting to the server.
fn deployer(cluster: &Cluster, environment: &str, repo: &EnvRepo, dir: &std::path::Path) -> Deployer {
    let (code, added, errors) = gantry(cluster, crate::e2e::ADMIN, &["environment", "add", environment]);
    assert_eq!(code, 0, "{errors}");
    let secret = crate::delivery::printed_secret(&added);
    let events = format!("{}/api/v1/environments/{environment}/events", cluster.url());
    Deployer::reporting(repo, &dir.join(format!("{environment}-data")), &events, &secret, &dir.join(format!("{environment}.log")))
}

/// Waits (at most 90 s) until `environment`'s web runs `image` by the server's records.
async fn wait_running(cluster: &Cluster, environment: &str, image: &str, deployer: &Deployer) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, apps) = cluster.api(reqwest::Method::GET, &format!("/api/v1/environments/{environment}/apps"), None).await;
        if apps.as_array().is_some_and(|apps| apps.iter().any(|app| app["app"] == "web" && app["current"]["to_image"] == image)) {
            return;
        }
        assert!(Instant::now() < deadline, "{environment} never ran {image}: {apps}\n{}", deployer.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_image_reaches_production_after_a_second_persons_approval() {
    let cluster = Cluster::start(&[]).await;
    let staging = Environment::new("promo-staging");
    let production = Environment::new("promo-production");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let repository = format!("127.0.0.1:5000/{}/web-{nanos}", staging.name);
    let pipeline = format!(
        "steps:\n  test:\n    image: gantry-test/busybox:latest\n    commands:\n      - test -f README\n  image:\n    image: plugins/docker\n    settings:\n      repo: {repository}\n      tags: ['1.0']\n      purge: true\n"
    );
    let dockerfile = "FROM gantry-test/busybox:latest\nCOPY README /README\n";
    let (url, work) = remote(cluster.dir.path(), &[(".woodpecker.yml", &pipeline), ("Dockerfile", dockerfile), ("README", "v1")]);
    cluster.add_repo(&url, json!({ "forge": "github" })).await;
    let ada = writer(&cluster, "ada").await;
    let bob = writer(&cluster, "bob").await;

    // A commit builds and publishes the image.
    let sha = push_commit(&work, &[("README", "v2")], "Add search");
    let (status, answer) = deliver_push(&cluster, &sha, "promotion-1").await;
    assert_eq!(status, 200, "{answer}");
    let number = answer["builds"][0].as_i64().unwrap();
    let build = cluster.wait_finished(number).await;
    assert_eq!(build["state"], "success", "{build}\n{}", cluster.log("agent.log"));
    let (_, artifacts) = cluster.api(reqwest::Method::GET, &format!("/api/v1/repos/acme/app/builds/{number}/artifacts"), None).await;
    let digest = artifacts[0]["digest"].as_str().unwrap().to_owned();
    let pinned = format!("{repository}:1.0@{digest}");

    // Staging runs it; production runs something else and asks for one approval.
    let dir = tempfile::tempdir().unwrap();
    let (staging_dir, production_dir) = (dir.path().join("staging"), dir.path().join("production"));
    std::fs::create_dir_all(&staging_dir).unwrap();
    std::fs::create_dir_all(&production_dir).unwrap();
    let staging_repo = EnvRepo::new(&staging_dir, &staging.name, "");
    staging_repo.write("apps/web.yml", &format!("version: 1\n{OWNER}image: {pinned}\ncommand: [sleep, '3600']\n"));
    staging_repo.push("web, built from acme/app");
    let rules = "promotion:\n  from: [".to_owned() + &staging.name + "]\n  approvals: 1\n  timeout: 1h\n";
    let production_repo = EnvRepo::new(&production_dir, &production.name, &rules);
    production_repo.write("apps/web.yml", &format!("version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sleep, '3600']\n"));
    production_repo.push("web, as it was");
    let staging_deployer = deployer(&cluster, &staging.name, &staging_repo, &staging_dir);
    let production_deployer = deployer(&cluster, &production.name, &production_repo, &production_dir);
    wait_running(&cluster, &staging.name, &pinned, &staging_deployer).await;
    wait_running(&cluster, &production.name, "gantry-test/busybox:latest", &production_deployer).await;

    // Ada asks; she cannot approve her own request; Bob does.
    let promote = ["env", "promote", "web", "--from", &staging.name, "--to", &production.name, "--comment", "search is ready", "--json"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let requested = loop {
        // Production's rules reach the server with its deployer's first sync.
        let (code, out, errors) = gantry(&cluster, &ada, &promote);
        if code == 0 {
            break serde_json::from_str::<Value>(&out).unwrap();
        }
        assert!(errors.contains("has not synced") && Instant::now() < deadline, "{errors}\n{}", production_deployer.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((requested["state"].as_str(), requested["image"].as_str()), (Some("pending"), Some(pinned.as_str())), "{requested}");
    assert_eq!(requested["build"]["build"], number, "the promotion names the build behind the image: {requested}");
    let id = requested["id"].as_i64().unwrap().to_string();
    let (code, _, errors) = gantry(&cluster, &ada, &["env", "approve", &id]);
    assert_eq!(code, 1, "refused");
    assert!(errors.contains("another person approves it"), "{errors}");
    let (code, approved, errors) = gantry(&cluster, &bob, &["env", "approve", &id, "--comment", "dashboards are green"]);
    assert_eq!(code, 0, "{errors}");
    assert!(approved.contains("approved by bob") && approved.contains("dashboards are green"), "{approved}");

    // Production's deployer commits the exact image, with who asked and who approved, and runs it.
    eventually("the promotion committed", &production_deployer, || production_repo.show("apps/web.yml").contains(&pinned));
    let message = production_repo.head("%B");
    let parts = [format!("Gantry-Promotion: {id}"), format!("Gantry-Promoted-From: {}", staging.name), "Approved-by: bob".to_owned()];
    for part in parts.iter().map(String::as_str).chain(["Requested by ada"]) {
        assert!(message.contains(part), "{part} in:\n{message}");
    }
    wait_running(&cluster, &production.name, &pinned, &production_deployer).await;
    let running = production.running_app("web");
    assert_eq!(running.len(), 1);
    let image = crate::delivery::docker(&["inspect", "--format", "{{.Config.Image}}", &running[0]]);
    assert_eq!(image, format!("{repository}@{digest}"), "production runs exactly the promoted image");
    // From the running container, one step to its build, commit, tests and owner.
    let (code, traced, errors) = gantry(&cluster, &bob, &["env", "trace", &running[0][..12]]);
    assert_eq!(code, 0, "{errors}");
    for part in [
        format!("web in {}", production.name),
        "owner       web".to_owned(),
        format!("acme/app build #{number} (success)"),
        format!("commit      {}  Change things", &sha[..8]),
        "workflow    woodpecker success".to_owned(),
    ] {
        assert!(traced.contains(&part), "{part} in:\n{traced}");
    }
    let (_, shown) = cluster.api(reqwest::Method::GET, &format!("/api/v1/promotions/{id}"), None).await;
    assert_eq!(shown["state"], "applied", "{shown}");
    assert_eq!(shown["commit"].as_str(), Some(production_repo.head("%H").as_str()), "{shown}");
    let (code, listed, _) = gantry(&cluster, &bob, &["env", "promotions", &production.name]);
    assert_eq!(code, 0);
    assert!(listed.lines().any(|line| line.contains("applied") && line.contains("1/1") && line.contains("ada")), "{listed}");

    // What production now runs is what staging runs: the changelog between them is empty.
    let (code, diff, errors) = gantry(&cluster, &bob, &["env", "diff", "web", "--from", &production.name, "--to", &staging.name]);
    assert_eq!(code, 0, "{errors}");
    assert!(diff.contains("no commits between them"), "{diff}");
    drop(staging_deployer);
    drop(production_deployer);
}
