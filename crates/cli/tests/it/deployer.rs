//! `gantry deployer plan`: a local environment repository against what the real Docker engine
//! runs, found by the deployer's labels. Nothing is changed; what the test starts is removed.

use std::path::Path;
use std::process::Command;

use crate::delivery::{Deployer, docker, eventually};

use crate::delivery::OWNER;

/// Containers made by hand as the deployer labels them, removed when dropped.
struct HandMade {
    environment: String,
}

impl HandMade {
    fn container(&self, app: &str, spec: &str) {
        let output = Command::new("docker")
            .args(["create", "--label", &format!("io.gantry.deploy.environment={}", self.environment)])
            .args(["--label", &format!("io.gantry.deploy.app={app}"), "--label", &format!("io.gantry.deploy.spec={spec}")])
            .args(["--label", "io.gantry.deploy.image=gantry-test/busybox:latest", "--label", "io.gantry.deploy.replicas=1"])
            .args(["gantry-test/busybox:latest", "true"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for HandMade {
    fn drop(&mut self) {
        let filter = format!("label=io.gantry.deploy.environment={}", self.environment);
        let listed = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().unwrap();
        for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

fn plan(repo: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry")).args(["deployer", "plan", "--repo"]).arg(repo).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_plan_starts_from_empty_then_sees_what_runs_by_its_labels() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let environment = format!("it-{}-{nanos}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("apps")).unwrap();
    let environment_file =
        format!("version: 1\nname: {environment}\ntargets:\n  local: {{kind: docker}}\ndefaults:\n  require_digest: false\n");
    std::fs::write(dir.path().join("environment.yml"), environment_file).unwrap();
    for app in ["api", "web"] {
        std::fs::write(dir.path().join(format!("apps/{app}.yml")), format!("version: 1\n{OWNER}image: gantry-test/busybox:latest\n"))
            .unwrap();
    }
    let hand = HandMade { environment };

    assert_eq!(plan(dir.path()), "+ api: start gantry-test/busybox:latest ×1\n+ web: start gantry-test/busybox:latest ×1\n");

    hand.container("web", "sha256:deployed-from-an-older-revision");
    hand.container("legacy", "sha256:whatever");
    assert_eq!(
        plan(dir.path()),
        "+ api: start gantry-test/busybox:latest ×1\n\
         ~ web: gantry-test/busybox:latest → gantry-test/busybox:latest (start-first; configuration changed)\n\
         - legacy: stop and remove gantry-test/busybox:latest\n"
    );

    let broken = dir.path().join("apps/broken.yml");
    std::fs::write(&broken, "version: 1\nimage: gantry-test/busybox:latest\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gantry")).args(["deployer", "plan", "--repo"]).arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "a repository with mistakes is not planned");
    assert!(String::from_utf8_lossy(&output.stderr).contains("application `broken` needs an `owner`"));
}

fn deployer(action: &str, repo: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry")).args(["deployer", action, "--repo"]).arg(repo).output().unwrap();
    (output.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn apply_deploys_rolls_out_config_changes_heals_and_removes_and_keeps_the_running_version_when_a_new_one_is_unhealthy() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let environment = format!("it-apply-{}-{nanos}", std::process::id());
    let hand = HandMade { environment: environment.clone() };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::fs::create_dir_all(repo.join("apps/web")).unwrap();
    let environment_file =
        format!("version: 1\nname: {environment}\ntargets:\n  local: {{kind: docker}}\ndefaults:\n  require_digest: false\n");
    std::fs::write(repo.join("environment.yml"), environment_file).unwrap();
    let app = |check: &str| {
        format!(
            "version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sh, -c, 'sleep 3600']\nenvironment: {{GREETING: hello}}\n\
             configs: [{{file: web/site.conf, target: /etc/web/site.conf}}]\n\
             healthcheck: {{command: [{check}], interval: 1s, timeout: 1s, retries: 2}}\n"
        )
    };
    let healthy = app("test, -f, /etc/web/site.conf");
    std::fs::write(repo.join("apps/web.yml"), &healthy).unwrap();
    std::fs::write(repo.join("apps/web/site.conf"), "greeting = first\n").unwrap();
    let running = || docker(&["ps", "-q", "--no-trunc", "--filter", &format!("label=io.gantry.deploy.environment={environment}")]);
    let config_in = |container: &str| docker(&["exec", container, "cat", "/etc/web/site.conf"]);

    // The first deploy, healthy; then nothing to do.
    let (code, output) = deployer("apply", repo);
    assert_eq!(code, 0, "{output}");
    let first = running();
    assert_eq!(first.lines().count(), 1, "{first}");
    assert_eq!(config_in(&first), "greeting = first");
    assert_eq!(docker(&["inspect", "--format", "{{.State.Health.Status}}", &first]), "healthy");
    assert_eq!(deployer("plan", repo).1, "nothing to do: every application runs as the repository says\n");

    // A config change alone rolls the application out, start-first.
    std::fs::write(repo.join("apps/web/site.conf"), "greeting = second\n").unwrap();
    assert!(deployer("plan", repo).1.contains("(start-first; configuration changed)"));
    let (code, output) = deployer("apply", repo);
    assert_eq!(code, 0, "{output}");
    let second = running();
    assert_ne!(second, first);
    assert_eq!(second.lines().count(), 1, "the old version is gone: {second}");
    assert_eq!(config_in(&second), "greeting = second");

    // A version whose health check fails is removed; the running one keeps running.
    std::fs::write(repo.join("apps/web.yml"), app("'false'")).unwrap();
    let (code, output) = deployer("apply", repo);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("web: the new version did not become healthy: its health check failed"), "{output}");
    assert_eq!(running(), second, "what ran keeps running");

    // Stopped by hand: drift, healed.
    std::fs::write(repo.join("apps/web.yml"), &healthy).unwrap();
    docker(&["stop", "-t", "0", &second]);
    assert_eq!(deployer("plan", repo).1, "! web: heal drift: 0 of 1 running\n");
    let (code, output) = deployer("apply", repo);
    assert_eq!(code, 0, "{output}");
    assert_eq!(running().lines().count(), 1);
    assert_eq!(deployer("plan", repo).1, "nothing to do: every application runs as the repository says\n");

    // Gone from the repository: removed.
    std::fs::remove_file(repo.join("apps/web.yml")).unwrap();
    let (code, output) = deployer("apply", repo);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("- web: stop and remove gantry-test/busybox:latest"), "{output}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &format!("label=io.gantry.deploy.environment={environment}")]), "");
    drop(hand);
}

#[test]
fn the_deployer_follows_its_repository_and_keeps_the_last_good_state_when_it_is_unreachable() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let environment = format!("it-run-{}-{nanos}", std::process::id());
    let hand = HandMade { environment: environment.clone() };
    let dir = tempfile::tempdir().unwrap();
    let (bare, work) = (dir.path().join("environment.git"), dir.path().join("work"));
    crate::git_in(dir.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    crate::git_in(dir.path(), &["init", "-q", "-b", "main", work.to_str().unwrap()]);
    crate::git_in(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    std::fs::create_dir(work.join("apps")).unwrap();
    let environment_file =
        format!("version: 1\nname: {environment}\ntargets:\n  local: {{kind: docker}}\ndefaults:\n  require_digest: false\n");
    std::fs::write(work.join("environment.yml"), environment_file).unwrap();
    let publish = |greeting: &str| {
        let app = format!(
            "version: 1\n{OWNER}image: gantry-test/busybox:latest\ncommand: [sleep, '3600']\nenvironment: {{GREETING: {greeting}}}\n"
        );
        std::fs::write(work.join("apps/web.yml"), app).unwrap();
        crate::git_in(&work, &["add", "-A"]);
        crate::git_in(&work, &["commit", "-q", "-m", &format!("web says {greeting}")]);
        crate::git_in(&work, &["push", "-q", "origin", "main"]);
    };
    let greetings = || {
        let ids = docker(&["ps", "-q", "--filter", &format!("label=io.gantry.deploy.environment={environment}")]);
        ids.lines().map(|id| docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", id])).collect::<Vec<_>>()
    };
    let says = |greeting: &str| {
        let all = greetings();
        all.len() == 1 && all[0].lines().any(|line| line == format!("GREETING={greeting}"))
    };
    publish("hello");

    let data = dir.path().join("data");
    let mut deployer = Deployer::start(
        &["--repo", bare.to_str().unwrap(), "--poll", "1", "--data", data.to_str().unwrap()],
        &dir.path().join("deployer.log"),
        None,
    );

    eventually("the first deploy", &deployer, || says("hello"));
    publish("bonjour");
    eventually("the pushed commit deployed", &deployer, || says("bonjour"));

    // The repository goes away: what runs stays, and the deployer says why it does nothing.
    std::fs::rename(&bare, dir.path().join("moved.git")).unwrap();
    eventually("a failed fetch reported", &deployer, || {
        deployer.log().contains("cannot fetch the environment repository; keeping the last known good state")
    });
    assert!(says("bonjour"), "the last known good state keeps running: {:?}", greetings());

    assert_eq!(deployer.stop(), Some(0), "SIGTERM stops it cleanly:\n{}", deployer.log());
    assert!(deployer.log().contains("deployer stopped"));
    drop(hand);
}
