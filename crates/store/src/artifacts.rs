//! Artifacts: the images builds published, by build and by digest.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{flag, json, to_json};
use crate::error::classify;
use crate::{ArtifactChange, ArtifactRecord, NewArtifact, Store, StoreError};

/// The columns of an `ArtifactRecord` and the joins they come from.
macro_rules! artifacts_joined {
    () => {
        "SELECT a.id, b.repo_id, a.build_id, b.number, w.name AS workflow, a.step, a.repository, a.digest, a.tags, a.size, \
     CAST(CASE WHEN a.provenance IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_provenance, a.provenance_digest, a.created \
     FROM artifacts a JOIN builds b ON b.id = a.build_id JOIN workflows w ON w.id = a.workflow_id "
    };
}

impl Store {
    /// Records what one step pushed to one repository. The same report again (the agent
    /// repeats updates it is not sure arrived) is `Unchanged`; a new digest or new tags replace
    /// the row and are `Recorded`.
    pub async fn record_artifact(&self, artifact: &NewArtifact, now: i64) -> Result<ArtifactChange, StoreError> {
        let tags = to_json(&artifact.tags, "the tags of an artifact")?;
        let existing = self.artifact_of_step(artifact.workflow_id, &artifact.step, &artifact.repository).await?;
        if let Some(existing) = existing
            && existing.digest == artifact.digest
            && existing.tags == artifact.tags
        {
            return Ok(ArtifactChange::Unchanged(existing));
        }
        sqlx::query(
            "INSERT INTO artifacts (build_id, workflow_id, step, repository, digest, tags, size, provenance, provenance_digest, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (workflow_id, step, repository) DO UPDATE SET digest = excluded.digest, tags = excluded.tags, \
                 size = excluded.size, provenance = excluded.provenance, provenance_digest = excluded.provenance_digest, \
                 created = excluded.created",
        )
        .bind(artifact.build_id)
        .bind(artifact.workflow_id)
        .bind(&artifact.step)
        .bind(&artifact.repository)
        .bind(&artifact.digest)
        .bind(tags)
        .bind(artifact.size)
        .bind(artifact.provenance.clone())
        .bind(artifact.provenance_digest.clone())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            classify(error, || format!("artifact {}@{}", artifact.repository, artifact.digest), || format!("build {}", artifact.build_id))
        })?;
        let recorded = self.artifact_of_step(artifact.workflow_id, &artifact.step, &artifact.repository).await?;
        recorded.map(ArtifactChange::Recorded).ok_or_else(|| StoreError::NotFound { what: format!("artifact {}", artifact.repository) })
    }

    /// In the order they were pushed.
    pub async fn artifacts_of_build(&self, build_id: i64) -> Result<Vec<ArtifactRecord>, StoreError> {
        let rows =
            sqlx::query(concat!(artifacts_joined!(), "WHERE a.build_id = $1 ORDER BY a.id")).bind(build_id).fetch_all(&self.pool).await?;
        rows.iter().map(artifact_from_row).collect()
    }

    /// Every build that pushed this manifest digest, newest first; callers filter by
    /// repository name and by what the asker may see.
    pub async fn artifacts_by_digest(&self, digest: &str) -> Result<Vec<ArtifactRecord>, StoreError> {
        let rows =
            sqlx::query(concat!(artifacts_joined!(), "WHERE a.digest = $1 ORDER BY a.id DESC")).bind(digest).fetch_all(&self.pool).await?;
        rows.iter().map(artifact_from_row).collect()
    }

    /// The in-toto statement of an artifact of this build, as JSON text; `None` when there is
    /// no such artifact or it has no statement.
    pub async fn artifact_provenance(&self, build_id: i64, artifact_id: i64) -> Result<Option<String>, StoreError> {
        let provenance: Option<Option<String>> = sqlx::query_scalar("SELECT provenance FROM artifacts WHERE build_id = $1 AND id = $2")
            .bind(build_id)
            .bind(artifact_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(provenance.flatten())
    }

    async fn artifact_of_step(&self, workflow_id: i64, step: &str, repository: &str) -> Result<Option<ArtifactRecord>, StoreError> {
        let row = sqlx::query(concat!(artifacts_joined!(), "WHERE a.workflow_id = $1 AND a.step = $2 AND a.repository = $3"))
            .bind(workflow_id)
            .bind(step)
            .bind(repository)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(artifact_from_row).transpose()
    }
}

fn artifact_from_row(row: &AnyRow) -> Result<ArtifactRecord, StoreError> {
    Ok(ArtifactRecord {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        build_id: row.try_get("build_id")?,
        build_number: row.try_get("number")?,
        workflow: row.try_get("workflow")?,
        step: row.try_get("step")?,
        repository: row.try_get("repository")?,
        digest: row.try_get("digest")?,
        tags: json(row, "tags")?,
        size: row.try_get("size")?,
        has_provenance: flag(row, "has_provenance")?,
        provenance_digest: row.try_get("provenance_digest")?,
        created: row.try_get("created")?,
    })
}
