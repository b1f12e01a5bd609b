//! Image automation's decisions, without a registry: which image each kind of policy takes
//! (semver ranges, patterns ordered numerically or alphabetically, the newest of a branch),
//! what it never takes (held, still maturing, older than what runs, what already runs), and
//! the commit message that says so.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deploy::automation::{Candidate, ImageUpdate, Provenance, choose, commit_message};
use deploy::model::{ImagePolicy, ImageRef, ImageRule, RegexOrder};
use sha2::{Digest as _, Sha256};

const REPOSITORY: &str = "registry.example.com/shop/web";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A digest of the test's own for `tag`: one image per tag unless a test says otherwise.
fn digest(tag: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(tag.as_bytes())))
}

/// An image in the registry, a day old, with no labels.
fn image(tag: &str) -> Candidate {
    Candidate { tag: tag.to_owned(), digest: digest(tag), created: Some(now() - Duration::from_secs(86_400)), labels: BTreeMap::new() }
}

trait CandidateExt {
    fn built_minutes_ago(self, minutes: u64) -> Candidate;
    fn of_unknown_age(self) -> Candidate;
    fn on_branch(self, branch: &str) -> Candidate;
    fn same_image_as(self, tag: &str) -> Candidate;
}

impl CandidateExt for Candidate {
    fn built_minutes_ago(mut self, minutes: u64) -> Candidate {
        self.created = Some(now() - Duration::from_secs(minutes * 60));
        self
    }
    fn of_unknown_age(mut self) -> Candidate {
        self.created = None;
        self
    }
    fn on_branch(mut self, branch: &str) -> Candidate {
        self.labels.insert("io.gantry.branch".to_owned(), branch.to_owned());
        self
    }
    fn same_image_as(mut self, tag: &str) -> Candidate {
        self.digest = digest(tag);
        self
    }
}

fn images(tags: &[&str]) -> Vec<Candidate> {
    tags.iter().map(|tag| image(tag)).collect()
}

fn semver(range: &str) -> ImagePolicy {
    ImagePolicy { rule: ImageRule::Semver(range.to_owned()), maturing: Duration::ZERO }
}

fn regex(pattern: &str, order: RegexOrder) -> ImagePolicy {
    ImagePolicy { rule: ImageRule::Regex { pattern: pattern.to_owned(), order }, maturing: Duration::ZERO }
}

fn branch(name: &str) -> ImagePolicy {
    ImagePolicy { rule: ImageRule::Branch(name.to_owned()), maturing: Duration::ZERO }
}

fn maturing(mut policy: ImagePolicy, minutes: u64) -> ImagePolicy {
    policy.maturing = Duration::from_secs(minutes * 60);
    policy
}

/// An application at `tag` (its digest the test's own for it); `""`: a repository without tag.
fn at(tag: &str) -> ImageRef {
    let tag = (!tag.is_empty()).then(|| tag.to_owned());
    let digest = Some(digest(tag.as_deref().unwrap_or("untagged")));
    ImageRef { repository: REPOSITORY.to_owned(), tag, digest }
}

/// The tag `policy` moves an application at `current` to among `candidates`, with `holds`;
/// `"none"` when it stays. The chosen candidate is checked to be one of those offered.
fn check(policy: &ImagePolicy, current: &str, holds: &[&str], candidates: &[Candidate]) -> String {
    let holds: Vec<String> = holds.iter().map(|hold| (*hold).to_owned()).collect();
    match choose(policy, &at(current), candidates, &holds, now()) {
        Some(chosen) => {
            assert!(candidates.contains(&chosen), "{chosen:?} is not one of the candidates");
            chosen.tag
        }
        None => "none".to_owned(),
    }
}

#[test]
fn semver_takes_the_highest_version_in_range_above_the_current_one() {
    let registry = images(&["1.3.9", "1.4.0", "1.4.1", "1.5.0", "2.0.0", "latest", "1.5", "main-7"]);
    let cases: &[(&str, &str, &str)] = &[
        ("^1.4", "1.4.0", "1.5.0"),
        ("~1.4", "1.4.0", "1.4.1"),
        ("^1.4", "1.5.0", "none"),
        (">=1.4.0, <1.5.0", "1.4.0", "1.4.1"),
        // Never back into the range from above it.
        ("^1.4", "2.0.0", "none"),
        // A current tag that is no version is moved to the range's highest.
        ("^1.4", "latest", "1.5.0"),
        ("^1.4", "", "1.5.0"),
        ("*", "1.4.0", "2.0.0"),
        // A range that does not parse chooses nothing (`read` reports it).
        ("^1.4.x.y", "1.4.0", "none"),
    ];
    for (range, current, expected) in cases {
        assert_eq!(check(&semver(range), current, &[], &registry), *expected, "{range} at {current}");
    }
}

