//! Both halves in one system: a real `gantry server` learns what a real `gantry deployer` did
//! in its environment, from the deployer's signed events alone. The environment is registered
//! with `gantry environment add`, whose secret and flags start the deployer; its deployment is
//! then read back with `gantry environment deployments` and `apps`. The server holds nothing
//! of the environment but that secret, and never prints or logs it again.

use crate::client::Server;
use crate::delivery::{Deployer, EnvRepo, Environment, OWNER, eventually};

#[test]
fn a_deployers_events_reach_the_server_and_tell_who_deployed_which_revision() {
    let server = Server::start();
    let environment = Environment::new("it-reporting");
    let dir = tempfile::tempdir().unwrap();
    let repo = EnvRepo::new(dir.path(), &environment.name, "");
    repo.write("apps/web.yml", &format!("version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sleep, '3600']\n"));
    repo.push("web 1");
    let revision = repo.head("%H");

    // Registered: the secret is printed once, with the exact flags for the deployer.
    let added = server.ok(&["environment", "add", &environment.name]);
    assert!(added.contains("shown only now"), "{added}");
    let secret = crate::delivery::printed_secret(&added);
    let events_url = format!("{}/api/v1/environments/{}/events", server.url, environment.name);
    assert!(added.contains(&format!("gantry deployer --notify {events_url} --notify-secret {secret}")), "{added}");
    let listed = server.ok(&["environment", "ls"]);
    assert!(listed.contains(&environment.name) && listed.contains("never"), "{listed}");
    assert!(!listed.contains(&secret), "{listed}");

    let data = dir.path().join("data");
    let mut deployer = Deployer::reporting(&repo, &data, &events_url, &secret, &dir.path().join("deployer.log"));
    eventually("the server told that web was created", &deployer, || {
        server.json(&["environment", "deployments", &environment.name]).as_array().is_some_and(|deployments| {
            deployments.iter().any(|deployment| deployment["kind"] == "create" && deployment["outcome"] == "succeeded")
        })
    });
    assert_eq!(environment.running_app("web").len(), 1, "the deployer deployed what it reported");

    let deployments = server.json(&["environment", "deployments", &environment.name, "--app", "web"]);
    let created = &deployments[0];
    assert_eq!(deployments.as_array().map(Vec::len), Some(1), "the start and the end are one deployment: {deployments}");
    assert_eq!(
        (created["app"].as_str(), created["revision"].as_str(), created["author"].as_str()),
        (Some("web"), Some(revision.as_str()), Some("Ada <ada@example.com>")),
        "{created}"
    );
    assert_eq!(created["owner_team"], "web");
    let text = server.ok(&["environment", "deployments", &environment.name]);
    let line = text.lines().find(|line| line.contains(" web ")).unwrap_or_else(|| panic!("no line for web:\n{text}"));
    for part in ["create", "succeeded", "gantry-test/busybox:latest", &revision[..8], "Ada <ada@example.com>"] {
        assert!(line.contains(part), "{part} in: {line}");
    }
    let apps = server.json(&["environment", "apps", &environment.name]);
    assert_eq!(apps[0]["current"]["revision"], revision.as_str(), "{apps}");
    let apps_table = server.ok(&["environment", "apps", &environment.name]);
    assert!(apps_table.contains("web") && apps_table.contains(&revision[..8]), "{apps_table}");

    deployer.stop();
    assert!(!server.log().contains(&secret), "the server logged the signing secret");
    assert!(!deployer.log().contains(&secret), "the deployer logged the signing secret");
    let listed = server.ok(&["environment", "ls"]);
    let apps_text = server.ok(&["environment", "apps", &environment.name]);
    for printed in [&listed, &apps_text, &text] {
        assert!(
            !printed.contains(&secret),
            "the secret was printed again:
{printed}"
        );
    }
    assert!(listed.contains(&environment.name) && !listed.contains("never"), "the deployer was heard from: {listed}");

    let removed = server.ok(&["environment", "rm", &environment.name]);
    assert!(removed.contains("removed environment"), "{removed}");
    let output = server.gantry(&["environment", "deployments", &environment.name]);
    assert_eq!(output.status.code(), Some(1), "a removed environment is gone");
    drop(deployer);
    drop(environment);
    drop(server);
}
