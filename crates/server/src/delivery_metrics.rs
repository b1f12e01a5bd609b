//! The four keys of delivery performance (deployment frequency, lead time for changes, change
//! failure rate, time to restore), computed from exact events: the deployments a deployer
//! reported and the commits of the builds behind their images. Nothing is guessed from job
//! names or labels. Pure: the caller gathers the facts (`api::environments::metrics`).
//!
//! What counts:
//! - A **change** is a deployment that creates or updates an application. Heals, removals and
//!   rollbacks put nothing new in the environment.
//! - **Deployment frequency**: changes that succeeded in the window, per day.
//! - **Lead time**: for each commit a successful change brought, from its commit time to the
//!   moment the deployment was healthy (its end).
//! - **Change failure rate**: changes that failed, or succeeded and were later rolled back,
//!   over the changes that ended (running and interrupted ones are not counted either way).
//! - **Time to restore**: from a failure (a failed change's end, or a rolled-back change's end:
//!   when the bad version went live) to the end of the application's next successful
//!   deployment of any kind after it.
//!
//! Levels follow the clusters of the 2023 Accelerate State of DevOps report, with their
//! overlapping low ends made to meet: see [`level`].

use proto::api::{ChangeFailureRate, DeploymentFrequency, LeadTime, PerformanceLevel, TimeToRestore};
use proto::delivery::{DeploymentKind, DeploymentOutcome};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
const MONTH: i64 = 30 * DAY;

/// One deployment, as the metrics need it.
#[derive(Clone, Debug)]
pub struct DeploymentFact {
    pub app: String,
    pub kind: DeploymentKind,
    pub outcome: DeploymentOutcome,
    pub rolled_back: bool,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// For a successful change: when each commit it brought was committed (Unix seconds);
    /// `None` when no build the asker can read produced its image.
    pub commits: Option<Vec<i64>>,
}

impl DeploymentFact {
    /// The facts of a recorded deployment, with no commits yet (see `commits`).
    pub fn of(entry: &store::DeploymentEntry) -> DeploymentFact {
        let deployment = &entry.record;
        DeploymentFact {
            app: deployment.app.clone(),
            kind: deployment.kind.clone(),
            outcome: deployment.outcome,
            rolled_back: entry.rolled_back,
            started_ms: deployment.started_at,
            finished_ms: deployment.finished_at,
            commits: Some(Vec::new()),
        }
    }

    pub fn is_change(&self) -> bool {
        matches!(self.kind, DeploymentKind::Create | DeploymentKind::Update)
    }

    pub fn succeeded(&self) -> bool {
        self.outcome == DeploymentOutcome::Succeeded
    }

    /// A change that failed, or that went live and was rolled back.
    fn is_failure(&self) -> bool {
        self.is_change() && (self.outcome == DeploymentOutcome::Failed || (self.succeeded() && self.rolled_back))
    }

    /// Unix seconds it ended.
    fn finished(&self) -> Option<i64> {
        self.finished_ms.map(|ms| i64::try_from(ms / 1000).unwrap_or(i64::MAX))
    }
}

/// The four keys over `facts`: deployments that started in a window of `days` days.
pub fn compute(facts: &[DeploymentFact], days: u32) -> (DeploymentFrequency, LeadTime, ChangeFailureRate, TimeToRestore) {
    (frequency(facts, days), lead_time(facts), failure_rate(facts), time_to_restore(facts))
}

fn frequency(facts: &[DeploymentFact], days: u32) -> DeploymentFrequency {
    let deployments = facts.iter().filter(|fact| fact.is_change() && fact.succeeded()).count() as u64;
    let per_day = if days == 0 { 0.0 } else { deployments as f64 / f64::from(days) };
    // Fewer than one a month is low, none at all is no level: nothing to judge.
    let level = (deployments > 0).then(|| {
        if per_day >= 1.0 {
            PerformanceLevel::Elite
        } else if per_day >= 1.0 / 7.0 {
            PerformanceLevel::High
        } else if per_day >= 1.0 / 30.0 {
            PerformanceLevel::Medium
        } else {
            PerformanceLevel::Low
        }
    });
    DeploymentFrequency { deployments, per_day, level }
}

