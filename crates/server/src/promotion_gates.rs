//! The rules a promotion is held to, as the target environment's repository writes them
//! (`promotion:` in `environment.yml`, sent by its deployer): where versions may come from, how
//! long they soaked there, which of their build's workflows must have passed, change freezes,
//! and who may approve. Pure: the API gathers the facts and acts on the answers.

use proto::api::Role;
use proto::delivery::{FreezeWindow, PromotionRules};

/// Why a request or a decision is refused: the field it concerns and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// What is known of the version asked for when a promotion is requested.
#[derive(Clone, Debug)]
pub struct RequestFacts<'a> {
    pub from_environment: &'a str,
    pub now_ms: i64,
    /// When the version's deployment in `from_environment` became healthy.
    pub healthy_since_ms: i64,
    /// The workflows of the build that pushed the image, with whether each succeeded; `None`
    /// when no build of this server pushed it.
    pub workflows: Option<&'a [(String, bool)]>,
}

/// Whether a promotion may be requested now, by the target environment's `rules`.
pub fn check_request(rules: &PromotionRules, facts: &RequestFacts<'_>) -> Result<(), Refusal> {
    if !rules.open {
        return Err(Refusal::new(
            "environment",
            "this environment takes no promotions: its environment.yml has no `promotion:` section (add one, even empty, to open it)",
        ));
    }
    if !rules.from.is_empty() && !rules.from.iter().any(|from| from == facts.from_environment) {
        return Err(Refusal::new(
            "from",
            format!("this environment takes promotions from {} only, not from {}", rules.from.join(", "), facts.from_environment),
        ));
    }
    if let Some(freeze) = active_freeze(rules, facts.now_ms) {
        return Err(Refusal::new("environment", freeze_message(freeze)));
    }
    let soak = i64::try_from(rules.soak_ms).unwrap_or(i64::MAX);
    let soaked = facts.now_ms.saturating_sub(facts.healthy_since_ms);
    if soaked < soak {
        return Err(Refusal::new(
            "from",
            format!(
                "the version has run in {} for {}; this environment asks for {} (soak)",
                facts.from_environment,
                human_duration(soaked),
                human_duration(soak)
            ),
        ));
    }
    if !rules.checks.is_empty() {
        let Some(workflows) = facts.workflows else {
            return Err(Refusal::new(
                "from",
                format!("no build of this server pushed the image, so its checks ({}) cannot be confirmed", rules.checks.join(", ")),
            ));
        };
        for check in &rules.checks {
            match workflows.iter().find(|(name, _)| name == check) {
                Some((_, true)) => {}
                Some((_, false)) => {
                    return Err(Refusal::new("from", format!("the image's build did not pass the required check `{check}`")));
                }
                None => return Err(Refusal::new("from", format!("the image's build has no workflow `{check}`, a required check"))),
            }
        }
    }
    Ok(())
}

/// The change freeze in force at `now_ms`, if any.
pub fn active_freeze(rules: &PromotionRules, now_ms: i64) -> Option<&FreezeWindow> {
    let now = u64::try_from(now_ms).ok()?;
    rules.freezes.iter().find(|freeze| freeze.covers(now))
}

pub fn freeze_message(freeze: &FreezeWindow) -> String {
    let reason = if freeze.reason.is_empty() { String::new() } else { format!(" ({})", freeze.reason) };
    format!("a change freeze is in force until {}{reason}", rfc3339(freeze.to_ms))
}

/// Someone deciding on a promotion: their login, and their role on the repository that built
/// the image (a server admin holds every role).
#[derive(Clone, Copy, Debug)]
pub struct Decider<'a> {
    pub login: &'a str,
    pub server_admin: bool,
    pub role: Option<Role>,
}

/// Whether `decider` may approve (or reject) a promotion `requested_by` asked for, by the
/// rules it was asked under. The one who asked never approves their own request, but may
/// withdraw it by rejecting it.
pub fn may_decide(rules: &PromotionRules, requested_by: &str, decider: &Decider<'_>, approving: bool) -> Result<(), Refusal> {
    if decider.login == requested_by {
        return if approving { Err(Refusal::new("user", "you asked for this promotion: another person approves it")) } else { Ok(()) };
    }
    let role = if decider.server_admin { Some(Role::Admin) } else { decider.role };
    let eligible = if rules.approvers.is_empty() {
        role >= Some(Role::Write)
    } else {
        rules.approvers.iter().any(|approver| match approver.strip_prefix("role:") {
            Some("admin") => role >= Some(Role::Admin),
            Some("write") => role >= Some(Role::Write),
            Some(_) => false,
            None => approver == decider.login,
        })
    };
    if eligible {
        Ok(())
    } else if rules.approvers.is_empty() {
        Err(Refusal::new("user", "approving needs the write role on the repository that built the image"))
    } else {
        Err(Refusal::new("user", format!("this environment's approvers are {}", rules.approvers.join(", "))))
    }
}

/// `1h 5m`, `40s`, `0s`.
pub fn human_duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (days, hours, minutes, seconds) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        .into_iter()
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    if parts.is_empty() { "0s".to_owned() } else { parts.join(" ") }
}

