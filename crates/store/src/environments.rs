//! Environments whose deployers report to the server, and what they reported: deployments
//! (one row per deployment id, brought from `running` to its final outcome once) and drift.
//! Each environment's signing secret is sealed by the store on every write, bound to the
//! environment's name, and opened only to check an event's signature.

use std::collections::BTreeMap;

use proto::delivery::{DeploymentOutcome, DeploymentRecord};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{flag, from_wire_name, json, narrow, narrow_optional, to_json, wire_name};
use crate::error::classify;
use crate::{AppDeployments, DeploymentChange, DeploymentEntry, DriftEntry, EnvironmentRecord, Store, StoreError};

/// Binds a deployment record as parameters `$1` to `$15`, in the column order both the insert
/// and the update name them.
macro_rules! bind_deployment {
    ($query:expr, $environment_id:expr, $record:expr, $kind:expr, $started_at:expr, $finished_at:expr, $outcome:expr, $owner_team:expr, $now:expr) => {
        $query
            .bind($environment_id)
            .bind(&$record.id)
            .bind(&$record.app)
            .bind($kind)
            .bind($record.from_image.clone())
            .bind($record.to_image.clone())
            .bind($record.from_revision.clone())
            .bind(&$record.revision)
            .bind(&$record.author)
            .bind($started_at)
            .bind($finished_at)
            .bind($outcome)
            .bind($record.reason.clone())
            .bind($owner_team.map(str::to_owned))
            .bind($now)
    };
}

impl Store {
    /// `StoreError::Conflict` when an environment of that name exists.
    pub async fn create_environment(&self, name: &str, secret: &str, now: i64) -> Result<EnvironmentRecord, StoreError> {
        sqlx::query("INSERT INTO environments (name, secret, created) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(self.sealer.seal_environment_secret(name, secret))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|error| classify(error, || format!("environment {name}"), || format!("environment {name}")))?;
        self.environment_by_name(name).await?.ok_or_else(|| StoreError::not_found(format!("environment {name}")))
    }

    /// By name.
    pub async fn list_environments(&self) -> Result<Vec<EnvironmentRecord>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", environment_columns!(), " FROM environments e ORDER BY e.name")).fetch_all(&self.pool).await?;
        rows.iter().map(environment_from_row).collect()
    }

