//! Reading environment repositories: the example reads whole; mistakes come all at once, each
//! with its file, line, column and a hint; checks across files (targets, ports, secrets,
//! digests) point at the line that causes them; an environment's promotion rules.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use deploy::model::{DriftPolicy, FreezeWindow, ImageRule, Probe, PromotionReview, PromotionRules, Protocol, TargetKind, UpdateOrder};
use deploy::read::{parse_bytes, parse_duration, parse_image};
use deploy::{ReadOptions, RepoFile, read_repository};
use pipeline::Diagnostic;
use proto::delivery::DEFAULT_APPROVAL_TIMEOUT_MS;

/// Every file under `root`, with paths relative to it.
fn load(root: &Path) -> Vec<RepoFile> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<RepoFile>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                files.push(RepoFile { path: relative, text: std::fs::read_to_string(&path).unwrap() });
            }
        }
    }
    let mut files = Vec::new();
    walk(root, root, &mut files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn example() -> Vec<RepoFile> {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/environment"))
}

fn file(path: &str, text: &str) -> RepoFile {
    RepoFile { path: path.to_owned(), text: text.to_owned() }
}

/// `file:line:column severity[code] message (hint)`, one per line.
fn listed(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            let hint = d.hint.as_deref().map(|hint| format!(" (hint: {hint})")).unwrap_or_default();
            format!("{}:{}:{} {}[{}] {}{hint}\n", d.file, d.line, d.column, d.severity.as_str(), d.code, d.message)
        })
        .collect()
}

const ENVIRONMENT: &str =
    "version: 1\nname: test\ntargets:\n  one: {kind: docker}\n  mesh: {kind: swarm}\ndefaults:\n  target: one\n  require_digest: false\n";
const DIGEST: &str = "sha256:4d1c1ef2a8c7e6f1b3d2e9c4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e";

fn app(extra: &str) -> String {
    format!("version: 1\nowner: {{team: a, contact: a@example.com}}\nimage: registry.example.com/a/app:1.0\n{extra}")
}

#[test]
fn the_example_environment_reads_whole() {
    let (repository, diagnostics) = read_repository(&example(), &ReadOptions::default());
    assert_eq!(listed(&diagnostics), "", "the example has no mistakes");
    let repository = repository.unwrap();
    assert_eq!(repository.environment.name, "production");
    assert_eq!(repository.environment.targets["edge"].kind, TargetKind::Swarm);
    let promotion = &repository.environment.promotion;
    assert_eq!((promotion.from.as_slice(), promotion.approvals, promotion.soak_ms), (&["staging".to_owned()][..], 1, 3_600_000));
    assert_eq!(repository.apps.keys().collect::<Vec<_>>(), ["web", "worker"]);

    let web = &repository.apps["web"];
    assert_eq!((web.owner.team.as_str(), web.target.as_str(), web.replicas), ("storefront", "edge", 2));
    assert_eq!(web.image.pull_reference(), format!("127.0.0.1:5000/examples/webapp@{DIGEST}"));
    assert_eq!(web.image.tag.as_deref(), Some("1.4.0"));
    assert_eq!((web.ports[0].published, web.ports[0].target, web.ports[0].protocol), (8080, 80, Protocol::Tcp));
    assert_eq!(web.configs[0].file, "apps/web/site.conf", "config paths are relative to the application's file");
    assert_eq!(web.secrets[0].target, "/run/secrets/session_key");
    let healthcheck = web.healthcheck.as_ref().unwrap();
    assert_eq!(healthcheck.probe, Probe::Command(["wget", "-q", "-O", "/dev/null", "http://127.0.0.1/healthz"].map(String::from).to_vec()));
    assert_eq!((healthcheck.interval, healthcheck.start_period), (Duration::from_secs(5), Duration::from_secs(10)));
    assert_eq!((web.resources.cpus, web.resources.memory), (Some(0.5), Some(128 << 20)));
    assert_eq!(web.update.monitor, Duration::from_secs(30), "from the environment's defaults");
    let policy = web.image_policy.as_ref().unwrap();
    assert_eq!((&policy.rule, policy.maturing), (&ImageRule::Semver("^1.4".into()), Duration::from_secs(600)));

    let worker = &repository.apps["worker"];
    assert_eq!(worker.command, ["worker", "--queue", "orders"]);
    assert_eq!((worker.drift, worker.update.order), (DriftPolicy::Warn, UpdateOrder::StopFirst));
    assert_eq!(worker.secrets[0].target, "/run/secrets/session");
}

