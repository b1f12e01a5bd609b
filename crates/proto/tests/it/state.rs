//! The states and settings both sides share (`proto::state`): every value of each reads back
//! unchanged, and their spellings are pinned.

use proto::{ApprovalPolicy, ForgeKind, LostPolicy, State, Trust};

use crate::support::{check, check_each, reads_as};

/// Every value of each enum, in declaration order. A variant added later fails to compile in the
/// `match` until it is listed here too, and so gets its round trip and its pinned spelling.
fn every_state() -> [State; 9] {
    let listed = |state: State| match state {
        State::Pending
        | State::Running
        | State::Success
        | State::Failure
        | State::Skipped
        | State::Killed
        | State::Error
        | State::Lost
        | State::Blocked => state,
    };
    State::ALL.map(listed)
}

fn every_forge() -> [ForgeKind; 4] {
    let listed = |forge: ForgeKind| match forge {
        ForgeKind::Github | ForgeKind::Gitea | ForgeKind::Gitlab | ForgeKind::Generic => forge,
    };
    [ForgeKind::Github, ForgeKind::Gitea, ForgeKind::Gitlab, ForgeKind::Generic].map(listed)
}

fn every_approval_policy() -> [ApprovalPolicy; 4] {
    let listed = |policy: ApprovalPolicy| match policy {
        ApprovalPolicy::None | ApprovalPolicy::Forks | ApprovalPolicy::PullRequests | ApprovalPolicy::AllEvents => policy,
    };
    [ApprovalPolicy::None, ApprovalPolicy::Forks, ApprovalPolicy::PullRequests, ApprovalPolicy::AllEvents].map(listed)
}

fn every_lost_policy() -> [LostPolicy; 2] {
    let listed = |policy: LostPolicy| match policy {
        LostPolicy::Requeue | LostPolicy::Fail => policy,
    };
    [LostPolicy::Requeue, LostPolicy::Fail].map(listed)
}

#[test]
fn states_and_settings_keep_their_spellings() {
    let states = every_state();
    assert_eq!(states.iter().collect::<std::collections::HashSet<_>>().len(), states.len(), "State::ALL names each state once");
    check_each(&states);
    check_each(&every_forge());
    check_each(&every_approval_policy());
    check_each(&every_lost_policy());
    check(&Trust { privileged: true, volumes: false, network: true });
    // Trust flags a peer leaves out are off.
    reads_as(serde_json::json!({ "network": true }), &Trust { privileged: false, volumes: false, network: true });
}

/// Each state's wire spelling is the one `as_str` gives (the store and the UI use it too).
#[test]
fn wire_spellings_are_the_names_the_store_keeps() {
    for state in every_state() {
        assert_eq!(serde_json::to_value(state).unwrap(), state.as_str(), "{state:?}");
    }
    for approval in every_approval_policy() {
        assert_eq!(serde_json::to_value(approval).unwrap(), approval.as_str(), "{approval:?}");
    }
    for policy in every_lost_policy() {
        assert_eq!(serde_json::to_value(policy).unwrap(), policy.as_str(), "{policy:?}");
    }
    for forge in every_forge() {
        assert_eq!(serde_json::to_value(forge).unwrap(), forge.as_str(), "{forge:?}");
    }
}