    pub async fn environment_by_name(&self, name: &str) -> Result<Option<EnvironmentRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", environment_columns!(), " FROM environments e WHERE e.name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(environment_from_row).transpose()
    }

    /// The environment and its signing secret, opened: what checks an event's signature. A
    /// secret that does not open is `Corrupt`, naming the environment.
    pub async fn environment_signing_secret(&self, name: &str) -> Result<Option<(EnvironmentRecord, String)>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", environment_columns!(), ", e.secret FROM environments e WHERE e.name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get("secret")?;
        let secret = self.sealer.open_environment_secret(name, &sealed).map_err(|_| {
            StoreError::Corrupt(format!(
                "the signing secret of environment {name} cannot be decrypted with this key (was GANTRY_SECRET_KEY changed?)"
            ))
        })?;
        Ok(Some((environment_from_row(&row)?, secret)))
    }

    /// False when there is no such environment.
    pub async fn replace_environment_secret(&self, name: &str, secret: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE environments SET secret = $2 WHERE name = $1")
            .bind(name)
            .bind(self.sealer.seal_environment_secret(name, secret))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Removes the environment with its deployments and drift. False when there was none.
    pub async fn delete_environment(&self, name: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM environments WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(result.rows_affected() > 0)
    }

    /// Notes that the environment's deployer was heard from at `now`.
    pub async fn touch_environment(&self, environment_id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE environments SET last_event = $2 WHERE id = $1 AND (last_event IS NULL OR last_event < $2)")
            .bind(environment_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a deployment as its deployer reported it. The first report of an id creates it;
    /// a final one (succeeded, failed, interrupted) replaces a `running` one, once, by a
    /// conditional update; anything else (a redelivery, a start arriving after the end, a
    /// second final report) changes nothing. Times beyond `i64::MAX` milliseconds are refused
    /// by callers.
    pub async fn record_deployment(
        &self,
        environment_id: i64,
        record: &DeploymentRecord,
        owner_team: Option<&str>,
        now: i64,
    ) -> Result<DeploymentChange, StoreError> {
        let kind = wire_name(&record.kind, "a deployment kind")?;
        let outcome = wire_name(&record.outcome, "a deployment outcome")?;
        let running = wire_name(&DeploymentOutcome::Running, "a deployment outcome")?;
        let started_at = milliseconds(record.started_at);
        let finished_at = record.finished_at.map(milliseconds);
        let inserted = bind_deployment!(
            sqlx::query(
                "INSERT INTO deployments (environment_id, deployment_id, app, kind, from_image, to_image, from_revision, revision, \
                 author, started_at, finished_at, outcome, reason, owner_team, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (environment_id, deployment_id) DO NOTHING",
            ),
            environment_id,
            record,
            &kind,
            started_at,
            finished_at,
            &outcome,
            owner_team,
            now
        )
        .execute(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("deployment {}", record.id), || format!("environment {environment_id}")))?;
        if inserted.rows_affected() > 0 {
            return Ok(DeploymentChange::Created);
        }
        if record.outcome == DeploymentOutcome::Running {
            return Ok(DeploymentChange::Unchanged);
        }
        // Only from `running`: a final outcome is final, and concurrent deliveries of the end
        // update the row once.
        let updated = bind_deployment!(
            sqlx::query(
                "UPDATE deployments SET app = $3, kind = $4, from_image = $5, to_image = $6, from_revision = $7, revision = $8, \
                 author = $9, started_at = $10, finished_at = $11, outcome = $12, reason = $13, \
                 owner_team = COALESCE($14, owner_team), received_at = $15 \
             WHERE environment_id = $1 AND deployment_id = $2 AND outcome = $16",
            ),
            environment_id,
            record,
            &kind,
            started_at,
            finished_at,
            &outcome,
            owner_team,
            now
        )
        .bind(&running)
        .execute(&self.pool)
        .await?;
        Ok(if updated.rows_affected() > 0 { DeploymentChange::Updated } else { DeploymentChange::Unchanged })
    }

    /// Marks a deployment as rolled back by its deployer. False when it already was, or when
    /// there is no such deployment.
    pub async fn mark_rolled_back(&self, environment_id: i64, deployment_id: &str, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE deployments SET rolled_back = 1, received_at = $3 \
             WHERE environment_id = $1 AND deployment_id = $2 AND rolled_back = 0",
        )
        .bind(environment_id)
        .bind(deployment_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Records drift reported for an application, unless the same drift of that application was
    /// recorded at or after `repeated_since` (a redelivery). True when it was recorded.
    pub async fn record_drift(
        &self,
        environment_id: i64,
        app: &str,
        owner_team: Option<&str>,
        drift: &[String],
        now: i64,
        repeated_since: i64,
    ) -> Result<bool, StoreError> {
        let drift = to_json(drift, "the drift of an application")?;
        let result = sqlx::query(
            "INSERT INTO drift_events (environment_id, app, owner_team, drift, received) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (\
                 SELECT 1 FROM drift_events WHERE environment_id = $1 AND app = $2 AND drift = $4 AND received >= $6)",
        )
        .bind(environment_id)
        .bind(app)
        .bind(owner_team.map(str::to_owned))
        .bind(&drift)
        .bind(now)
        .bind(repeated_since)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("drift of {app}"), || format!("environment {environment_id}")))?;
        Ok(result.rows_affected() > 0)
    }

    /// The environment's deployments, of one application or all, newest first (by start).
    pub async fn deployments(&self, environment_id: i64, app: Option<&str>, limit: i64) -> Result<Vec<DeploymentEntry>, StoreError> {
        const SELECT: &str =
            concat!("SELECT ", deployment_columns!(), " FROM deployments d JOIN environments e ON e.id = d.environment_id ");
        const ORDER: &str = " ORDER BY d.started_at DESC, d.id DESC LIMIT $2";
        let rows = match app {
            Some(app) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE d.environment_id = $1 AND d.app = $3 {ORDER}")))
                    .bind(environment_id)
                    .bind(limit)
                    .bind(app)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE d.environment_id = $1 {ORDER}")))
                    .bind(environment_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(deployment_from_row).collect()
    }

    /// One deployment of the environment, by the deployer's id.
    pub async fn deployment_by_id(&self, environment_id: i64, deployment_id: &str) -> Result<Option<DeploymentEntry>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            deployment_columns!(),
            " FROM deployments d JOIN environments e ON e.id = d.environment_id WHERE d.environment_id = $1 AND d.deployment_id = $2"
        ))
        .bind(environment_id)
        .bind(deployment_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(deployment_from_row).transpose()
    }

    /// The environment's deployments, of one application or all, that started at or after
    /// `since_ms`, oldest first (at most 100,000: metrics windows are a year at most).
    pub async fn deployments_since(
        &self,
        environment_id: i64,
        app: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<DeploymentEntry>, StoreError> {
        const SELECT: &str =
            concat!("SELECT ", deployment_columns!(), " FROM deployments d JOIN environments e ON e.id = d.environment_id ");
        const ORDER: &str = " ORDER BY d.started_at, d.id LIMIT 100000";
        let rows = match app {
            Some(app) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} WHERE d.environment_id = $1 AND d.started_at >= $2 AND d.app = $3 {ORDER}"
                )))
                .bind(environment_id)
                .bind(since_ms)
                .bind(app)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE d.environment_id = $1 AND d.started_at >= $2 {ORDER}")))
                    .bind(environment_id)
                    .bind(since_ms)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(deployment_from_row).collect()
    }

    /// Every application the environment's deployer reported on, by name: its latest
    /// successful deployment, its latest deployment and its latest drift.
    pub async fn environment_apps(&self, environment_id: i64) -> Result<Vec<AppDeployments>, StoreError> {
        let mut apps: BTreeMap<String, AppDeployments> = BTreeMap::new();
        for deployment in self.newest_per_app(environment_id, None).await? {
            let app = deployment.record.app.clone();
            slot(&mut apps, &app).latest = Some(deployment);
        }
        let succeeded = wire_name(&DeploymentOutcome::Succeeded, "a deployment outcome")?;
        for deployment in self.newest_per_app(environment_id, Some(&succeeded)).await? {
            let app = deployment.record.app.clone();
            slot(&mut apps, &app).current = Some(deployment);
        }
        let rows = sqlx::query(
            "SELECT f.app, f.owner_team, f.drift, f.received FROM drift_events f WHERE f.environment_id = $1 \
             AND f.id = (SELECT MAX(g.id) FROM drift_events g WHERE g.environment_id = f.environment_id AND g.app = f.app)",
        )
        .bind(environment_id)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let drift = DriftEntry {
                app: row.try_get("app")?,
                owner_team: row.try_get("owner_team")?,
                drift: json(row, "drift")?,
                received: row.try_get("received")?,
            };
            let app = drift.app.clone();
            slot(&mut apps, &app).drift = Some(drift);
        }
        Ok(apps.into_values().collect())
    }

    /// Per application, its newest deployment (by start), of one outcome or any.
    async fn newest_per_app(&self, environment_id: i64, outcome: Option<&str>) -> Result<Vec<DeploymentEntry>, StoreError> {
        // No newer deployment of the same application (of that outcome): ties on the start go
        // to the one recorded last.
        const NEWEST: &str = concat!(
            "SELECT ",
            deployment_columns!(),
            " FROM deployments d JOIN environments e ON e.id = d.environment_id \
             WHERE d.environment_id = $1 AND NOT EXISTS (\
                 SELECT 1 FROM deployments n WHERE n.environment_id = d.environment_id AND n.app = d.app \
                 AND (n.started_at > d.started_at OR (n.started_at = d.started_at AND n.id > d.id))"
        );
        let rows = match outcome {
            Some(outcome) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{NEWEST} AND n.outcome = $2) AND d.outcome = $2")))
                    .bind(environment_id)
                    .bind(outcome)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(sqlx::AssertSqlSafe(format!("{NEWEST})"))).bind(environment_id).fetch_all(&self.pool).await?,
        };
        rows.iter().map(deployment_from_row).collect()
    }
}