fn lead_time(facts: &[DeploymentFact]) -> LeadTime {
    let mut leads = Vec::new();
    let mut unlinked_deployments = 0;
    for fact in facts.iter().filter(|fact| fact.is_change() && fact.succeeded()) {
        let Some(finished) = fact.finished() else { continue };
        match &fact.commits {
            // A commit's time is the committer's clock: one ahead of the deployer's counts as 0.
            Some(commits) => leads.extend(commits.iter().map(|committed| (finished - committed).max(0))),
            None => unlinked_deployments += 1,
        }
    }
    leads.sort_unstable();
    let median_seconds = percentile(&leads, 50);
    LeadTime {
        commits: leads.len() as u64,
        median_seconds,
        p90_seconds: percentile(&leads, 90),
        unlinked_deployments,
        level: median_seconds.map(|median| level(median, [DAY, WEEK, MONTH])),
    }
}

fn failure_rate(facts: &[DeploymentFact]) -> ChangeFailureRate {
    let ended: Vec<&DeploymentFact> = facts
        .iter()
        .filter(|fact| fact.is_change() && matches!(fact.outcome, DeploymentOutcome::Succeeded | DeploymentOutcome::Failed))
        .collect();
    let deployments = ended.len() as u64;
    let failures = ended.iter().filter(|fact| fact.is_failure()).count() as u64;
    let rate = (deployments > 0).then(|| failures as f64 / deployments as f64);
    let level = rate.map(|rate| {
        if rate <= 0.05 {
            PerformanceLevel::Elite
        } else if rate <= 0.10 {
            PerformanceLevel::High
        } else if rate <= 0.15 {
            PerformanceLevel::Medium
        } else {
            PerformanceLevel::Low
        }
    });
    ChangeFailureRate { deployments, failures, rate, level }
}

fn time_to_restore(facts: &[DeploymentFact]) -> TimeToRestore {
    let mut restores = Vec::new();
    let mut failures = 0;
    for failure in facts.iter().filter(|fact| fact.is_failure()) {
        let Some(failed) = failure.finished() else { continue };
        failures += 1;
        let restored = facts
            .iter()
            .filter(|fact| fact.app == failure.app && fact.succeeded() && !fact.rolled_back && fact.started_ms >= failure.started_ms)
            .filter(|fact| !std::ptr::eq(*fact, failure))
            .filter_map(DeploymentFact::finished)
            .filter(|finished| *finished >= failed)
            .min();
        if let Some(restored) = restored {
            restores.push(restored - failed);
        }
    }
    restores.sort_unstable();
    let median_seconds = percentile(&restores, 50);
    TimeToRestore {
        failures,
        restored: restores.len() as u64,
        median_seconds,
        level: median_seconds.map(|median| level(median, [HOUR, DAY, WEEK])),
    }
}

