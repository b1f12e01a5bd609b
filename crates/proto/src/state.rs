//! States of builds, workflows and steps, and the small enums repositories are configured with.

use pipeline::graph::Outcome;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The state of a build, a workflow or a step. Builds and workflows go
/// pending → running → one of the finished states; a workflow whose agent vanished is `lost`
/// until it is re-queued (back to `pending`) or failed by the repository's policy. A build that
/// needs a maintainer's approval (a fork's pull request, by the repository's policy) and its
/// workflows are `blocked` until approved (then `pending`) or declined (then `killed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting: for an agent (workflows), for its dependencies, or for the step's turn.
    Pending,
    Running,
    Success,
    Failure,
    /// Not run: its conditions are false, or it depends on something that did not run.
    Skipped,
    /// Stopped by a cancel, a timeout or a newer build of the same branch.
    Killed,
    /// Could not run: the pipeline has errors, an image is missing, the engine failed.
    Error,
    /// The agent running it stopped answering.
    Lost,
    /// Waiting for a maintainer's approval before it is queued.
    Blocked,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Pending,
        State::Running,
        State::Success,
        State::Failure,
        State::Skipped,
        State::Killed,
        State::Error,
        State::Lost,
        State::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Success => "success",
            State::Failure => "failure",
            State::Skipped => "skipped",
            State::Killed => "killed",
            State::Error => "error",
            State::Lost => "lost",
            State::Blocked => "blocked",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// True once nothing will change it any more (`lost` may still be re-queued).
    pub fn is_finished(self) -> bool {
        matches!(self, State::Success | State::Failure | State::Skipped | State::Killed | State::Error)
    }

    pub fn is_failure(self) -> bool {
        matches!(self, State::Failure | State::Killed | State::Error | State::Lost)
    }

    /// How a finished workflow or step ended, for the dependency graph; `None` while it may
    /// still change (`lost` included: it may be re-queued).
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            State::Success => Some(Outcome::Success),
            State::Failure => Some(Outcome::Failure),
            State::Skipped => Some(Outcome::Skipped),
            State::Killed => Some(Outcome::Killed),
            State::Error => Some(Outcome::Error),
            State::Pending | State::Running | State::Lost | State::Blocked => None,
        }
    }
}

impl From<Outcome> for State {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => State::Success,
            Outcome::Failure => State::Failure,
            Outcome::Skipped => State::Skipped,
            Outcome::Killed => State::Killed,
            Outcome::Error => State::Error,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Which forge hosts a repository: decides the webhook format and how commit statuses are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForgeKind {
    Github,
    /// Gitea and Forgejo (same webhook and status API).
    Gitea,
    Gitlab,
    /// Any git remote: no webhooks of a forge, polling and manual builds only.
    #[default]
    Generic,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Generic => "generic",
        }
    }

    pub fn parse(text: &str) -> Option<ForgeKind> {
        match text {
            "github" => Some(ForgeKind::Github),
            "gitea" | "forgejo" => Some(ForgeKind::Gitea),
            "gitlab" => Some(ForgeKind::Gitlab),
            "generic" | "git" => Some(ForgeKind::Generic),
            _ => None,
        }
    }
}

/// What a repository's pipelines may do beyond ordinary steps. Only admins of the server set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Trust {
    /// Privileged steps and devices.
    pub privileged: bool,
    /// Host paths and the Docker socket as volumes.
    pub volumes: bool,
    /// `network_mode: host` and other networks than the workflow's.
    pub network: bool,
}

impl Trust {
    pub fn is_any(self) -> bool {
        self.privileged || self.volumes || self.network
    }
}

/// Which builds wait for a maintainer's approval (someone with the write role) before they are
/// queued, as Woodpecker's setting of the same name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Nothing waits.
    None,
    /// Pull requests from forks wait: their code was written by someone without access.
    #[default]
    Forks,
    /// Every pull request waits.
    PullRequests,
    /// Every build started by a webhook, a poll or a cron waits.
    AllEvents,
}

impl ApprovalPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPolicy::None => "none",
            ApprovalPolicy::Forks => "forks",
            ApprovalPolicy::PullRequests => "pull_requests",
            ApprovalPolicy::AllEvents => "all_events",
        }
    }

    pub fn parse(text: &str) -> Option<ApprovalPolicy> {
        match text {
            "none" => Some(ApprovalPolicy::None),
            "forks" => Some(ApprovalPolicy::Forks),
            "pull_requests" => Some(ApprovalPolicy::PullRequests),
            "all_events" => Some(ApprovalPolicy::AllEvents),
            _ => None,
        }
    }

    /// Whether a build of `event` (from a fork or not) waits for approval. Builds people start
    /// (manual, restart) never wait: starting one needs the write role already.
    pub fn requires_approval(self, event: &str, from_fork: bool) -> bool {
        // A closed pull request's build runs its head too.
        let pull_request = event == "pull_request" || event == "pull_request_closed";
        match self {
            ApprovalPolicy::None => false,
            ApprovalPolicy::Forks => pull_request && from_fork,
            ApprovalPolicy::PullRequests => pull_request,
            ApprovalPolicy::AllEvents => event != "manual",
        }
    }
}

/// What happens to a workflow whose agent stopped answering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LostPolicy {
    /// Queue it again for another agent (steps may then run twice).
    #[default]
    Requeue,
    /// Fail it with the reason.
    Fail,
}

impl LostPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            LostPolicy::Requeue => "requeue",
            LostPolicy::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Option<LostPolicy> {
        match text {
            "requeue" => Some(LostPolicy::Requeue),
            "fail" => Some(LostPolicy::Fail),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApprovalPolicy;

    #[test]
    fn each_approval_policy_holds_back_the_builds_it_names() {
        // (event, from a fork) for each policy: none, forks, pull_requests, all_events.
        let cases = [
            (("push", false), [false, false, false, true]),
            (("tag", false), [false, false, false, true]),
            (("cron", false), [false, false, false, true]),
            (("manual", false), [false, false, false, false]),
            (("pull_request", false), [false, false, true, true]),
            (("pull_request", true), [false, true, true, true]),
            (("pull_request_closed", true), [false, true, true, true]),
        ];
        let policies = [ApprovalPolicy::None, ApprovalPolicy::Forks, ApprovalPolicy::PullRequests, ApprovalPolicy::AllEvents];
        for ((event, from_fork), expected) in cases {
            let found: Vec<bool> = policies.iter().map(|policy| policy.requires_approval(event, from_fork)).collect();
            assert_eq!(found, expected, "{event} (fork: {from_fork})");
        }
        for policy in policies {
            assert_eq!(ApprovalPolicy::parse(policy.as_str()), Some(policy));
        }
    }
}
