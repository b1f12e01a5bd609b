//! The workspace: a working tree (what git does not ignore, and `.git`), a clean checkout of
//! `HEAD`, a plain folder, or nothing, in a volume every step sees, writable by any user.

use std::path::{Path, PathBuf};
use std::process::Command;

use runtime::{Backend, WorkspaceSource};

use crate::support::{TestRun, WORKSPACE_DIR, shell_step};

/// A temporary git repository: committed files, an ignored file and folder, an untracked file,
/// and a committed file changed afterwards.
struct TempRepository {
    dir: PathBuf,
}

impl TempRepository {
    fn new(name: &str) -> TempRepository {
        let dir = std::env::temp_dir().join(format!("gantry-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src/nested")).unwrap();
        std::fs::create_dir_all(dir.join("target/debug")).unwrap();
        write(&dir, ".gitignore", "target/\n*.log\n");
        write(&dir, "README.md", "committed\n");
        write(&dir, "src/nested/lib.rs", "pub fn answer() -> u32 { 42 }\n");
        write(&dir, "src/script.sh", "#!/bin/sh\necho run\n");
        make_executable(&dir.join("src/script.sh"));
        std::os::unix::fs::symlink("README.md", dir.join("link-to-readme")).unwrap();
        let repository = TempRepository { dir };
        repository.git(&["init", "-q"]);
        repository.git(&["add", "."]);
        repository.git(&["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "first"]);
        write(&repository.dir, "README.md", "changed in the working tree\n");
        write(&repository.dir, "untracked.txt", "untracked\n");
        write(&repository.dir, "debug.log", "ignored\n");
        write(&repository.dir, "target/debug/binary", "ignored\n");
        repository
    }

    fn git(&self, arguments: &[&str]) {
        let status = Command::new("git").arg("-C").arg(&self.dir).args(arguments).status().unwrap();
        assert!(status.success(), "git {arguments:?}");
    }
}

impl Drop for TempRepository {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(dir: &Path, path: &str, contents: &str) {
    std::fs::write(dir.join(path), contents).unwrap();
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Lists the workspace as a step sees it: every path with its kind and mode, sorted.
const LIST_WORKSPACE: &str = "find . -path ./.git -prune -o -print | sort | while read -r path; do \
     printf '%s %s\\n' \"$path\" \"$(stat -c %A \"$path\")\"; done; test -f .git/HEAD && echo has-git || echo no-git";

#[tokio::test]
async fn a_working_tree_brings_what_git_does_not_ignore_and_the_git_folder() {
    let repository = TempRepository::new("working-tree");
    let test = TestRun::new("working-tree").await;
    let workflow = test.workflow("main").await;

    test.backend.populate_workspace(&workflow, &WorkspaceSource::WorkingTree(repository.dir.clone())).await.unwrap();
    let (output, exit_code) = test.run_step(&workflow, shell_step("list", LIST_WORKSPACE)).await;
    assert_eq!((output.stderr_text().as_str(), exit_code), ("", 0));
    assert_eq!(
        output.stdout_text(),
        "\
. drwxrwxrwx
./.gitignore -rw-rw-rw-
./README.md -rw-rw-rw-
./link-to-readme lrwxrwxrwx
./src drwxrwxrwx
./src/nested drwxrwxrwx
./src/nested/lib.rs -rw-rw-rw-
./src/script.sh -rwxrwxrwx
./untracked.txt -rw-rw-rw-
has-git
"
    );
    let (output, _) = test.run_step(&workflow, shell_step("read", "cat README.md; ls -ld /woodpecker /woodpecker/src | cut -c1-10")).await;
    assert_eq!(output.stdout_text(), "changed in the working tree\ndrwxrwxrwx\ndrwxrwxrwx\n");

    test.finish(workflow).await;
}

#[tokio::test]
/// A clone at the commit, as CI makes one: the committed files, nothing else, and `.git`.
async fn a_head_checkout_is_a_clone_of_the_commit() {
    let repository = TempRepository::new("head");
    let test = TestRun::new("head-checkout").await;
    let workflow = test.workflow("main").await;

    test.backend.populate_workspace(&workflow, &WorkspaceSource::GitHead(repository.dir.clone())).await.unwrap();
    let (output, exit_code) = test.run_step(&workflow, shell_step("list", &format!("{LIST_WORKSPACE}; cat README.md"))).await;
    assert_eq!((output.stderr_text().as_str(), exit_code), ("", 0));
    assert_eq!(
        output.stdout_text(),
        "\
. drwxrwxrwx
./.gitignore -rw-rw-rw-
./README.md -rw-rw-rw-
./link-to-readme lrwxrwxrwx
./src drwxrwxrwx
./src/nested drwxrwxrwx
./src/nested/lib.rs -rw-rw-rw-
./src/script.sh -rwxrwxrwx
has-git
committed
"
    );

    test.finish(workflow).await;
}

#[tokio::test]
async fn a_folder_outside_git_is_copied_whole() {
    let dir = std::env::temp_dir().join(format!("gantry-it-plain-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    write(&dir, "sub/file.txt", "plain\n");
    write(&dir, "debug.log", "no ignore rules here\n");
    let test = TestRun::new("plain-folder").await;
    let workflow = test.workflow("main").await;

    test.backend.populate_workspace(&workflow, &WorkspaceSource::WorkingTree(dir.clone())).await.unwrap();
    let (output, _) = test.run_step(&workflow, shell_step("list", "find . | sort; cat sub/file.txt")).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.stdout_text(), ".\n./debug.log\n./sub\n./sub/file.txt\nplain\n");

    test.finish(workflow).await;
}

#[tokio::test]
async fn an_empty_workspace_is_an_empty_folder_any_user_can_write() {
    let test = TestRun::new("empty-workspace").await;
    let workflow = test.workflow("main").await;

    test.backend.populate_workspace(&workflow, &WorkspaceSource::Empty).await.unwrap();
    let mut step = shell_step("write", "ls -A | wc -l; echo made > file; cat file");
    step.container.user = Some("4321".to_string());
    let (output, exit_code) = test.run_step(&workflow, step).await;
    assert_eq!((output.stdout_text().trim(), exit_code), ("0\nmade", 0));
    assert_eq!(output.stdout_text().lines().next().map(str::trim), Some("0"));

    // The next step sees what the last one wrote.
    let (output, _) = test.run_step(&workflow, shell_step("read", &format!("cat {WORKSPACE_DIR}/file"))).await;
    assert_eq!(output.stdout_text(), "made\n");

    test.finish(workflow).await;
}

#[tokio::test]
async fn a_missing_folder_is_an_error_and_leaks_nothing() {
    let test = TestRun::new("missing-folder").await;
    let workflow = test.workflow("main").await;

    let missing = std::env::temp_dir().join("gantry-it-this-folder-does-not-exist");
    let error = test.backend.populate_workspace(&workflow, &WorkspaceSource::GitHead(missing)).await.unwrap_err();
    assert!(error.to_string().contains("git rev-parse") && error.to_string().contains("does-not-exist"), "{error}");
    assert!(test.leftovers().await.containers.is_empty(), "the helper container is gone");

    test.finish(workflow).await;
}
