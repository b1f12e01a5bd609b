//! Image automation: for an application with an image policy, the newest image of its registry
//! repository the policy takes, and the commit that moves the application there (the file's
//! edit and the message; the deployer's git layer writes it). `choose`, `commit_message` and
//! what they use do no IO; `find_updates` asks the registries, politely: only about tags that
//! could win, best first, until one does.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use registry::{Credentials, Registry, RegistryError};
use tracing::Instrument as _;

use crate::edit::{EditError, set_image};
use crate::model::{App, EnvironmentRepo, ImagePolicy, ImageRef, ImageRule, RegexOrder};

/// The most tags whose configuration one application's semver or regex policy reads per poll:
/// tags that could win are read best first and the first one the policy takes ends it, so
/// this only bounds a run of held or still maturing versions.
const MAX_RANKED_READS: usize = 10;
/// The most tags a branch policy resolves per poll. Nothing in a tag says when it was built,
/// so the tags that name the branch are looked at first (`main`, `main-42`), then the others,
/// highest first.
const MAX_BRANCH_TAGS: usize = 25;

/// The label Gantry's builds put on an image built from a branch's own commit.
pub const BRANCH_LABEL: &str = "io.gantry.branch";

/// An image the registry holds under one tag, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub tag: String,
    /// The manifest's digest (`sha256:…`), an index's own for a multi-platform image.
    pub digest: String,
    /// When the image was built; `None` when its configuration does not say.
    pub created: Option<SystemTime>,
    pub labels: BTreeMap<String, String>,
}

/// Where an image came from, as its labels say. Every value is one line of at most
/// `MAX_LABEL_CHARS` characters: labels are anyone's text, and they end up in a commit message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The commit it was built from (`org.opencontainers.image.revision`).
    pub revision: Option<String>,
    /// The CI repository (`io.gantry.repo`).
    pub repo: Option<String>,
    /// The build number (`io.gantry.build`).
    pub build: Option<String>,
    /// The pipeline file (`io.gantry.pipeline`).
    pub pipeline: Option<String>,
    /// The build's page (`org.opencontainers.image.url`).
    pub url: Option<String>,
    /// The branch, when built from a branch's own commit (`io.gantry.branch`).
    pub branch: Option<String>,
}

const MAX_LABEL_CHARS: usize = 200;

impl Provenance {
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Provenance {
        let get = |key: &str| labels.get(key).and_then(|value| one_line(value));
        Provenance {
            revision: get("org.opencontainers.image.revision"),
            repo: get("io.gantry.repo"),
            build: get("io.gantry.build"),
            pipeline: get("io.gantry.pipeline"),
            url: get("org.opencontainers.image.url"),
            branch: get(BRANCH_LABEL),
        }
    }
}

/// `value` with control characters (line breaks among them) as spaces, trimmed and cut to
/// `MAX_LABEL_CHARS`; `None` when nothing is left. A label must not be able to write a line of
/// its own, a trailer, into a commit message.
fn one_line(value: &str) -> Option<String> {
    let line: String = value.chars().map(|character| if character.is_control() { ' ' } else { character }).take(MAX_LABEL_CHARS).collect();
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// One application moved to a newer image: what the deployer's commit changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUpdate {
    pub app: String,
    /// The application's file, relative to the repository (`apps/web.yml`).
    pub file: String,
    pub from: ImageRef,
    /// `repository:tag@digest`.
    pub to: ImageRef,
    /// The policy that chose it.
    pub policy: ImagePolicy,
    pub provenance: Provenance,
}

impl ImageUpdate {
    fn new(app: &App, policy: &ImagePolicy, chosen: Candidate) -> ImageUpdate {
        ImageUpdate {
            app: app.name.clone(),
            file: app.file.clone(),
            from: app.image.clone(),
            to: ImageRef { repository: app.image.repository.clone(), tag: Some(chosen.tag), digest: Some(chosen.digest) },
            policy: policy.clone(),
            provenance: Provenance::from_labels(&chosen.labels),
        }
    }

