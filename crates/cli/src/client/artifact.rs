//! `gantry artifact show IMAGE@DIGEST`: which build produced an image, and the build's
//! artifacts for `gantry build show`.

use clap::Subcommand;
use proto::api::{Artifact, ArtifactOrigin};

use super::http::Client;
use super::render::{self, Table};

#[derive(Subcommand, Clone, Debug)]
pub(super) enum ArtifactAction {
    /// Which build produced an image: repository, build, commit, step, tags, provenance.
    Show {
        /// The image by digest: REGISTRY/REPOSITORY@sha256:HEX (a tag before `@` is ignored).
        image: String,
    },
}

pub(super) async fn execute(client: Client, action: ArtifactAction, json: bool) -> anyhow::Result<u8> {
    match action {
        ArtifactAction::Show { image } => {
            let origins: Vec<ArtifactOrigin> = client.get_query(&["artifacts"], &[("image", image)]).await?;
            if json {
                render::emit_json(&origins)?;
            } else {
                render::emit(&describe(&origins))?;
            }
            Ok(0)
        }
    }
}

fn describe(origins: &[ArtifactOrigin]) -> String {
    let mut text = String::new();
    for (index, origin) in origins.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        let (artifact, build) = (&origin.artifact, &origin.build);
        text.push_str(&format!("{}\n", artifact.pinned));
        let mut pairs = vec![
            (
                "built by",
                format!("{} build {} ({}), step {} of {}", origin.repo, build.number, build.state, artifact.step, artifact.workflow),
            ),
            ("commit", format!("{}  {}", render::short_commit(&build.commit), render::first_line(&build.message, 72))),
            ("event", format!("{} on {}", build.event, build.reference)),
            ("tags", artifact.tags.join(", ")),
            ("pushed", render::timestamp(artifact.created)),
            ("build page", origin.url.clone()),
        ];
        if let Some(size) = artifact.size {
            pairs.push(("size", size_text(size)));
        }
        if let Some(provenance) = &artifact.provenance {
            pairs.push(("provenance", provenance.clone()));
        }
        if let Some(digest) = &artifact.provenance_digest {
            pairs.push(("attestation", format!("{}@{digest}", artifact.image)));
        }
        text.push_str(&render::fields(&pairs));
    }
    text
}

/// The artifacts section of `gantry build show`.
pub(super) fn table(artifacts: &[Artifact]) -> String {
    let mut table = Table::new(&["IMAGE", "TAGS", "DIGEST", "SIZE", "STEP", "PROVENANCE"]);
    for artifact in artifacts {
        table.row(vec![
            artifact.image.clone(),
            artifact.tags.join(","),
            artifact.digest.clone(),
            artifact.size.map(size_text).unwrap_or_else(|| "-".into()),
            format!("{}/{}", artifact.workflow, artifact.step),
            artifact.provenance.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    format!("artifacts:\n{}", table.indented(2).render())
}

fn size_text(bytes: i64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024 * 1024 { format!("{:.1} MiB", bytes as f64 / MIB) } else { format!("{:.1} KiB", bytes as f64 / 1024.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_nearest_unit() {
        assert_eq!(size_text(2_097_152), "2.0 MiB");
        assert_eq!(size_text(1536), "1.5 KiB");
    }
}
