//! Values to create records from, with plain defaults a test changes where it matters.

use std::collections::BTreeMap;

use proto::agent::{LogLine, LogStream};
use proto::api::BuildDiagnostic;
use proto::{ApprovalPolicy, ForgeKind, LostPolicy, State, Trust};
use store::{NewBuild, NewRepo, NewStep, NewWorkflow, RepoRecord, RepoSettings, Store};

pub(crate) const NOW: i64 = 1_700_000_000_000;

pub(crate) fn new_repo(full_name: &str) -> NewRepo {
    NewRepo {
        full_name: full_name.to_owned(),
        settings: RepoSettings {
            clone_url: format!("https://git.example.com/{full_name}.git"),
            forge: ForgeKind::Gitea,
            default_branch: "main".to_owned(),
            config_path: ".woodpecker".to_owned(),
            webhook_secret: "hook secret".to_owned(),
            trust: Trust::default(),
            timeout_minutes: 60,
            cancel_previous: false,
            poll_interval_seconds: None,
            lost_policy: LostPolicy::Requeue,
            approval: ApprovalPolicy::Forks,
            forge_token: None,
            clone_username: None,
            clone_password: None,
            forge_api_url: Some("https://git.example.com/api/v1".to_owned()),
        },
    }
}

pub(crate) async fn repo(store: &Store, full_name: &str) -> RepoRecord {
    store.create_repo(&new_repo(full_name), NOW).await.expect("the repository is created")
}

pub(crate) fn new_build(repo_id: i64, branch: &str) -> NewBuild {
    NewBuild {
        repo_id,
        event: "push".to_owned(),
        state: State::Pending,
        reference: format!("refs/heads/{branch}"),
        branch: branch.to_owned(),
        commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        message: "a change".to_owned(),
        author: "alice".to_owned(),
        trigger: "webhook".to_owned(),
        pull_request: None,
        reason: None,
        diagnostics: Vec::new(),
        variables: BTreeMap::new(),
        from_fork: false,
        approved_by: None,
    }
}

/// A pending workflow with pending steps of these names.
pub(crate) fn workflow(name: &str, steps: &[&str]) -> NewWorkflow {
    NewWorkflow {
        name: name.to_owned(),
        state: State::Pending,
        reason: None,
        depends_on: Vec::new(),
        labels: BTreeMap::new(),
        plan: serde_json::json!({ "name": name }),
        steps: steps.iter().map(|step| NewStep { name: (*step).to_owned(), state: State::Pending, reason: None }).collect(),
    }
}

pub(crate) fn line(text: &str) -> LogLine {
    LogLine { at_ms: NOW, stream: LogStream::Stdout, text: text.to_owned() }
}

/// `count` lines numbered from `first` by their text (`line 7`).
pub(crate) fn lines(first: u64, count: u64) -> Vec<LogLine> {
    (first..first + count).map(|seq| line(&format!("line {seq}"))).collect()
}

/// A diagnostic as a build stores it.
pub(crate) fn diagnostic(code: &str, line: u32) -> BuildDiagnostic {
    BuildDiagnostic {
        severity: "warning".to_owned(),
        code: code.to_owned(),
        file: ".woodpecker.yml".to_owned(),
        line,
        column: 3,
        message: format!("{code} here"),
        hint: None,
    }
}