    /// The application file's `text` with its image moved to `to`, comments kept.
    pub fn edit(&self, text: &str) -> Result<String, EditError> {
        set_image(&self.file, text, &self.to.to_string())
    }
}

/// A policy that cannot choose: its range or pattern does not parse. `read` reports the same
/// as a diagnostic, so a repository that reads cleanly has none.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("`{range}` is not a version range: {reason}")]
    InvalidRange { range: String, reason: String },
    #[error("`{pattern}` is not a regular expression: {reason}")]
    InvalidPattern { pattern: String, reason: String },
}

/// Why one application's automation was skipped in a poll.
#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A policy's rule, compiled.
pub(crate) enum Rule {
    Semver(semver::VersionReq),
    Regex { regex: regex::Regex, order: RegexOrder },
    Branch(String),
}

/// Where a tag stands under a semver or regex rule; higher is newer. Within one rule every
/// rank is of the same kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Version(semver::Version),
    /// Digits without leading zeros, compared by length then text: any size of number.
    Number {
        digits: usize,
        text: String,
    },
    Text(String),
}

impl Rule {
    pub(crate) fn new(rule: &ImageRule) -> Result<Rule, PolicyError> {
        Ok(match rule {
            ImageRule::Semver(range) => Rule::Semver(
                semver::VersionReq::parse(range)
                    .map_err(|error| PolicyError::InvalidRange { range: range.clone(), reason: error.to_string() })?,
            ),
            ImageRule::Regex { pattern, order } => Rule::Regex {
                regex: regex::Regex::new(pattern)
                    .map_err(|error| PolicyError::InvalidPattern { pattern: pattern.clone(), reason: last_line(&error.to_string()) })?,
                order: *order,
            },
            ImageRule::Branch(branch) => Rule::Branch(branch.clone()),
        })
    }

    /// `tag`'s rank when it is a version the rule takes: within the range (prereleases only
    /// when the range names one), or matching the pattern with an orderable first group.
    fn rank(&self, tag: &str) -> Option<Rank> {
        match self {
            Rule::Semver(range) => version_of(tag).filter(|version| range.matches(version)).map(Rank::Version),
            _ => self.position(tag),
        }
    }

    /// Where `tag` stands in the rule's order whether or not the rule takes it: the current
    /// version is compared by this (an application at `2.0.0` under `^1.4` is not moved
    /// back to 1.x).
    fn position(&self, tag: &str) -> Option<Rank> {
        match self {
            Rule::Semver(_) => version_of(tag).map(Rank::Version),
            Rule::Regex { regex, order } => {
                let captures = regex.captures(tag)?;
                let key = if captures.len() > 1 { captures.get(1)?.as_str() } else { captures.get(0)?.as_str() };
                match order {
                    RegexOrder::Alphabetical => Some(Rank::Text(key.to_owned())),
                    RegexOrder::Numeric => {
                        if key.is_empty() || !key.bytes().all(|byte| byte.is_ascii_digit()) {
                            return None;
                        }
                        let text = key.trim_start_matches('0').to_owned();
                        Some(Rank::Number { digits: text.len(), text })
                    }
                }
            }
            Rule::Branch(_) => None,
        }
    }
}

/// The regex crate's syntax errors draw the pattern with a caret under the mistake, over
/// several lines; a diagnostic is one: the last line says what is wrong.
fn last_line(text: &str) -> String {
    let line = text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or(text);
    line.trim().trim_start_matches("error: ").to_owned()
}