/// Elite below the first bound, high below the second, medium below the third, else low.
pub fn level(seconds: i64, bounds: [i64; 3]) -> PerformanceLevel {
    if seconds < bounds[0] {
        PerformanceLevel::Elite
    } else if seconds < bounds[1] {
        PerformanceLevel::High
    } else if seconds < bounds[2] {
        PerformanceLevel::Medium
    } else {
        PerformanceLevel::Low
    }
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(values: &[i64], percent: usize) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let rank = (percent * values.len()).div_ceil(100).max(1);
    values.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deployments of these tests start at this moment (Unix ms), a day apart by default.
    const T0: u64 = 1_767_225_600_000;

    fn change(app: &str, day: u64, outcome: DeploymentOutcome) -> DeploymentFact {
        let started_ms = T0 + day * 86_400_000;
        DeploymentFact {
            app: app.to_owned(),
            kind: DeploymentKind::Update,
            outcome,
            rolled_back: false,
            started_ms,
            finished_ms: Some(started_ms + 60_000),
            commits: Some(vec![]),
        }
    }

    fn seconds(ms: u64) -> i64 {
        i64::try_from(ms / 1000).unwrap()
    }

    #[test]
    fn frequency_counts_successful_changes_only() {
        let mut facts: Vec<DeploymentFact> = (0..14).map(|day| change("web", day, DeploymentOutcome::Succeeded)).collect();
        facts.push(change("web", 3, DeploymentOutcome::Failed));
        facts.push(DeploymentFact { kind: DeploymentKind::Heal, ..change("web", 4, DeploymentOutcome::Succeeded) });
        facts.push(DeploymentFact { kind: DeploymentKind::Rollback, ..change("web", 5, DeploymentOutcome::Succeeded) });
        facts.push(DeploymentFact { kind: DeploymentKind::Remove, ..change("web", 6, DeploymentOutcome::Succeeded) });
        let (frequency, ..) = compute(&facts, 7);
        assert_eq!(frequency.deployments, 14);
        assert!((frequency.per_day - 2.0).abs() < 1e-9);
        assert_eq!(frequency.level, Some(PerformanceLevel::Elite));
        assert_eq!(compute(&facts[..2], 7).0.level, Some(PerformanceLevel::High), "two a week");
        assert_eq!(compute(&facts[..1], 30).0.level, Some(PerformanceLevel::Medium), "one a month");
        assert_eq!(compute(&facts[..1], 90).0.level, Some(PerformanceLevel::Low));
        assert_eq!(compute(&[], 30).0.level, None, "no deployment, no level");
    }

    #[test]
    fn lead_time_runs_from_each_commit_to_the_healthy_deployment_that_carried_it() {
        let mut first = change("web", 0, DeploymentOutcome::Succeeded);
        let done = seconds(first.finished_ms.unwrap());
        first.commits = Some(vec![done - 2 * HOUR, done - 5 * HOUR]);
        let mut second = change("web", 2, DeploymentOutcome::Succeeded);
        let done_second = seconds(second.finished_ms.unwrap());
        second.commits = Some(vec![done_second - 3 * DAY]);
        let mut unlinked = change("web", 3, DeploymentOutcome::Succeeded);
        unlinked.commits = None;
        let mut failed = change("web", 4, DeploymentOutcome::Failed);
        failed.commits = Some(vec![0]);
        let (_, lead, ..) = compute(&[first, second, unlinked, failed], 7);
        assert_eq!(lead.commits, 3, "a failed deployment delivered nothing");
        assert_eq!(lead.median_seconds, Some(5 * HOUR));
        assert_eq!(lead.p90_seconds, Some(3 * DAY));
        assert_eq!(lead.unlinked_deployments, 1);
        assert_eq!(lead.level, Some(PerformanceLevel::Elite));
    }

    #[test]
    fn a_change_rolled_back_later_is_a_failure_and_restoring_ends_at_the_next_good_deployment() {
        let good = change("web", 0, DeploymentOutcome::Succeeded);
        let mut bad = change("web", 1, DeploymentOutcome::Succeeded);
        bad.rolled_back = true;
        let mut rollback = change("web", 1, DeploymentOutcome::Succeeded);
        rollback.kind = DeploymentKind::Rollback;
        rollback.started_ms = bad.finished_ms.unwrap() + 30 * 60_000;
        rollback.finished_ms = Some(rollback.started_ms + 60_000);
        let failed = change("api", 2, DeploymentOutcome::Failed);
        let other_app = change("web", 3, DeploymentOutcome::Succeeded);
        let facts = [good, bad.clone(), rollback, failed, other_app];
        let (_, _, rate, restore) = compute(&facts, 7);
        assert_eq!((rate.deployments, rate.failures), (4, 2));
        assert_eq!(rate.rate, Some(0.5));
        assert_eq!(rate.level, Some(PerformanceLevel::Low));
        assert_eq!((restore.failures, restore.restored), (2, 1), "api has not been restored: web's deployments do not count");
        assert_eq!(restore.median_seconds, Some(31 * 60), "from the bad version live to the rollback healthy");
        assert_eq!(restore.level, Some(PerformanceLevel::Elite));
    }

    #[test]
    fn running_and_interrupted_deployments_count_neither_way() {
        let facts = [change("web", 0, DeploymentOutcome::Running), change("web", 1, DeploymentOutcome::Interrupted)];
        let (frequency, lead, rate, restore) = compute(&facts, 7);
        assert_eq!((frequency.deployments, lead.commits, rate.deployments, restore.failures), (0, 0, 0, 0));
        assert_eq!((rate.rate, rate.level, lead.level, restore.level), (None, None, None, None));
    }

    #[test]
    fn levels_meet_at_their_bounds() {
        assert_eq!(level(DAY - 1, [DAY, WEEK, MONTH]), PerformanceLevel::Elite);
        assert_eq!(level(DAY, [DAY, WEEK, MONTH]), PerformanceLevel::High);
        assert_eq!(level(WEEK, [DAY, WEEK, MONTH]), PerformanceLevel::Medium);
        assert_eq!(level(MONTH, [DAY, WEEK, MONTH]), PerformanceLevel::Low);
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 90), Some(4));
        assert_eq!(percentile(&[7], 90), Some(7));
    }
}
