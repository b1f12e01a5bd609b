//! What an image build step needs beyond its plan, and what it reports: the run's registry
//! credentials, the labels every built image gets, and the provenance statement of every pushed
//! one (in-toto Statement v1 with a SLSA Provenance v1 predicate).
//!
//! All of it is decided here, without IO, so `gantry exec` and the agent label and describe
//! images the same way; the backend only builds, pushes and attaches.

use std::collections::BTreeMap;

use pipeline::image_build::ImageBuild;
use serde::Serialize;
use serde_json::json;

/// How a run publishes images. The default pushes with no credentials of the run's own.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// False for `gantry exec --no-push`: images are built and tagged on the engine only.
    pub push: bool,
    /// Credentials for private registries, by host: for pushes and for `FROM` images.
    pub registries: Vec<RegistryCredential>,
    /// Who builds, as a URI for the provenance's `builder.id`.
    pub builder_id: String,
    /// The page of the build this run is part of (`org.opencontainers.image.url`).
    pub build_url: Option<String>,
    /// sha256 (hex) of each pipeline file by its path in the repository: the provenance names
    /// the exact pipeline definition that built an image.
    pub pipeline_files: BTreeMap<String, String>,
    /// When the built images say they were created (`org.opencontainers.image.created`): the
    /// commit's time, so the same commit builds the same image and a rebuild is all cache (as
    /// `SOURCE_DATE_EPOCH` does for reproducible builds). Now, when unknown. The provenance
    /// keeps the real times of the build.
    pub source_date: Option<String>,
}

impl PublishOptions {
    /// The run's credentials for a registry host.
    pub fn credential_for(&self, host: &str) -> Option<&RegistryCredential> {
        self.registries.iter().find(|credential| same_host(&credential.host, host))
    }
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            push: true,
            registries: Vec::new(),
            builder_id: format!("https://gantry.dev/builder/exec@{}", env!("CARGO_PKG_VERSION")),
            build_url: None,
            pipeline_files: BTreeMap::new(),
            source_date: None,
        }
    }
}

/// Credentials for one registry host. The password never appears in `Debug` output; the runtime
/// masks it in every log line like a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    pub host: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RegistryCredential").field("host", &self.host).field("username", &self.username).finish_non_exhaustive()
    }
}

/// An image build as the backend runs it: the plan's build with what the step's environment and
/// the run decide filled in.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    pub build: ImageBuild,
    /// `build_args`, then `build_args_from_env` read from the step's environment.
    pub build_args: BTreeMap<String, String>,
    /// The plan's labels plus the OCI and Gantry labels of [`image_labels`].
    pub labels: BTreeMap<String, String>,
    /// The step's own login first, then the run's registries.
    pub credentials: Vec<RegistryCredential>,
    pub push: bool,
    pub provenance: ProvenanceFacts,
}

impl BuildRequest {
    /// The credentials for a registry host, if the step or the run has some.
    pub fn credential_for(&self, host: &str) -> Option<&RegistryCredential> {
        self.credentials.iter().find(|credential| same_host(&credential.host, host))
    }
}

/// Docker Hub goes by several names.
fn same_host(left: &str, right: &str) -> bool {
    let canonical = |host: &str| match host.trim_end_matches('/') {
        "index.docker.io" | "registry-1.docker.io" | "https://index.docker.io/v1" | "docker.io" => "docker.io".to_owned(),
        other => other.trim_start_matches("https://").trim_start_matches("http://").to_owned(),
    };
    canonical(left) == canonical(right)
}

/// An image a build step pushed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublishedImage {
    pub repository: String,
    pub tags: Vec<String>,
    /// `sha256:<hex>` of the manifest the registry stored.
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance_digest: Option<String>,
}

/// What the provenance of a step's images says besides the image itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ProvenanceFacts {
    pub builder_id: String,
    pub repository: String,
    pub repository_url: String,
    pub commit: String,
    pub reference: String,
    pub event: String,
    pub build_number: String,
    pub build_url: Option<String>,
    pub workflow: String,
    pub step: String,
    pub pipeline_file: String,
    pub pipeline_file_sha256: Option<String>,
    /// What the build was asked for, as written in the plan (no secret values: those stay in
    /// the environment).
    pub parameters: serde_json::Value,
    pub started_on: String,
}