/// `1.4.2` or `v1.4.2` as a version.
fn version_of(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// The tags that tell nothing about an application's versions: the referrers tags clients
/// keep for attestations and signatures (`sha256-<hex>`, `sha256-<hex>.sig`).
fn is_referrers_tag(tag: &str) -> bool {
    tag.starts_with("sha256-")
}

fn is_held(candidate: &Candidate, holds: &[String]) -> bool {
    holds.iter().any(|hold| *hold == candidate.digest || *hold == candidate.tag)
}

/// True when `candidate` has been out for the policy's `maturing` time by `now`. An image that
/// does not say when it was built is taken at once only by a policy that does not wait.
fn is_mature(candidate: &Candidate, maturing: Duration, now: SystemTime) -> bool {
    match candidate.created {
        Some(created) => created.checked_add(maturing).is_some_and(|ready| ready <= now),
        None => maturing.is_zero(),
    }
}

/// The newest image `policy` takes for an application at `current`, or `None` when there is
/// none or the application already runs it (by digest).
///
/// - semver: the highest version within the range (`v1.2.3` reads as `1.2.3`; prereleases
///   only when the range names one), and only above the current tag's version;
/// - regex: tags matching the pattern, ordered by the first capture group (numerically or
///   alphabetically), and only one that orders after the current tag when that matches;
/// - branch: the newest image (by creation time, then tag) labelled with the branch, and never
///   one older than the current image when the current one is of that branch too.
///
/// Held images (by digest or tag) and images younger than the policy's `maturing` are never
/// taken. Equal versions under two tags (`1.5.0`, `v1.5.0`) resolve to the one written like
/// the current tag.
pub fn choose(policy: &ImagePolicy, current: &ImageRef, candidates: &[Candidate], holds: &[String], now: SystemTime) -> Option<Candidate> {
    let rule = Rule::new(&policy.rule).ok()?;
    let best = best(&rule, policy, current, candidates, holds, now)?;
    (current.digest.as_deref() != Some(best.digest.as_str())).then(|| best.clone())
}

/// `choose` before its last question: the candidate the policy prefers, even when it is what
/// already runs.
fn best<'a>(
    rule: &Rule,
    policy: &ImagePolicy,
    current: &ImageRef,
    candidates: &'a [Candidate],
    holds: &[String],
    now: SystemTime,
) -> Option<&'a Candidate> {
    let eligible = |candidate: &&Candidate| {
        !is_referrers_tag(&candidate.tag) && !is_held(candidate, holds) && is_mature(candidate, policy.maturing, now)
    };
    match rule {
        Rule::Branch(branch) => {
            let on_branch = |candidate: &Candidate| candidate.labels.get(BRANCH_LABEL) == Some(branch);
            // Never back in time on the branch: a held or maturing newest image must not send
            // the application to one older than the one it runs.
            let current_digest = current.digest.as_deref();
            let current_created = candidates
                .iter()
                .find(|candidate| Some(candidate.digest.as_str()) == current_digest && on_branch(candidate))
                .and_then(|candidate| candidate.created);
            let not_older = |candidate: &&Candidate| {
                Some(candidate.digest.as_str()) == current_digest
                    || current_created.is_none_or(|current| candidate.created.is_some_and(|created| created > current))
            };
            candidates
                .iter()
                .filter(|candidate| on_branch(candidate))
                .filter(eligible)
                .filter(not_older)
                .max_by(|left, right| branch_order(left, right, branch))
        }
        _ => {
            let current_position = current.tag.as_deref().and_then(|tag| rule.position(tag));
            candidates
                .iter()
                .filter(eligible)
                .filter_map(|candidate| rule.rank(&candidate.tag).map(|rank| (rank, candidate)))
                .filter(|(rank, _)| current_position.as_ref().is_none_or(|position| rank > position))
                .max_by(|(left_rank, left), (right_rank, right)| rank_order((left_rank, &left.tag), (right_rank, &right.tag), current))
                .map(|(_, candidate)| candidate)
        }
    }
}

/// Higher rank first; one version under two tags (`1.5.0`, `v1.5.0`) is written like the
/// current tag, then by the tag's text.
fn rank_order(left: (&Rank, &str), right: (&Rank, &str), current: &ImageRef) -> Ordering {
    let current_has_v = current.tag.as_deref().is_some_and(|tag| tag.starts_with('v'));
    let written_alike = |tag: &str| tag.starts_with('v') == current_has_v;
    left.0.cmp(right.0).then_with(|| written_alike(left.1).cmp(&written_alike(right.1))).then_with(|| left.1.cmp(right.1))
}