/// Unix milliseconds as `2026-12-24T00:00:00Z`.
pub fn rfc3339(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let (year, month, day) = civil_from_days(days);
    let rest = seconds % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// Days since 1970-01-01 as a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if month_index < 10 { month_index + 3 } else { month_index - 9 }).unwrap_or(1);
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn rules() -> PromotionRules {
        PromotionRules { open: true, timeout_ms: 24 * 3_600_000, ..PromotionRules::default() }
    }

    fn facts(workflows: Option<&[(String, bool)]>) -> RequestFacts<'_> {
        RequestFacts { from_environment: "staging", now_ms: 10 * HOUR, healthy_since_ms: 8 * HOUR, workflows }
    }

    #[test]
    fn without_rules_any_version_may_be_promoted() {
        assert_eq!(check_request(&rules(), &facts(None)), Ok(()));
    }

    #[test]
    fn an_environment_without_promotion_rules_takes_no_promotions() {
        let closed = PromotionRules { open: false, ..rules() };
        let refusal = check_request(&closed, &facts(None)).unwrap_err();
        assert_eq!(refusal.field, "environment");
        assert!(refusal.message.starts_with("this environment takes no promotions"), "{}", refusal.message);
    }

    #[test]
    fn a_version_comes_only_from_the_environments_listed() {
        let rules = PromotionRules { from: vec!["qa".to_owned()], ..rules() };
        let refusal = check_request(&rules, &facts(None)).unwrap_err();
        assert_eq!(refusal.field, "from");
        assert_eq!(refusal.message, "this environment takes promotions from qa only, not from staging");
    }

    #[test]
    fn a_version_must_have_soaked_long_enough_where_it_runs() {
        let three_hours = PromotionRules { soak_ms: 3 * 3_600_000, ..rules() };
        let refusal = check_request(&three_hours, &facts(None)).unwrap_err();
        assert_eq!(refusal.message, "the version has run in staging for 2h; this environment asks for 3h (soak)");
        let two_hours = PromotionRules { soak_ms: 2 * 3_600_000, ..rules() };
        assert_eq!(check_request(&two_hours, &facts(None)), Ok(()));
    }

    #[test]
    fn required_checks_are_workflows_of_the_images_build_that_succeeded() {
        let rules = PromotionRules { checks: vec!["test".to_owned(), "scan".to_owned()], ..rules() };
        let passed = [("test".to_owned(), true), ("scan".to_owned(), true), ("lint".to_owned(), false)];
        assert_eq!(check_request(&rules, &facts(Some(&passed))), Ok(()));
        let failed = [("test".to_owned(), true), ("scan".to_owned(), false)];
        assert_eq!(
            check_request(&rules, &facts(Some(&failed))).unwrap_err().message,
            "the image's build did not pass the required check `scan`"
        );
        let missing = [("test".to_owned(), true)];
        assert_eq!(
            check_request(&rules, &facts(Some(&missing))).unwrap_err().message,
            "the image's build has no workflow `scan`, a required check"
        );
        assert!(check_request(&rules, &facts(None)).unwrap_err().message.starts_with("no build of this server pushed the image"));
    }

    #[test]
    fn nothing_is_promoted_during_a_change_freeze() {
        let rules = PromotionRules {
            freezes: vec![FreezeWindow { from_ms: 9 * 3_600_000, to_ms: 11 * 3_600_000, reason: "year end".to_owned() }],
            ..rules()
        };
        let refusal = check_request(&rules, &facts(None)).unwrap_err();
        assert_eq!(refusal.message, "a change freeze is in force until 1970-01-01T11:00:00Z (year end)");
        let after = RequestFacts { now_ms: 11 * HOUR, ..facts(None) };
        assert_eq!(check_request(&rules, &after), Ok(()), "the window's end is not in it");
    }

    fn decider(login: &str, role: Option<Role>) -> Decider<'_> {
        Decider { login, server_admin: false, role }
    }

    #[test]
    fn who_asked_never_approves_but_may_withdraw() {
        let refusal = may_decide(&rules(), "ada", &decider("ada", Some(Role::Admin)), true).unwrap_err();
        assert_eq!(refusal.message, "you asked for this promotion: another person approves it");
        assert_eq!(may_decide(&rules(), "ada", &decider("ada", Some(Role::Admin)), false), Ok(()));
    }

    #[test]
    fn without_approvers_anyone_with_write_on_the_building_repository_approves() {
        assert_eq!(may_decide(&rules(), "ada", &decider("bob", Some(Role::Write)), true), Ok(()));
        assert!(may_decide(&rules(), "ada", &decider("eve", Some(Role::Read)), true).is_err());
        assert!(may_decide(&rules(), "ada", &decider("eve", None), true).is_err());
        let admin = Decider { login: "root", server_admin: true, role: None };
        assert_eq!(may_decide(&rules(), "ada", &admin, true), Ok(()));
    }

    #[test]
    fn approvers_are_users_by_name_or_roles() {
        let rules = PromotionRules { approvers: vec!["carol".to_owned(), "role:admin".to_owned()], ..rules() };
        assert_eq!(may_decide(&rules, "ada", &decider("carol", None), true), Ok(()));
        assert_eq!(may_decide(&rules, "ada", &decider("dan", Some(Role::Admin)), true), Ok(()));
        let refusal = may_decide(&rules, "ada", &decider("bob", Some(Role::Write)), true).unwrap_err();
        assert_eq!(refusal.message, "this environment's approvers are carol, role:admin");
    }

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(90_061_000), "1d 1h 1m 1s");
        assert_eq!(rfc3339(1_798_070_400_000), "2026-12-24T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
