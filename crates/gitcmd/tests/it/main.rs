//! `gitcmd` against a real git: the environment a caller leaks does not reach it, and a
//! network-only command refuses a local remote.

// A test stops at what it did not expect, helpers included.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use gitcmd::{GitFailure, Protocols, git, git_in, output_in};

fn repository(dir: &Path) {
    assert!(git_in(dir, ["init", "-q", "-b", "main"]).status().unwrap().success());
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    let mut commit = git_in(dir, ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "first"]);
    assert!(commit.status().unwrap().success());
}

#[test]
fn a_leaked_git_dir_does_not_redirect_the_command() {
    let (ours, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    repository(ours.path());
    repository(other.path());
    // The hazard: a plain git run with `-C ours` inside, say, a hook of the other repository.
    let plain = std::process::Command::new("git")
        .arg("-C")
        .arg(ours.path())
        .args(["rev-parse", "--absolute-git-dir"])
        .env("GIT_DIR", other.path().join(".git"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&plain.stdout).trim().starts_with(&other.path().display().to_string()), "{plain:?}");
    // The builder removes what it inherits. This process cannot set its own environment
    // safely, so a child process of this test binary runs it with `GIT_DIR` set.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_prints_the_git_dir_it_sees", "--nocapture", "--include-ignored"])
        .env("GIT_DIR", other.path().join(".git"))
        .env("GANTRY_TEST_REPOSITORY", ours.path())
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(seen.contains(&format!("git dir: {}", ours.path().join(".git").display())), "{seen}");
}

/// Run by the test above in a child process whose environment has `GIT_DIR` set.
#[test]
#[ignore = "run by a_leaked_git_dir_does_not_redirect_the_command"]
fn child_prints_the_git_dir_it_sees() {
    let Some(repository) = std::env::var_os("GANTRY_TEST_REPOSITORY") else { return };
    let output = output_in(Path::new(&repository), &["rev-parse", "--absolute-git-dir"]).unwrap();
    println!("git dir: {}", String::from_utf8_lossy(&output).trim());
}

#[test]
fn a_network_only_command_refuses_a_local_remote() {
    let (source, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    repository(source.path());
    let clone = |protocols| {
        let mut command = git(protocols);
        command.arg("clone").arg("-q").arg(format!("file://{}", source.path().display())).arg(target.path().join(format!("{protocols:?}")));
        command.output().unwrap()
    };
    let refused = clone(Protocols::NetworkOnly);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("transport 'file' not allowed"), "{refused:?}");
    assert!(clone(Protocols::Local).status.success());
}

#[test]
fn failures_carry_gits_message() {
    let dir = tempfile::tempdir().unwrap();
    match output_in(dir.path(), &["rev-parse", "HEAD"]) {
        Err(GitFailure::Failed(message)) => assert!(message.contains("not a git repository"), "{message}"),
        other => panic!("{other:?}"),
    }
}
