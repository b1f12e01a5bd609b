//! `gantry deployer plan`: a local environment repository against what the real Docker engine
//! runs, found by the deployer's labels. Nothing is changed; what the test starts is removed.

use std::path::Path;
use std::process::Command;

const OWNER: &str = "owner: {team: web, contact: web@example.com}\n";

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