#[test]
fn every_mistake_is_reported_at_once_with_its_place_and_a_hint() {
    let files = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/repos/mistakes"));
    let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert!(repository.is_none());
    insta::assert_snapshot!(listed(&diagnostics));
}

#[test]
fn promotion_rules_read_with_their_defaults() {
    let environment = format!(
        "{ENVIRONMENT}promotion:\n  from: [staging, qa]\n  approvals: 2\n  approvers: [ada, role:admin]\n  timeout: 2h\n  soak: 30m\n  \
         checks: [test, e2e]\n  freeze:\n    - {{from: 2026-12-24T00:00:00Z, to: '2026-12-27T08:00:00+01:00', reason: holidays}}\n    \
         - {{from: 2027-01-01T00:00:00Z, to: 2027-01-01T12:00:00Z}}\n  review: branch\n"
    );
    let (repository, diagnostics) = read_repository(&[file("environment.yml", &environment)], &ReadOptions::default());
    assert_eq!(listed(&diagnostics), "");
    let rules = repository.unwrap().environment.promotion;
    let christmas = 1_798_070_400_000; // 2026-12-24T00:00:00Z
    assert_eq!(
        rules,
        PromotionRules {
            open: true,
            from: vec!["staging".into(), "qa".into()],
            approvals: 2,
            approvers: vec!["ada".into(), "role:admin".into()],
            timeout_ms: 2 * 3_600_000,
            soak_ms: 30 * 60_000,
            checks: vec!["test".into(), "e2e".into()],
            freezes: vec![
                FreezeWindow { from_ms: christmas, to_ms: christmas + (3 * 24 + 7) * 3_600_000, reason: "holidays".into() },
                FreezeWindow { from_ms: 1_798_761_600_000, to_ms: 1_798_761_600_000 + 12 * 3_600_000, reason: String::new() },
            ],
            review: PromotionReview::Branch,
        }
    );

    // Written empty: from anywhere, no approvals, a day to approve, on the branch. Left out:
    // the environment takes no promotions.
    let defaults = PromotionRules { timeout_ms: DEFAULT_APPROVAL_TIMEOUT_MS, ..PromotionRules::default() };
    for (written, open) in [(String::new(), false), ("promotion:\n".to_owned(), true), ("promotion: {}\n".to_owned(), true)] {
        let environment = format!("{ENVIRONMENT}{written}");
        let (repository, diagnostics) = read_repository(&[file("environment.yml", &environment)], &ReadOptions::default());
        assert_eq!(listed(&diagnostics), "", "{written:?}");
        assert_eq!(repository.unwrap().environment.promotion, PromotionRules { open, ..defaults.clone() }, "{written:?}");
    }
}

#[test]
fn every_mistake_in_promotion_rules_is_reported_with_its_place() {
    let files = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/repos/promotion-mistakes"));
    let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert!(repository.is_none());
    insta::assert_snapshot!(listed(&diagnostics));
}

#[test]
fn approvals_no_named_approvers_can_give_are_a_warning() {
    let check = |rules: &str| {
        let environment = format!("{ENVIRONMENT}promotion: {rules}\n");
        let (repository, diagnostics) = read_repository(&[file("environment.yml", &environment)], &ReadOptions::default());
        assert!(repository.is_some(), "a warning does not stop the repository");
        listed(&diagnostics)
    };
    assert_eq!(
        check("{approvals: 3, approvers: [ada, bob, ada]}"),
        "environment.yml:9:24 warning[unreachable-approvals] `promotion.approvals` asks for 3 approvals but `approvers` names 2 people: no promotion can be approved (hint: name more approvers, add `role:write` or `role:admin`, or ask for fewer approvals)\n"
    );
    assert_eq!(check("{approvals: 2, approvers: [ada, bob]}"), "", "enough people");
    assert_eq!(check("{approvals: 3, approvers: [ada, role:write]}"), "", "a role widens it");
    assert_eq!(check("{approvals: 3}"), "", "anyone with write may approve");
}