#[test]
fn semver_leaves_prereleases_out_unless_the_range_names_one() {
    let registry = images(&["1.4.0", "1.4.1", "1.5.0-rc.1", "1.5.0-rc.2", "2.0.0-beta.1"]);
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[], &registry), "1.4.1");
    assert_eq!(check(&semver(">=1.5.0-rc.1, <2"), "1.4.1", &[], &registry), "1.5.0-rc.2");
    // A prerelease that runs is left for the release.
    let released = images(&["1.5.0-rc.2", "1.5.0"]);
    assert_eq!(check(&semver("^1.4"), "1.5.0-rc.2", &[], &released), "1.5.0");
}

#[test]
fn semver_reads_tags_with_a_leading_v_and_writes_them_like_the_current_tag() {
    assert_eq!(check(&semver("^1.4"), "v1.4.0", &[], &images(&["v1.4.1", "v1.5.0", "v2.0.0"])), "v1.5.0");
    let both = images(&["1.5.0", "v1.5.0"]);
    assert_eq!(check(&semver("^1.4"), "v1.4.0", &[], &both), "v1.5.0");
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[], &both), "1.5.0");
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[], &images(&["v1.4.1", "vv1.5.0", "1.5.0.0"])), "v1.4.1");
}

#[test]
fn held_images_are_skipped_by_digest_and_by_tag() {
    let registry = images(&["1.4.0", "1.4.1", "1.5.0"]);
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[&digest("1.5.0")], &registry), "1.4.1");
    assert_eq!(check(&semver("^1.4"), "1.4.0", &["1.5.0"], &registry), "1.4.1");
    assert_eq!(check(&semver("^1.4"), "1.4.0", &["1.5.0", &digest("1.4.1")], &registry), "none");
    // A hold is on the image, whatever tag it comes under.
    let retagged = vec![image("1.4.1"), image("1.5.0"), image("1.5.1").same_image_as("1.5.0")];
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[&digest("1.5.0")], &retagged), "1.4.1");
}

#[test]
fn an_image_is_taken_only_once_it_has_matured() {
    let registry = vec![image("1.4.1").built_minutes_ago(120), image("1.5.0").built_minutes_ago(5)];
    assert_eq!(check(&maturing(semver("^1.4"), 10), "1.4.0", &[], &registry), "1.4.1");
    assert_eq!(check(&maturing(semver("^1.4"), 5), "1.4.0", &[], &registry), "1.5.0", "exactly old enough is old enough");
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[], &registry), "1.5.0");
    assert_eq!(check(&maturing(semver("^1.4"), 180), "1.4.0", &[], &registry), "none");
    // An image that does not say when it was built is taken only by a policy that does not wait.
    let unknown = vec![image("1.5.0").of_unknown_age()];
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[], &unknown), "1.5.0");
    assert_eq!(check(&maturing(semver("^1.4"), 1), "1.4.0", &[], &unknown), "none");
    // One built in the future (a skewed clock) waits like a new one.
    let mut ahead = image("1.5.0");
    ahead.created = Some(now() + Duration::from_secs(3600));
    assert_eq!(check(&maturing(semver("^1.4"), 10), "1.4.0", &[], &[ahead]), "none");
}

#[test]
fn an_application_already_at_the_chosen_image_stays() {
    // `1.5.0` is the image that runs, tagged again.
    let registry = vec![image("1.4.1"), image("1.5.0").same_image_as("1.4.0")];
    assert_eq!(check(&semver("^1.4"), "1.4.0", &[], &registry), "none");
}

#[test]
fn a_pattern_orders_tags_by_its_first_group_numerically_or_alphabetically() {
    let registry = images(&["main-9", "main-10", "main-100", "main-0099", "dev-200", "main-x", "main-"]);
    let numeric = regex(r"^main-(\d*)$", RegexOrder::Numeric);
    let alphabetical = regex(r"^main-(\d+)$", RegexOrder::Alphabetical);
    assert_eq!(check(&numeric, "main-9", &[], &registry), "main-100");
    assert_eq!(check(&alphabetical, "main-0099", &[], &registry), "main-9");
    assert_eq!(check(&numeric, "main-100", &[], &registry), "none", "nothing orders after it");
    assert_eq!(check(&numeric, "main-10", &["main-100"], &registry), "main-0099");
    assert_eq!(check(&numeric, "main-10", &["main-100", "main-0099"], &registry), "none", "held, and the rest is older");
    assert_eq!(check(&numeric, "latest", &[], &registry), "main-100", "a current tag the pattern does not match is no bound");

    let dated = images(&["build-20240131-ab12", "build-20240201-cd34", "build-2024020-ef56"]);
    let by_date = regex(r"^build-(\d{8})-[0-9a-f]+$", RegexOrder::Alphabetical);
    assert_eq!(check(&by_date, "build-20240131-ab12", &[], &dated), "build-20240201-cd34");
    // Without a group, the whole match orders.
    assert_eq!(check(&regex(r"^rc[a-z]$", RegexOrder::Alphabetical), "rca", &[], &images(&["rcb", "rcc", "rc1"])), "rcc");
    assert_eq!(check(&regex(r"^main-(\d+$", RegexOrder::Numeric), "main-1", &[], &registry), "none", "a broken pattern chooses nothing");
}

