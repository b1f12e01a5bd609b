//! Builds with their workflows and steps: creation in one transaction, reading, states as they
//! change, and which steps' logs retention may remove.

use std::collections::BTreeMap;

use proto::State;
use sqlx::any::{Any, AnyRow};
use sqlx::{AssertSqlSafe, Row, Transaction};

use crate::columns::{flag, flag_value, json, narrow, state, to_json};
use crate::error::classify;
use crate::{BuildFilter, BuildRecord, NewBuild, NewStep, NewWorkflow, StepChange, StepRecord, Store, StoreError, WorkflowRecord};

/// Steps go in with one statement per this many rows (five parameters each, far below the
/// parameter limits of both databases).
const STEPS_PER_INSERT: usize = 200;

impl Store {
    /// In one transaction: the next number of the repository, the build, its workflows and their
    /// steps (all `pending`, or as given; steps numbered in the order given). A build or workflow
    /// created in a finished state gets `finished = now`. `StoreError::NotFound` when the
    /// repository does not exist.
    pub async fn create_build(&self, build: &NewBuild, workflows: &[NewWorkflow], now: i64) -> Result<BuildRecord, StoreError> {
        let diagnostics = to_json(&build.diagnostics, "the diagnostics of a build")?;
        let variables = to_json(&build.variables, "the variables of a build")?;
        let finished = build.state.is_finished().then_some(now);

        let mut transaction = self.pool.begin().await?;
        // The counter's row is locked from here to the commit (SQLite: the whole database's
        // write lock), so concurrent builds of a repository take their numbers one after the
        // other; UNIQUE (repo_id, number) guards the rule anyway.
        let number: Option<i64> =
            sqlx::query_scalar("UPDATE repos SET last_build_number = last_build_number + 1 WHERE id = $1 RETURNING last_build_number")
                .bind(build.repo_id)
                .fetch_optional(&mut *transaction)
                .await?;
        let number = number.ok_or_else(|| StoreError::not_found(format!("repository {}", build.repo_id)))?;
        let build_id: i64 = sqlx::query_scalar(
            "INSERT INTO builds (repo_id, number, event, state, reference, branch, commit_sha, message, author, \
                 trigger_kind, pull_request, reason, diagnostics, variables, from_fork, created, finished, approved_by, approved_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING id",
        )
        .bind(build.repo_id)
        .bind(number)
        .bind(&build.event)
        .bind(build.state.as_str())
        .bind(&build.reference)
        .bind(&build.branch)
        .bind(&build.commit)
        .bind(&build.message)
        .bind(&build.author)
        .bind(&build.trigger)
        .bind(build.pull_request.as_deref())
        .bind(build.reason.as_deref())
        .bind(diagnostics)
        .bind(variables)
        .bind(flag_value(build.from_fork))
        .bind(now)
        .bind(finished)
        .bind(build.approved_by.as_deref())
        .bind(build.approved_by.is_some().then_some(now))
        .fetch_one(&mut *transaction)
        .await
        .map_err(|error| {
            classify(error, || format!("build {number} of repository {}", build.repo_id), || format!("repository {}", build.repo_id))
        })?;
        for workflow in workflows {
            insert_workflow(&mut transaction, build_id, workflow, now).await?;
        }
        transaction.commit().await?;
        tracing::debug!(repo = build.repo_id, build = build_id, number, workflows = workflows.len(), "build created");

        Ok(BuildRecord {
            id: build_id,
            repo_id: build.repo_id,
            number,
            event: build.event.clone(),
            state: build.state,
            reference: build.reference.clone(),
            branch: build.branch.clone(),
            commit: build.commit.clone(),
            message: build.message.clone(),
            author: build.author.clone(),
            trigger: build.trigger.clone(),
            pull_request: build.pull_request.clone(),
            reason: build.reason.clone(),
            diagnostics: build.diagnostics.clone(),
            variables: build.variables.clone(),
            from_fork: build.from_fork,
            approved_by: build.approved_by.clone(),
            approved_at: build.approved_by.is_some().then_some(now),
            created: now,
            started: None,
            finished,
        })
    }