impl ProvenanceFacts {
    /// The in-toto statement for `repository@digest`, finished at `finished_on` (RFC 3339).
    pub fn statement(&self, repository: &str, digest: &str, finished_on: &str) -> serde_json::Value {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        let mut source = json!({
            "uri": format!("git+{}@{}", self.repository_url, self.reference),
            "digest": { "gitCommit": self.commit },
        });
        if self.repository_url.is_empty() {
            source["uri"] = json!(format!("git+{}@{}", self.repository, self.reference));
        }
        let mut definition = json!({ "uri": self.pipeline_file, "annotations": { "workflow": self.workflow, "step": self.step } });
        if let Some(sha256) = &self.pipeline_file_sha256 {
            definition["digest"] = json!({ "sha256": sha256 });
        }
        let mut metadata = json!({
            "invocationId": format!("{}#{}/{}/{}", self.repository, self.build_number, self.workflow, self.step),
            "startedOn": self.started_on,
            "finishedOn": finished_on,
        });
        if let Some(url) = &self.build_url {
            metadata["buildUrl"] = json!(url);
        }
        json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{ "name": repository, "digest": { algorithm: hex } }],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://gantry.dev/image-build/v1",
                    "externalParameters": {
                        "repository": self.repository,
                        "ref": self.reference,
                        "trigger": self.event,
                        "pipeline": definition,
                        "build": self.parameters,
                    },
                    "internalParameters": { "build": self.build_number },
                    "resolvedDependencies": [source],
                },
                "runDetails": {
                    "builder": { "id": self.builder_id },
                    "metadata": metadata,
                },
            },
        })
    }
}

/// The labels Gantry puts on every image it builds: the OCI annotations a registry UI and
/// `docker inspect` show, and Gantry's own to find the build again.
pub fn image_labels(
    environment: &BTreeMap<String, String>,
    build_url: Option<&str>,
    pipeline_file: &str,
    created: &str,
) -> BTreeMap<String, String> {
    let get = |key: &str| environment.get(key).filter(|value| !value.is_empty()).cloned();
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            labels.insert(key.to_owned(), value);
        }
    };
    put("org.opencontainers.image.source", get("CI_REPO_URL").or_else(|| get("CI_REPO_CLONE_URL")));
    put("org.opencontainers.image.revision", get("CI_COMMIT_SHA"));
    put("org.opencontainers.image.created", Some(created.to_owned()));
    put("org.opencontainers.image.version", get("CI_COMMIT_TAG"));
    put("org.opencontainers.image.url", build_url.map(str::to_owned));
    put("io.gantry.repo", get("CI_REPO"));
    put("io.gantry.build", get("CI_PIPELINE_NUMBER"));
    put("io.gantry.pipeline", Some(pipeline_file.to_owned()));
    put("io.gantry.branch", built_branch(environment));
    labels
}

/// The branch whose own commit a build ran on: the deployer's branch image policy trusts this
/// label to pick "the newest image of `main`". Only events that build a branch's head say it: a
/// pull request's `CI_COMMIT_BRANCH` is the branch it wants to merge into, and a tag may point
/// at a commit of any branch, so neither is labelled with one.
fn built_branch(environment: &BTreeMap<String, String>) -> Option<String> {
    let event = environment.get("CI_PIPELINE_EVENT").map(String::as_str);
    if !matches!(event, Some("push" | "manual" | "cron")) {
        return None;
    }
    environment.get("CI_COMMIT_BRANCH").filter(|branch| !branch.is_empty()).cloned()
}

/// The time of `HEAD`'s commit in a git checkout, as RFC 3339 (`git log -1 --format=%cI`); for
/// [`PublishOptions::source_date`].
pub fn commit_date(git_output: &str) -> Option<String> {
    let text = git_output.trim();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(|_| text.to_owned())
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_built_from_a_branch_head_name_the_branch_and_pull_requests_and_tags_do_not() {
        let labels_for = |event: &str| {
            let environment = BTreeMap::from([
                ("CI_PIPELINE_EVENT".to_owned(), event.to_owned()),
                ("CI_COMMIT_BRANCH".to_owned(), "main".to_owned()),
                ("CI_PIPELINE_NUMBER".to_owned(), "42".to_owned()),
            ]);
            image_labels(&environment, None, ".woodpecker.yml", "2026-01-02T03:04:05Z")
        };
        for event in ["push", "manual", "cron"] {
            assert_eq!(labels_for(event).get("io.gantry.branch").map(String::as_str), Some("main"), "{event}");
        }
        for event in ["pull_request", "pull_request_closed", "tag", "release", "deployment"] {
            assert_eq!(labels_for(event).get("io.gantry.branch"), None, "{event}");
            assert_eq!(labels_for(event)["io.gantry.build"], "42", "{event}");
        }
    }

    #[test]
    fn docker_hub_matches_under_each_of_its_names() {
        assert!(same_host("https://index.docker.io/v1/", "docker.io"));
        assert!(same_host("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!same_host("127.0.0.1:5000", "127.0.0.1:5001"));
    }
}