/// The entry of `app`, made when missing.
fn slot<'a>(apps: &'a mut BTreeMap<String, AppDeployments>, app: &str) -> &'a mut AppDeployments {
    apps.entry(app.to_owned()).or_insert_with(|| AppDeployments { app: app.to_owned(), ..Default::default() })
}

/// Milliseconds as stored; callers refuse times that do not fit.
fn milliseconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn environment_from_row(row: &AnyRow) -> Result<EnvironmentRecord, StoreError> {
    Ok(EnvironmentRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created: row.try_get("created")?,
        last_event: row.try_get("last_event")?,
        deployments: row.try_get("deployments")?,
        apps: row.try_get("apps")?,
    })
}

fn deployment_from_row(row: &AnyRow) -> Result<DeploymentEntry, StoreError> {
    Ok(DeploymentEntry {
        record: DeploymentRecord {
            id: row.try_get("deployment_id")?,
            environment: row.try_get("environment")?,
            app: row.try_get("app")?,
            kind: from_wire_name(row, "kind")?,
            from_image: row.try_get("from_image")?,
            to_image: row.try_get("to_image")?,
            from_revision: row.try_get("from_revision")?,
            revision: row.try_get("revision")?,
            author: row.try_get("author")?,
            started_at: narrow(row, "started_at")?,
            finished_at: narrow_optional(row, "finished_at")?,
            outcome: from_wire_name(row, "outcome")?,
            reason: row.try_get("reason")?,
        },
        owner_team: row.try_get("owner_team")?,
        rolled_back: flag(row, "rolled_back")?,
        received_at: row.try_get("received_at")?,
    })
}