    pub async fn build_by_id(&self, id: i64) -> Result<Option<BuildRecord>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", build_columns!(), " FROM builds WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(build_from_row).transpose()
    }

    pub async fn build_by_number(&self, repo_id: i64, number: i64) -> Result<Option<BuildRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", build_columns!(), " FROM builds WHERE repo_id = $1 AND number = $2"))
            .bind(repo_id)
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(build_from_row).transpose()
    }

    /// Newest first; `before` is a build number for paging.
    pub async fn list_builds(&self, repo_id: i64, limit: i64, before: Option<i64>) -> Result<Vec<BuildRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            build_columns!(),
            " FROM builds WHERE repo_id = $1 AND number < $2 ORDER BY number DESC LIMIT $3"
        ))
        .bind(repo_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(build_from_row).collect()
    }

    /// Newest first, those matching every filter given; `before` is a build number for paging.
    pub async fn list_builds_matching(
        &self,
        repo_id: i64,
        filter: &BuildFilter,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<BuildRecord>, StoreError> {
        // Only constant texts are spliced; every value is bound, in the order of the numbers.
        let mut sql = String::from(concat!("SELECT ", build_columns!(), " FROM builds WHERE repo_id = $1 AND number < $2"));
        let mut values = Vec::new();
        for (column, value) in [("branch", &filter.branch), ("event", &filter.event), ("state", &filter.state), ("author", &filter.author)]
        {
            if let Some(value) = value {
                values.push(value.as_str());
                sql.push_str(&format!(" AND {column} = ${}", values.len() + 2));
            }
        }
        sql.push_str(&format!(" ORDER BY number DESC LIMIT ${}", values.len() + 3));
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(repo_id).bind(before.unwrap_or(i64::MAX));
        for value in values {
            query = query.bind(value);
        }
        let rows = query.bind(limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(build_from_row).collect()
    }

    /// The newest build of each of `branches`' repositories' branch (one query for a whole
    /// dashboard): `(repo id, branch)` pairs in, the builds found out.
    pub async fn latest_builds_of_branches(&self, branches: &[(i64, String)]) -> Result<Vec<BuildRecord>, StoreError> {
        let mut builds = Vec::new();
        for chunk in branches.chunks(100) {
            // One MAX per branch, each a seek to the end of the branch in `builds_latest`; a
            // GROUP BY over all branches would read every build of them.
            let mut sql = String::from(concat!("SELECT ", build_columns!(), " FROM builds WHERE id IN ("));
            let mut latest = Vec::new();
            for index in 0..chunk.len() {
                latest.push(format!("(SELECT MAX(id) FROM builds WHERE repo_id = ${} AND branch = ${})", index * 2 + 1, index * 2 + 2));
            }
            sql.push_str(&latest.join(", "));
            sql.push(')');
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (repo_id, branch) in chunk {
                query = query.bind(*repo_id).bind(branch.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                builds.push(build_from_row(&row)?);
            }
        }
        Ok(builds)
    }

    /// The builds of a repository that ran on any of `commits`, newest first.
    pub async fn builds_of_commits(&self, repo_id: i64, commits: &[&str]) -> Result<Vec<BuildRecord>, StoreError> {
        let mut builds = Vec::new();
        for chunk in commits.chunks(100) {
            let wanted: Vec<String> = (0..chunk.len()).map(|index| format!("${}", index + 2)).collect();
            let sql =
                format!(concat!("SELECT ", build_columns!(), " FROM builds WHERE repo_id = $1 AND commit_sha IN ({})"), wanted.join(", "));
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(repo_id);
            for commit in chunk {
                query = query.bind(*commit);
            }
            for row in query.fetch_all(&self.pool).await? {
                builds.push(build_from_row(&row)?);
            }
        }
        builds.sort_by_key(|build| std::cmp::Reverse(build.number));
        Ok(builds)
    }

    /// Builds not finished yet (waiting for approval, queued, running) of every repository,
    /// oldest first.
    pub async fn unfinished_builds(&self, limit: i64) -> Result<Vec<BuildRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            concat!("SELECT ", build_columns!(), " FROM builds WHERE state IN ({}) ORDER BY id LIMIT $1"),
            UNFINISHED_STATES
        )))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(build_from_row).collect()
    }

    /// Builds in `pending` or `running` of a branch (for "cancel older builds"), oldest first.
    pub async fn active_builds_of_branch(&self, repo_id: i64, branch: &str) -> Result<Vec<BuildRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            build_columns!(),
            " FROM builds WHERE repo_id = $1 AND branch = $2 AND state IN ('pending', 'running') ORDER BY number"
        ))
        .bind(repo_id)
        .bind(branch)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(build_from_row).collect()
    }

    /// Sets the state and reason; `started` is set on the first `running`, `finished` on a
    /// finished state; `pending` clears both. A finished build is final: the change applies only
    /// to a build that has not finished, so of two callers finishing one build (two agents'
    /// `done`, two servers) one wins. True when this call changed the build;
    /// `StoreError::NotFound` when there is no such build.
    pub async fn set_build_state(&self, build_id: i64, state: State, reason: Option<&str>, now: i64) -> Result<bool, StoreError> {
        let sql = match stamp_of(state) {
            Stamp::Clear => "UPDATE builds SET state = $2, reason = $3, started = NULL, finished = NULL WHERE id = $1",
            Stamp::Started => "UPDATE builds SET state = $2, reason = $3, started = COALESCE(started, $4), finished = NULL WHERE id = $1",
            Stamp::Finished => "UPDATE builds SET state = $2, reason = $3, finished = $4 WHERE id = $1",
            Stamp::Keep => "UPDATE builds SET state = $2, reason = $3 WHERE id = $1",
        };
        let sql = format!("{sql} AND state NOT IN ({FINISHED_STATES})");
        // Only a constant is spliced into the text; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(build_id).bind(state.as_str()).bind(reason);
        if stamp_of(state).needs_now() {
            query = query.bind(now);
        }
        if query.execute(&self.pool).await?.rows_affected() == 1 {
            return Ok(true);
        }
        match self.build_by_id(build_id).await? {
            Some(_) => Ok(false),
            None => Err(StoreError::not_found(format!("build {build_id}"))),
        }
    }

    /// In creation order.
    pub async fn workflows_of_build(&self, build_id: i64) -> Result<Vec<WorkflowRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", workflow_columns!(), " FROM workflows WHERE build_id = $1 ORDER BY id"))
            .bind(build_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(workflow_from_row).collect()
    }

    pub async fn workflow_by_id(&self, id: i64) -> Result<Option<WorkflowRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", workflow_columns!(), " FROM workflows WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    /// By position.
    pub async fn steps_of_workflow(&self, workflow_id: i64) -> Result<Vec<StepRecord>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", step_columns!(), " FROM steps WHERE workflow_id = $1 ORDER BY position"))
            .bind(workflow_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(step_from_row).collect()
    }

    pub async fn step_by_id(&self, id: i64) -> Result<Option<StepRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", step_columns!(), " FROM steps WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(step_from_row).transpose()
    }

    /// Applies a step's reported state by name; stamps as given. Times and exit code that the
    /// change leaves out keep their stored values (an agent repeating a state without its start
    /// time does not erase it); the reason is replaced. `StoreError::NotFound` when the workflow
    /// has no step of that name.
    pub async fn update_step(&self, workflow_id: i64, update: &StepChange) -> Result<(), StoreError> {
        let result = sqlx::query(
            "UPDATE steps SET state = $3, exit_code = COALESCE($4, exit_code), reason = $5, \
                 started = COALESCE($6, started), finished = COALESCE($7, finished) \
             WHERE workflow_id = $1 AND name = $2",
        )
        .bind(workflow_id)
        .bind(&update.name)
        .bind(update.state.as_str())
        .bind(update.exit_code)
        .bind(update.reason.as_deref())
        .bind(update.started)
        .bind(update.finished)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("step {} of workflow {workflow_id}", update.name)));
        }
        Ok(())
    }

    /// Records how many log lines a step has (kept beside the files for listing).
    /// `StoreError::NotFound` when there is no such step.
    pub async fn set_step_log_lines(&self, step_id: i64, lines: u64) -> Result<(), StoreError> {
        let lines = i64::try_from(lines).map_err(|_| StoreError::Corrupt(format!("step {step_id} cannot have {lines} log lines")))?;
        let result = sqlx::query("UPDATE steps SET log_lines = $2 WHERE id = $1").bind(step_id).bind(lines).execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("step {step_id}")));
        }
        Ok(())
    }

    /// Builds by state, for metrics: every state, with 0 for those no build is in.
    pub async fn count_builds_by_state(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut counts: BTreeMap<String, i64> = State::ALL.iter().map(|state| (state.as_str().to_owned(), 0)).collect();
        let rows = sqlx::query("SELECT state, COUNT(*) AS total FROM builds GROUP BY state").fetch_all(&self.pool).await?;
        for row in rows {
            counts.insert(row.try_get("state")?, row.try_get("total")?);
        }
        Ok(counts)
    }

    /// Ids of steps that finished before `before` and whose logs are still there: what a
    /// retention setting may remove, oldest first. Remove them with `remove_step_logs`, which
    /// takes them off this list.
    pub async fn steps_finished_before(&self, before: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT id FROM steps WHERE logs_removed = 0 AND finished IS NOT NULL AND finished < $1 ORDER BY finished, id LIMIT $2",
        )
        .bind(before)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    /// Removes a step's log files and records that they are gone (its `log_lines` becomes 0, and
    /// `steps_finished_before` no longer lists it). For retention.
    pub async fn remove_step_logs(&self, step_id: i64) -> Result<(), StoreError> {
        self.logs.remove(step_id).await?;
        sqlx::query("UPDATE steps SET logs_removed = 1, log_lines = 0 WHERE id = $1").bind(step_id).execute(&self.pool).await?;
        Ok(())
    }
}