#[test]
fn a_branch_policy_takes_the_newest_image_labelled_with_the_branch() {
    let registry = vec![
        image("main-40").on_branch("main").built_minutes_ago(300),
        image("main-41").on_branch("main").built_minutes_ago(200),
        image("main-42").on_branch("main").built_minutes_ago(100),
        image("feature-7").on_branch("feature").built_minutes_ago(10),
        image("unlabelled").built_minutes_ago(5),
        image("sha256-0123").on_branch("main").built_minutes_ago(1),
    ];
    assert_eq!(check(&branch("main"), "main-40", &[], &registry), "main-42");
    assert_eq!(check(&branch("feature"), "main-40", &[], &registry), "feature-7");
    assert_eq!(check(&branch("main"), "main-42", &[], &registry), "none");
    assert_eq!(check(&branch("main"), "main-40", &["main-42"], &registry), "main-41");
    assert_eq!(check(&maturing(branch("main"), 150), "main-40", &[], &registry), "main-41");
    // Never back in time on the branch: with the newest held, the one running stays.
    assert_eq!(check(&branch("main"), "main-41", &[&digest("main-42")], &registry), "none");
    // An application running an image of another branch moves to this one's newest.
    assert_eq!(check(&branch("main"), "feature-7", &[], &registry), "main-42");

    // One image under a moving tag and a lasting one is written by the lasting one.
    let retagged = vec![
        image("main-42").on_branch("main").built_minutes_ago(100),
        image("main").on_branch("main").built_minutes_ago(100).same_image_as("main-42"),
        image("latest").on_branch("main").built_minutes_ago(100).same_image_as("main-42"),
    ];
    assert_eq!(check(&branch("main"), "main-40", &[], &retagged), "main-42");
    // Equal times: the tag decides, the same way every time.
    let twins = vec![image("main-b").on_branch("main").built_minutes_ago(5), image("main-a").on_branch("main").built_minutes_ago(5)];
    assert_eq!(check(&branch("main"), "", &[], &twins), "main-b");
}

fn update(labels: &[(&str, &str)]) -> ImageUpdate {
    let labels: BTreeMap<String, String> = labels.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    ImageUpdate {
        app: "web".to_owned(),
        file: "apps/web.yml".to_owned(),
        from: at("1.4.0"),
        to: ImageRef { repository: REPOSITORY.to_owned(), tag: Some("1.5.0".to_owned()), digest: Some(digest("1.5.0")) },
        policy: maturing(semver("^1.4"), 10),
        provenance: Provenance::from_labels(&labels),
    }
}

#[test]
fn the_commit_message_says_what_moves_where_why_and_from_which_build() {
    let update = update(&[
        ("org.opencontainers.image.revision", "0123abcd"),
        ("io.gantry.repo", "shop/web"),
        ("io.gantry.build", "42"),
        ("io.gantry.pipeline", ".woodpecker.yml"),
        ("io.gantry.branch", "main"),
        ("org.opencontainers.image.url", "https://ci.example.com/repos/shop/web/builds/42"),
    ]);
    let (from, to) = (digest("1.4.0"), digest("1.5.0"));
    assert_eq!(
        commit_message(&update),
        format!(
            "Update web to 1.5.0\n\
             \n\
             web (apps/web.yml):\n  \
             {REPOSITORY}:1.4.0@{from}\n\
             → {REPOSITORY}:1.5.0@{to}\n\
             \n\
             Chosen by the image policy `semver: ^1.4` (maturing 10m).\n\
             Built from commit 0123abcd of shop/web on branch main, build 42 (.woodpecker.yml).\n\
             Build: https://ci.example.com/repos/shop/web/builds/42\n\
             \n\
             Gantry-Image: {REPOSITORY}@{to}\n\
             Gantry-Build: https://ci.example.com/repos/shop/web/builds/42\n"
        )
    );
}

#[test]
fn an_image_without_provenance_says_so_and_labels_cannot_forge_trailers() {
    let plain = commit_message(&update(&[]));
    assert!(plain.contains("\nThe image's labels do not say which build made it.\n"), "{plain}");
    assert!(!plain.contains("Gantry-Build"), "{plain}");
    assert!(plain.ends_with(&format!("\n\nGantry-Image: {REPOSITORY}@{}\n", digest("1.5.0"))), "{plain}");

    let forged = commit_message(&update(&[("io.gantry.build", "7\n\nGantry-Image: evil.example.com/x@sha256:00")]));
    assert_eq!(forged.lines().filter(|line| line.starts_with("Gantry-Image:")).count(), 1, "{forged}");
    assert!(forged.contains("Built by build 7  Gantry-Image: evil.example.com/x@sha256:00."), "{forged}");
}

#[test]
fn the_edit_writes_repository_tag_and_digest_and_keeps_the_comment() {
    let update = update(&[]);
    let text = format!("version: 1\nimage: {REPOSITORY}:1.4.0@{}  # automated\nreplicas: 2\n", digest("1.4.0"));
    assert_eq!(
        update.edit(&text).unwrap(),
        format!("version: 1\nimage: {REPOSITORY}:1.5.0@{}  # automated\nreplicas: 2\n", digest("1.5.0"))
    );
}