/// Newer first by creation time; one image under several tags is written by its most
/// lasting tag (`main-42` rather than `main` or `latest`, which move).
fn branch_order(left: &Candidate, right: &Candidate, branch: &str) -> Ordering {
    let lasting = |candidate: &Candidate| candidate.tag != branch && candidate.tag != "latest";
    left.created.cmp(&right.created).then_with(|| lasting(left).cmp(&lasting(right))).then_with(|| left.tag.cmp(&right.tag))
}

/// The tags worth reading for `rule`, most promising first: for semver and regex the versions
/// the rule takes above the current one, highest first (tags held by name left out); for a
/// branch every tag but referrers tags, those naming the branch first, then highest first.
fn ranked_tags(rule: &Rule, current: &ImageRef, tags: &[String], holds: &[String]) -> Vec<String> {
    let mut ranked: Vec<&String> = tags.iter().filter(|tag| !is_referrers_tag(tag) && !holds.contains(tag)).collect();
    match rule {
        Rule::Branch(branch) => {
            let names_branch = |tag: &str| tag.contains(branch.as_str());
            ranked.sort_by(|left, right| names_branch(right).cmp(&names_branch(left)).then_with(|| natural_order(right, left)));
        }
        _ => {
            let current_position = current.tag.as_deref().and_then(|tag| rule.position(tag));
            let mut with_rank: Vec<(Rank, &String)> = ranked
                .into_iter()
                .filter_map(|tag| rule.rank(tag).map(|rank| (rank, tag)))
                .filter(|(rank, _)| current_position.as_ref().is_none_or(|position| rank > position))
                .collect();
            with_rank.sort_by(|(left_rank, left), (right_rank, right)| rank_order((right_rank, right), (left_rank, left), current));
            ranked = with_rank.into_iter().map(|(_, tag)| tag).collect();
        }
    }
    ranked.into_iter().cloned().collect()
}

/// Text order with runs of digits compared as numbers (`main-9` before `main-10`).
fn natural_order(left: &str, right: &str) -> Ordering {
    let (mut left, mut right) = (left, right);
    loop {
        match (left.chars().next(), right.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(left_char), Some(right_char)) if left_char.is_ascii_digit() && right_char.is_ascii_digit() => {
                let left_end = left.find(|character: char| !character.is_ascii_digit()).unwrap_or(left.len());
                let right_end = right.find(|character: char| !character.is_ascii_digit()).unwrap_or(right.len());
                let (left_number, right_number) = (left[..left_end].trim_start_matches('0'), right[..right_end].trim_start_matches('0'));
                let order = left_number.len().cmp(&right_number.len()).then_with(|| left_number.cmp(right_number));
                if order != Ordering::Equal {
                    return order;
                }
                (left, right) = (&left[left_end..], &right[right_end..]);
            }
            (Some(left_char), Some(right_char)) => {
                if left_char != right_char {
                    return left_char.cmp(&right_char);
                }
                (left, right) = (&left[left_char.len_utf8()..], &right[right_char.len_utf8()..]);
            }
        }
    }
}

/// The message of the commit that makes `update`: a short subject, what changes from what to
/// what (with digests), the policy, the build it came from, and trailers a tool can read
/// (`Gantry-Image`, `Gantry-Build`).
pub fn commit_message(update: &ImageUpdate) -> String {
    let to_tag = update.to.tag.as_deref().or(update.to.digest.as_deref()).unwrap_or("a new image");
    let mut message = format!("Update {} to {to_tag}\n\n", update.app);
    let _ = writeln!(message, "{} ({}):", update.app, update.file);
    let _ = writeln!(message, "  {}", update.from);
    let _ = writeln!(message, "→ {}", update.to);
    message.push('\n');
    let _ = write!(message, "Chosen by the image policy `{}`", rule_text(&update.policy.rule));
    if !update.policy.maturing.is_zero() {
        let _ = write!(message, " (maturing {})", duration_text(update.policy.maturing));
    }
    message.push_str(".\n");
    message.push_str(&provenance_sentence(&update.provenance));
    message.push('\n');
    if let Some(url) = &update.provenance.url {
        let _ = writeln!(message, "Build: {url}");
    }
    message.push('\n');
    if let Some(digest) = &update.to.digest {
        let _ = writeln!(message, "Gantry-Image: {}@{digest}", update.to.repository);
    }
    if let Some(url) = &update.provenance.url {
        let _ = writeln!(message, "Gantry-Build: {url}");
    }
    message
}

