//! Filling in a build after it was numbered: its diagnostics and its compiled workflows. The
//! server stores a build first because the pipeline's variables include the build's number.

use crate::columns::to_json;
use crate::error::classify;
use proto::api::BuildDiagnostic;

use crate::{BuildRecord, NewWorkflow, Store, StoreError};

impl Store {
    /// Adds the workflows (with their steps) of a build created without any, in one transaction.
    /// `StoreError::NotFound` when there is no such build.
    pub async fn add_workflows(&self, build_id: i64, workflows: &[NewWorkflow], now: i64) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        for workflow in workflows {
            crate::builds::insert_workflow(&mut transaction, build_id, workflow, now).await.map_err(|error| match error {
                StoreError::Database(error) => {
                    classify(error, || format!("workflow {} of build {build_id}", workflow.name), || format!("build {build_id}"))
                }
                other => other,
            })?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Replaces a build's diagnostics. `StoreError::NotFound` when there is no such build.
    pub async fn set_build_diagnostics(&self, build_id: i64, diagnostics: &[BuildDiagnostic]) -> Result<(), StoreError> {
        let text = to_json(diagnostics, "the diagnostics of a build")?;
        let result = sqlx::query("UPDATE builds SET diagnostics = $1 WHERE id = $2").bind(text).bind(build_id).execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("build {build_id}")));
        }
        Ok(())
    }

    /// A blocked build and its blocked workflows become `pending` (queued), recording who
    /// approved it and when, in one transaction. False when the build was not blocked (approved
    /// or declined already, or never waiting): nothing changes then.
    pub async fn approve_build(&self, build_id: i64, approved_by: &str, now: i64) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let approved = sqlx::query(
            "UPDATE builds SET state = 'pending', reason = NULL, approved_by = $2, approved_at = $3 WHERE id = $1 AND state = 'blocked'",
        )
        .bind(build_id)
        .bind(approved_by)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        if approved.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE workflows SET state = 'pending', reason = NULL WHERE build_id = $1 AND state = 'blocked'")
            .bind(build_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Unfinished builds created before `before` that have no workflows: their server stopped
    /// between numbering them and storing their compiled pipeline.
    pub async fn builds_without_workflows(&self, before: i64) -> Result<Vec<BuildRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            build_columns!(),
            " FROM builds WHERE state IN ('pending', 'running') AND created < $1 \
              AND NOT EXISTS (SELECT 1 FROM workflows WHERE workflows.build_id = builds.id) ORDER BY id"
        ))
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::builds::build_from_row).collect()
    }
}