/// The states nothing changes any more, as an SQL list (`State::is_finished`).
pub(crate) const FINISHED_STATES: &str = "'success', 'failure', 'skipped', 'killed', 'error'";

/// The other states, as an SQL list: `state IN` this list can use the index on `state`, where
/// `state NOT IN (FINISHED_STATES)` reads every build.
pub(crate) const UNFINISHED_STATES: &str = "'pending', 'running', 'lost', 'blocked'";

/// What a new state does to the `started` and `finished` times.
#[derive(Clone, Copy)]
pub(crate) enum Stamp {
    /// `pending`: back in the queue, neither time applies.
    Clear,
    /// `running`: started now unless it already had.
    Started,
    /// A finished state.
    Finished,
    /// `lost`: may still be re-queued; times stay.
    Keep,
}

impl Stamp {
    pub(crate) fn needs_now(self) -> bool {
        matches!(self, Stamp::Started | Stamp::Finished)
    }
}

pub(crate) fn stamp_of(state: State) -> Stamp {
    match state {
        State::Pending => Stamp::Clear,
        State::Running => Stamp::Started,
        State::Lost | State::Blocked => Stamp::Keep,
        _ if state.is_finished() => Stamp::Finished,
        _ => Stamp::Keep,
    }
}

pub(crate) async fn insert_workflow(
    transaction: &mut Transaction<'static, Any>,
    build_id: i64,
    workflow: &NewWorkflow,
    now: i64,
) -> Result<(), StoreError> {
    let workflow_id: i64 = sqlx::query_scalar(
        "INSERT INTO workflows (build_id, name, state, reason, depends_on, labels, plan, created, finished) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(build_id)
    .bind(&workflow.name)
    .bind(workflow.state.as_str())
    .bind(workflow.reason.as_deref())
    .bind(to_json(&workflow.depends_on, "the dependencies of a workflow")?)
    .bind(to_json(&workflow.labels, "the labels of a workflow")?)
    .bind(to_json(&workflow.plan, "the plan of a workflow")?)
    .bind(now)
    .bind(workflow.state.is_finished().then_some(now))
    .fetch_one(&mut **transaction)
    .await?;
    let mut position = 0_i64;
    for chunk in workflow.steps.chunks(STEPS_PER_INSERT) {
        insert_steps(transaction, workflow_id, position, chunk).await?;
        position += chunk.len() as i64;
    }
    Ok(())
}

async fn insert_steps(
    transaction: &mut Transaction<'static, Any>,
    workflow_id: i64,
    first_position: i64,
    steps: &[NewStep],
) -> Result<(), StoreError> {
    let rows: Vec<String> = (0..steps.len())
        .map(|index| {
            let first = 1 + index * 5;
            format!("(${}, ${}, ${}, ${}, ${})", first, first + 1, first + 2, first + 3, first + 4)
        })
        .collect();
    let sql = format!("INSERT INTO steps (workflow_id, name, position, state, reason) VALUES {}", rows.join(", "));
    // Only placeholders are spliced into the text; every value is bound.
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (position, step) in (first_position..).zip(steps) {
        query = query.bind(workflow_id).bind(step.name.clone()).bind(position).bind(step.state.as_str()).bind(step.reason.clone());
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

pub(crate) fn build_from_row(row: &AnyRow) -> Result<BuildRecord, StoreError> {
    Ok(BuildRecord {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        number: row.try_get("number")?,
        event: row.try_get("event")?,
        state: state(row, "state")?,
        reference: row.try_get("reference")?,
        branch: row.try_get("branch")?,
        commit: row.try_get("commit_sha")?,
        message: row.try_get("message")?,
        author: row.try_get("author")?,
        trigger: row.try_get("trigger_kind")?,
        pull_request: row.try_get("pull_request")?,
        reason: row.try_get("reason")?,
        diagnostics: json(row, "diagnostics")?,
        variables: json(row, "variables")?,
        from_fork: flag(row, "from_fork")?,
        approved_by: row.try_get("approved_by")?,
        approved_at: row.try_get("approved_at")?,
        created: row.try_get("created")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
    })
}

pub(crate) fn workflow_from_row(row: &AnyRow) -> Result<WorkflowRecord, StoreError> {
    Ok(WorkflowRecord {
        id: row.try_get("id")?,
        build_id: row.try_get("build_id")?,
        name: row.try_get("name")?,
        state: state(row, "state")?,
        reason: row.try_get("reason")?,
        depends_on: json(row, "depends_on")?,
        labels: json(row, "labels")?,
        plan: json(row, "plan")?,
        agent_id: row.try_get("agent_id")?,
        cancel_requested: flag(row, "cancel_requested")?,
        attempts: row.try_get("attempts")?,
        created: row.try_get("created")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
    })
}

fn step_from_row(row: &AnyRow) -> Result<StepRecord, StoreError> {
    Ok(StepRecord {
        id: row.try_get("id")?,
        workflow_id: row.try_get("workflow_id")?,
        name: row.try_get("name")?,
        position: row.try_get("position")?,
        state: state(row, "state")?,
        exit_code: row.try_get("exit_code")?,
        reason: row.try_get("reason")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
        log_lines: narrow(row, "log_lines")?,
    })
}

#[cfg(test)]
mod tests {
    use proto::State;

    use super::{FINISHED_STATES, UNFINISHED_STATES};

    #[test]
    fn every_state_is_in_exactly_one_sql_list() {
        for state in State::ALL {
            let quoted = format!("'{}'", state.as_str());
            let finished = FINISHED_STATES.split(", ").any(|item| item == quoted);
            let unfinished = UNFINISHED_STATES.split(", ").any(|item| item == quoted);
            assert!(finished != unfinished, "{state:?}");
            assert_eq!(finished, state.is_finished(), "{state:?}");
        }
    }
}