/// "Built from commit 0123abc of acme/web on branch main, build 42 (.woodpecker.yml)." with
/// what the labels told, or a sentence saying they told nothing.
fn provenance_sentence(provenance: &Provenance) -> String {
    let mut parts = Vec::new();
    if let Some(revision) = &provenance.revision {
        parts.push(format!("commit {revision}"));
    }
    if let Some(repo) = &provenance.repo {
        parts.push(format!("of {repo}"));
    }
    if let Some(branch) = &provenance.branch {
        parts.push(format!("on branch {branch}"));
    }
    let mut sentence = if parts.is_empty() { String::new() } else { format!("Built from {}", parts.join(" ")) };
    if let Some(build) = &provenance.build {
        sentence.push_str(if sentence.is_empty() { "Built by build " } else { ", build " });
        sentence.push_str(build);
    }
    if let Some(pipeline) = &provenance.pipeline {
        if sentence.is_empty() {
            sentence.push_str("Built by the pipeline ");
            sentence.push_str(pipeline);
        } else {
            let _ = write!(sentence, " ({pipeline})");
        }
    }
    if sentence.is_empty() {
        return "The image's labels do not say which build made it.".to_owned();
    }
    sentence.push('.');
    sentence
}

fn rule_text(rule: &ImageRule) -> String {
    match rule {
        ImageRule::Semver(range) => format!("semver: {range}"),
        ImageRule::Regex { pattern, order: RegexOrder::Numeric } => format!("regex: {pattern}, order: numeric"),
        ImageRule::Regex { pattern, order: RegexOrder::Alphabetical } => format!("regex: {pattern}, order: alphabetical"),
        ImageRule::Branch(branch) => format!("branch: {branch}"),
    }
}

/// `1h30m`, `10m`, `45s`: the way the files write durations.
fn duration_text(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if value > 0 {
            let _ = write!(text, "{value}{unit}");
        }
    }
    if text.is_empty() { format!("{}ms", duration.as_millis()) } else { text }
}

/// The image updates the policies of `repository`'s applications ask for now. Each
/// application's registry is asked with `credentials_for(registry host)`; an application whose
/// registry fails or refuses is skipped with a warning, and the others go on.
pub async fn find_updates(
    repository: &EnvironmentRepo,
    registry: &Registry,
    credentials_for: impl Fn(&str) -> Option<Credentials>,
    now: SystemTime,
) -> Vec<ImageUpdate> {
    let mut updates = Vec::new();
    for app in repository.apps.values() {
        let Some(policy) = &app.image_policy else { continue };
        let span = tracing::info_span!("image_automation", app = %app.name, repository = %app.image.repository);
        let credentials = credentials_for(docker::registry_host(&app.image.repository));
        match find_update(app, policy, registry, credentials.as_ref(), now).instrument(span.clone()).await {
            Ok(Some(update)) => {
                span.in_scope(|| tracing::info!(from = %update.from, to = %update.to, "a newer image is due"));
                updates.push(update);
            }
            Ok(None) => {}
            Err(error) => span.in_scope(|| tracing::warn!(error = %error, "image automation skipped the application this time")),
        }
    }
    updates
}