#[test]
fn a_host_port_is_published_once_per_target() {
    let files = [
        file("environment.yml", ENVIRONMENT),
        file("apps/a.yml", &app("ports: [8080:80]\nupdate: {order: stop-first}\n")),
        file("apps/b.yml", &app("ports: [8080:8000]\nupdate: {order: stop-first}\n")),
        file("apps/c.yml", &app("target: mesh\nports: [8080:80]\n")),
        file("apps/d.yml", &app("ports: [8080:80/udp]\nupdate: {order: stop-first}\n")),
    ];
    let (_, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert_eq!(
        listed(&diagnostics),
        "apps/b.yml:4:9 error[port-conflict] port 8080 is already published on target `one` by application `a`\n",
        "another target, or another protocol, is no conflict"
    );
}

#[test]
fn replicas_on_one_engine_cannot_share_a_host_port() {
    let files =
        [file("environment.yml", ENVIRONMENT), file("apps/a.yml", &app("replicas: 2\nports: [8080:80]\nupdate: {order: stop-first}\n"))];
    let (_, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert_eq!(
        listed(&diagnostics),
        "apps/a.yml:5:9 error[port-conflict] 2 replicas cannot all publish port 8080 on one engine (hint: run one replica here, or deploy it to a swarm target (its routing mesh shares the port))\n"
    );
}

#[test]
fn a_host_port_on_one_engine_means_stop_first_and_lint_says_so() {
    let files = [file("environment.yml", ENVIRONMENT), file("apps/a.yml", &app("ports: [8080:80]\n"))];
    let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert!(repository.is_some(), "a warning does not stop the repository");
    assert_eq!(
        listed(&diagnostics),
        "apps/a.yml:4:9 warning[stop-first] a host port on one engine cannot be held by two containers: this application is updated stop-first (hint: write `update: {order: stop-first}` to say so, or deploy it to a swarm target)\n"
    );
}

#[test]
fn an_http_check_on_a_swarm_is_not_run_and_lint_says_so() {
    let check = "healthcheck: {http: {path: /health, port: 8080}}\n";
    let files = [
        file("environment.yml", ENVIRONMENT),
        file("apps/a.yml", &app(&format!("target: mesh\n{check}"))),
        file("apps/b.yml", &app(check)),
    ];
    let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert!(repository.is_some(), "a warning does not stop the repository");
    assert_eq!(
        listed(&diagnostics),
        "apps/a.yml:5:14 warning[probe-on-swarm] on a swarm, health is what Swarm's own checks say: an `http` check is not run there, and a task counts as healthy once it runs (hint: use a `command` check (`[wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/health']`) for swarm targets)\n",
        "on an engine the deployer probes it itself"
    );
}

#[test]
fn secrets_are_checked_against_the_deployers_store_when_it_is_at_hand() {
    let files = [file("environment.yml", ENVIRONMENT), file("apps/a.yml", &app("secrets: [db_pasword, api_key]\n"))];
    let (_, unchecked) = read_repository(&files, &ReadOptions::default());
    assert_eq!(listed(&unchecked), "", "without the store, names cannot be checked");
    let store = ReadOptions { known_secrets: Some(BTreeSet::from(["db_password".to_owned()])) };
    let (repository, diagnostics) = read_repository(&files, &store);
    assert!(repository.is_none());
    assert_eq!(
        listed(&diagnostics),
        "apps/a.yml:4:11 error[unknown-secret] secret `db_pasword` is not in the deployer's store (hint: did you mean `db_password`?)\n\
         apps/a.yml:4:23 error[unknown-secret] secret `api_key` is not in the deployer's store (hint: add it with `gantry deployer secret add api_key`)\n"
    );
}

#[test]
fn where_digests_are_required_a_tag_alone_is_an_error() {
    let strict = ENVIRONMENT.replace("require_digest: false", "require_digest: true");
    let pinned = format!("version: 1\nowner: {{team: a, contact: a}}\nimage: registry.example.com/a/app:1.0@{DIGEST}\n");
    let files = [file("environment.yml", &strict), file("apps/a.yml", &app("")), file("apps/b.yml", &pinned)];
    let (_, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert_eq!(
        listed(&diagnostics),
        "apps/a.yml:3:8 error[digest-required] image `registry.example.com/a/app:1.0` is not pinned by digest (hint: this environment requires digests (`defaults.require_digest`): write `repository:tag@sha256:…`, as `gantry artifact show` prints it)\n"
    );
}

#[test]
fn an_image_policy_whose_range_or_pattern_cannot_choose_is_a_mistake_where_it_is_written() {
    let files = [
        file("environment.yml", ENVIRONMENT),
        file("apps/a.yml", &app("image_policy: {semver: '^1.4', maturing: 10m}\n")),
        file("apps/b.yml", &app("image_policy:\n  semver: 1.4.x.y\n")),
        file("apps/c.yml", &app("image_policy:\n  regex: '^main-(\\d+$'\n")),
    ];
    let (_, diagnostics) = read_repository(&files, &ReadOptions::default());
    let listed = listed(&diagnostics);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("apps/b.yml:5:11 error[invalid-value] `1.4.x.y` is not a version range: "), "{listed}");
    assert!(lines[0].ends_with("(hint: `^1.4` (1.4 and later 1.x), `~1.4.2` (1.4.x from 1.4.2), `>=2.0.0, <3`)"), "{listed}");
    assert!(lines[1].starts_with("apps/c.yml:5:10 error[invalid-value] `^main-(\\d+$` is not a regular expression: "), "{listed}");
}

#[test]
fn a_repository_without_its_environment_file_or_of_a_later_version_is_refused() {
    let (repository, diagnostics) = read_repository(&[file("apps/a.yml", &app(""))], &ReadOptions::default());
    assert!(repository.is_none());
    assert!(
        listed(&diagnostics)
            .starts_with("environment.yml:1:1 error[missing-key] an environment repository has an environment.yml at its root")
    );
    let later = ENVIRONMENT.replace("version: 1", "version: 7");
    let (_, diagnostics) = read_repository(&[file("environment.yml", &later)], &ReadOptions::default());
    assert_eq!(
        listed(&diagnostics),
        "environment.yml:1:10 error[unsupported-version] format version 7 is newer than this deployer reads (1) (hint: upgrade gantry)\n"
    );
}

#[test]
fn files_deeper_in_apps_are_configs_not_applications() {
    let files = [
        file("environment.yml", ENVIRONMENT),
        file("apps/a.yml", &app("configs: [{file: a/nested/settings.yml, target: /etc/a.yml}]\n")),
        file("apps/a/nested/settings.yml", "not: an application\n"),
    ];
    let (repository, diagnostics) = read_repository(&files, &ReadOptions::default());
    assert_eq!(listed(&diagnostics), "");
    assert_eq!(repository.unwrap().apps.len(), 1);
}

#[test]
fn durations_sizes_and_images_read_as_docker_writes_them() {
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
    for bad in ["", "s", "10x", "1.5s", "-3s"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
    assert_eq!(parse_bytes("256M"), Some(256 << 20));
    assert_eq!(parse_bytes("1g"), Some(1 << 30));
    assert_eq!(parse_bytes("512kb"), Some(512 << 10));
    assert_eq!(parse_bytes("0"), None);
    let image = parse_image(&format!("127.0.0.1:5000/team/app:1.2@{DIGEST}")).unwrap();
    assert_eq!(
        (image.repository.as_str(), image.tag.as_deref(), image.digest.as_deref()),
        ("127.0.0.1:5000/team/app", Some("1.2"), Some(DIGEST))
    );
    assert_eq!(parse_image("127.0.0.1:5000/team/app").unwrap().tag, None, "a registry's port is not a tag");
    for bad in ["Team/App:1", "app:", "app@sha256:abc", "app:bad tag"] {
        assert!(parse_image(bad).is_err(), "{bad}");
    }
}
