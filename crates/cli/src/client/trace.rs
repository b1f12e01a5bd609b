//! `gantry env trace CONTAINER`: from a container the deployer runs to everything behind it in
//! one step: its environment, application and owner, the deployment that put it there, the
//! image it runs, the build that pushed that image, the commit, and how each of the build's
//! workflows ended. The container's labels come from the local engine (or --docker-host); the
//! rest from the server, as far as the caller may read it.

use anyhow::bail;
use proto::api::{ArtifactOrigin, Build, EnvironmentApp};
use serde::Serialize;

use super::http::Client;
use super::render;

/// Everything found, for `--json`.
#[derive(Serialize)]
struct Trace {
    container: String,
    name: String,
    state: String,
    environment: String,
    app: String,
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<String>,
    /// What the server knows of the application in its environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    deployed: Option<EnvironmentApp>,
    /// The build that pushed the image, with its workflows.
    #[serde(skip_serializing_if = "Option::is_none")]
    build: Option<Build>,
    #[serde(skip_serializing_if = "Option::is_none")]
    build_url: Option<String>,
}

pub(super) async fn execute(client: Client, container: String, docker_host: Option<String>, json: bool) -> anyhow::Result<u8> {
    let Some(found) = deploy::target::find_deployed_container(docker_host.as_deref(), &container).await? else {
        bail!("no container `{container}` started by a Gantry deployer on this engine (set DOCKER_HOST or --docker-host for another)");
    };
    let environment_apps: Result<Vec<EnvironmentApp>, _> = client.get(&["environments", &found.environment, "apps"]).await;
    let deployed = environment_apps.ok().and_then(|apps| apps.into_iter().find(|app| app.app == found.app));
    let (build, build_url) = match found.image.contains("@sha256:") {
        true => {
            let origins: Vec<ArtifactOrigin> = client.get_query(&["artifacts"], &[("image", found.image.clone())]).await?;
            match origins.into_iter().next() {
                Some(origin) => {
                    let (owner, name) = origin.repo.split_once('/').unwrap_or((&origin.repo, ""));
                    let build: Build = client.get(&["repos", owner, name, "builds", &origin.build.number.to_string()]).await?;
                    (Some(build), Some(origin.url))
                }
                None => (None, None),
            }
        }
        false => (None, None),
    };
    let trace = Trace {
        container: found.id,
        name: found.name,
        state: found.state,
        environment: found.environment,
        app: found.app,
        image: found.image,
        revision: found.revision,
        deployed,
        build,
        build_url,
    };
    if json {
        render::emit_json(&trace)?;
    } else {
        render::emit(&describe(&trace))?;
    }
    Ok(0)
}

fn describe(trace: &Trace) -> String {
    let mut pairs = vec![
        ("container", format!("{} ({}, {})", trace.name, &trace.container[..trace.container.len().min(12)], trace.state)),
        ("runs", format!("{} in {}", trace.app, trace.environment)),
        ("image", trace.image.clone()),
    ];
    match &trace.deployed {
        Some(app) => {
            if let Some(owner) = &app.owner_team {
                pairs.push(("owner", owner.clone()));
            }
            if let Some(current) = &app.current {
                let when = current.finished.map(render::timestamp).unwrap_or_else(|| "-".to_owned());
                pairs.push((
                    "deployed",
                    format!("{} at {when}, revision {} by {}", current.id, render::short_commit(&current.revision), current.author),
                ));
            }
        }
        None => {
            pairs.push(("deployed", "the server has no report of this environment (is its deployer's --notify this server?)".to_owned()));
        }
    }
    // The container's own label, when the server's record says otherwise (or nothing).
    let reported = trace.deployed.as_ref().and_then(|app| app.current.as_ref()).map(|current| current.revision.as_str());
    if let Some(revision) = trace.revision.as_deref().filter(|revision| Some(*revision) != reported) {
        pairs.push(("revision", revision.to_owned()));
    }
    match &trace.build {
        Some(build) => {
            pairs.push(("built by", format!("{} build #{} ({})", build.repo, build.number, build.state.as_str())));
            pairs.push(("commit", format!("{}  {}", render::short_commit(&build.commit), render::first_line(&build.message, 72))));
            pairs.push(("author", build.author.clone()));
            for workflow in build.workflows.iter().flatten() {
                pairs.push(("workflow", format!("{} {}", workflow.name, workflow.state.as_str())));
            }
            if let Some(url) = &trace.build_url {
                pairs.push(("build page", url.clone()));
            }
        }
        None => {
            pairs.push(("built by", "no build of this server you can read pushed this image".to_owned()));
        }
    }
    render::fields(&pairs)
}