/// One application's update, reading no more of its registry than the decision needs.
async fn find_update(
    app: &App,
    policy: &ImagePolicy,
    registry: &Registry,
    credentials: Option<&Credentials>,
    now: SystemTime,
) -> Result<Option<ImageUpdate>, AutomationError> {
    let rule = Rule::new(&policy.rule)?;
    let repository = &app.image.repository;
    let tags = registry.list_tags(repository, credentials).await?;
    let ranked = ranked_tags(&rule, &app.image, &tags, &app.holds);
    let mut candidates = Vec::new();
    let decided = |candidates: &[Candidate]| {
        best(&rule, policy, &app.image, candidates, &app.holds, now)
            .map(|best| (app.image.digest.as_deref() != Some(best.digest.as_str())).then(|| ImageUpdate::new(app, policy, best.clone())))
    };
    if let Rule::Branch(_) = rule {
        // Configurations by digest: one image under several tags is read once, the current
        // one always (so that nothing older than it is taken), held ones never.
        let mut configs: HashMap<String, registry::ImageConfig> = HashMap::new();
        if let Some(digest) = &app.image.digest
            && let Some(config) = skip_missing(registry.image_config(repository, digest, credentials).await)?
        {
            let tag = app.image.tag.clone().unwrap_or_else(|| digest.clone());
            candidates.push(candidate(tag, digest.clone(), &config));
            configs.insert(digest.clone(), config);
        }
        for tag in ranked.iter().take(MAX_BRANCH_TAGS) {
            let Some(digest) = skip_missing(registry.resolve(repository, tag, credentials).await)? else { continue };
            if app.holds.contains(&digest) {
                continue;
            }
            if !configs.contains_key(&digest) {
                let Some(config) = skip_missing(registry.image_config(repository, &digest, credentials).await)? else { continue };
                configs.insert(digest.clone(), config);
            }
            if let Some(config) = configs.get(&digest) {
                candidates.push(candidate(tag.clone(), digest, config));
            }
        }
        return Ok(decided(&candidates).flatten());
    }
    for tag in ranked.iter().take(MAX_RANKED_READS) {
        let Some(config) = skip_missing(registry.image_config(repository, tag, credentials).await)? else { continue };
        candidates.push(candidate(tag.clone(), config.digest.clone(), &config));
        // Tags are read best first, so the first the policy takes is the answer.
        if let Some(decision) = decided(&candidates) {
            return Ok(decision);
        }
    }
    if ranked.len() > MAX_RANKED_READS {
        tracing::debug!(
            read = MAX_RANKED_READS,
            newer = ranked.len(),
            "no version the policy takes among the highest; the rest wait for the next poll"
        );
    }
    Ok(None)
}

fn candidate(tag: String, digest: String, config: &registry::ImageConfig) -> Candidate {
    Candidate { tag, digest, created: config.created, labels: config.labels.clone() }
}

/// A tag removed between the listing and the read is no candidate; other failures are the
/// application's.
fn skip_missing<T>(result: Result<T, RegistryError>) -> Result<Option<T>, RegistryError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(RegistryError::NotFound { reference }) => {
            tracing::debug!(%reference, "gone since the tags were listed");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_tags_order_as_numbers() {
        let mut tags = vec!["main-10", "main-9", "main-100", "main-9a", "main"];
        tags.sort_by(|left, right| natural_order(left, right));
        assert_eq!(tags, ["main", "main-9", "main-9a", "main-10", "main-100"]);
    }

    #[test]
    fn a_label_cannot_add_a_line_to_a_commit_message() {
        assert_eq!(one_line("abc\nGantry-Image: evil\r\n").as_deref(), Some("abc Gantry-Image: evil"));
        assert_eq!(one_line(" \n "), None);
        assert_eq!(one_line(&"x".repeat(500)).map(|line| line.len()), Some(MAX_LABEL_CHARS));
    }

    #[test]
    fn durations_read_as_the_files_write_them() {
        assert_eq!(duration_text(Duration::from_secs(5400)), "1h30m");
        assert_eq!(duration_text(Duration::from_secs(600)), "10m");
        assert_eq!(duration_text(Duration::from_millis(500)), "500ms");
    }
}
