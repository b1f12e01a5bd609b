//! `gantry env diff APP --from A --to B`: the commits between two versions of an application,
//! asked of the Gantry server (which knows the builds behind the images and keeps a copy of
//! each repository), not of a deployer.

use proto::State;
use proto::api::{Changelog, ChangelogCommit, ChangelogVersion, CommitBuild};

use super::http::Client;
use super::render::{self, Table};

pub(super) async fn execute(client: Client, app: String, from: String, to: String, json: bool) -> anyhow::Result<u8> {
    let changelog: Changelog = client.get_query(&["apps", &app, "changelog"], &[("from", from), ("to", to)]).await?;
    if json {
        render::emit_json(&changelog)?;
    } else {
        render::emit(&describe(&changelog))?;
    }
    Ok(0)
}

fn describe(changelog: &Changelog) -> String {
    let mut text = format!(
        "{app} ({repo})\n  from {from}\n  to   {to}\n",
        app = changelog.app,
        repo = changelog.repo,
        from = version(&changelog.from),
        to = version(&changelog.to),
    );
    if changelog.added.is_empty() && changelog.removed.is_empty() {
        text.push_str("\nno commits between them: both were built from the same commit\n");
        return text;
    }
    if !changelog.added.is_empty() {
        text.push_str(&format!("\n{} brought in (newest first):\n", count(changelog.added.len())));
        text.push_str(&commits(&changelog.added));
    }
    if !changelog.removed.is_empty() {
        text.push_str(&format!(
            "\n{} taken out (in {}, not in {}):\n",
            count(changelog.removed.len()),
            changelog.from.version,
            changelog.to.version
        ));
        text.push_str(&commits(&changelog.removed));
    }
    if changelog.truncated {
        text.push_str(&format!(
            "\n(more commits than these {} each way; `git log` in the repository has them all)\n",
            proto::api::CHANGELOG_LIMIT
        ));
    }
    text
}

fn version(version: &ChangelogVersion) -> String {
    let place = match (&version.environment, &version.deployment) {
        (Some(environment), Some(deployment)) => format!("{environment} (deployment {deployment}) "),
        _ => String::new(),
    };
    format!(
        "{place}{image}: build #{build} at {commit}",
        image = version.image,
        build = version.build.build,
        commit = render::short_commit(&version.build.commit)
    )
}

fn count(commits: usize) -> String {
    if commits == 1 { "1 commit".to_owned() } else { format!("{commits} commits") }
}

fn commits(commits: &[ChangelogCommit]) -> String {
    let mut table = Table::new(&["COMMIT", "AUTHOR", "COMMITTED", "MESSAGE", "BUILDS"]).indented(2);
    for commit in commits {
        table.row(vec![
            render::short_commit(&commit.sha).to_owned(),
            commit.author.clone(),
            render::timestamp(commit.committed),
            render::first_line(&commit.title, 60),
            builds(&commit.builds),
        ]);
    }
    table.render()
}

/// Each build of the commit and how it ended: the commit's test results.
fn builds(builds: &[CommitBuild]) -> String {
    if builds.is_empty() {
        return "-".to_owned();
    }
    builds.iter().map(|build| format!("#{} {}", build.number, state(build.state))).collect::<Vec<_>>().join(", ")
}

fn state(state: State) -> String {
    serde_json::to_value(state).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proto::api::BuildLink;

    use super::*;

    fn side(environment: &str, deployment: &str, build: i64, commit: &str) -> ChangelogVersion {
        ChangelogVersion {
            version: environment.to_owned(),
            image: format!("registry.example.com/web@sha256:{}", "a".repeat(64)),
            environment: Some(environment.to_owned()),
            deployment: Some(deployment.to_owned()),
            deployed: Some(1_767_225_600),
            build: BuildLink {
                repo: "acme/web".into(),
                build,
                commit: commit.into(),
                url: format!("http://ci/repos/acme/web/builds/{build}"),
            },
        }
    }

    fn commit(sha: &str, title: &str, builds: Vec<CommitBuild>) -> ChangelogCommit {
        ChangelogCommit {
            sha: sha.repeat(40),
            author: "Ada <ada@example.com>".into(),
            title: title.into(),
            message: format!("{title}\n\nbody"),
            committed: 1_767_225_600,
            builds,
        }
    }

    #[test]
    fn a_changelog_reads_as_what_a_promotion_brings_with_each_commits_builds() {
        let changelog = Changelog {
            app: "web".into(),
            repo: "acme/web".into(),
            from: side("production", "p1", 1, &"1".repeat(40)),
            to: side("staging", "s4", 7, &"7".repeat(40)),
            added: vec![
                commit("c", "Add search", vec![CommitBuild { number: 7, event: "push".into(), state: State::Success, url: String::new() }]),
                commit("b", "Fix the login redirect", vec![]),
            ],
            removed: vec![],
            truncated: false,
        };
        let text = describe(&changelog);
        assert!(text.starts_with("web (acme/web)\n  from production (deployment p1) registry.example.com/web@sha256:"), "{text}");
        assert!(text.contains(": build #7 at 77777777"), "{text}");
        assert!(text.contains("2 commits brought in (newest first):"), "{text}");
        let search = text.lines().find(|line| line.contains("Add search")).unwrap();
        assert!(search.contains("cccccccc") && search.contains("Ada <ada@example.com>") && search.contains("#7 success"), "{search}");
        let fix = text.lines().find(|line| line.contains("Fix the login redirect")).unwrap();
        assert!(fix.trim_end().ends_with('-'), "a commit no build ran on: {fix}");
        assert!(!text.contains("taken out"), "{text}");

        let same = Changelog { added: vec![], ..changelog };
        assert!(describe(&same).contains("no commits between them"), "{}", describe(&same));
    }
}
