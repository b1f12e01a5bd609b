//! Promotions: requests to run in one environment the image another runs, the decisions of the
//! people asked, and the rules the environment's deployer last sent. Every change of state is
//! one conditional update from the state it leaves, so concurrent approvals, an expiry and a
//! deployer's report each move a promotion once.

use proto::api::PromotionState;
use proto::delivery::PromotionRules;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::columns::{from_wire_name, json, to_json, wire_name};
use crate::error::classify;
use crate::{DecisionChange, NewPromotion, PromotionDecisionRecord, PromotionEnd, PromotionRecord, Store, StoreError};

const PROMOTION_COLUMNS: &str = "p.id, p.environment_id, e.name AS environment, p.app, p.from_environment, p.image, p.requested_by, \
     p.comment, p.requested_at, p.expires_at, p.approvals_required, p.rules, p.state, p.updated_at, p.reason, p.commit_sha, p.branch";

impl Store {
    /// Keeps the promotion rules the environment's deployer sent, read at `revision`.
    pub async fn set_promotion_rules(
        &self,
        environment_id: i64,
        rules: &PromotionRules,
        revision: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE environments SET promotion_rules = $2, rules_revision = $3, last_sync = $4 WHERE id = $1")
            .bind(environment_id)
            .bind(to_json(rules, "promotion rules")?)
            .bind(revision)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The rules the environment's deployer last sent, with the revision they were read at;
    /// `None` until its deployer first synced.
    pub async fn promotion_rules(&self, environment_id: i64) -> Result<Option<(PromotionRules, String)>, StoreError> {
        let row = sqlx::query("SELECT promotion_rules, rules_revision FROM environments WHERE id = $1 AND promotion_rules IS NOT NULL")
            .bind(environment_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((json(&row, "promotion_rules")?, row.try_get("rules_revision")?)))
    }

    /// Records a request: `approved` at once when its rules ask for no approval, else `pending`
    /// until `now` plus the rules' timeout.
    pub async fn create_promotion(&self, new: &NewPromotion<'_>) -> Result<PromotionRecord, StoreError> {
        let state = if new.rules.approvals == 0 { PromotionState::Approved } else { PromotionState::Pending };
        let timeout = i64::try_from(new.rules.timeout_ms).unwrap_or(i64::MAX);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO promotions (environment_id, app, from_environment, image, requested_by, comment, requested_at, expires_at, \
             approvals_required, rules, state, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $7) RETURNING id",
        )
        .bind(new.environment_id)
        .bind(new.app)
        .bind(new.from_environment)
        .bind(new.image)
        .bind(new.requested_by)
        .bind(new.comment.map(str::to_owned))
        .bind(new.now)
        .bind(new.now.saturating_add(timeout))
        .bind(i64::from(new.rules.approvals))
        .bind(to_json(new.rules, "promotion rules")?)
        .bind(wire_name(&state, "a promotion state")?)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| classify(error, || format!("promotion of {}", new.app), || format!("environment {}", new.environment_id)))?;
        self.promotion(id).await?.ok_or_else(|| StoreError::not_found(format!("promotion {id}")))
    }

    pub async fn promotion(&self, id: i64) -> Result<Option<PromotionRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROMOTION_COLUMNS} FROM promotions p JOIN environments e ON e.id = p.environment_id WHERE p.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut records = vec![promotion_from_row(&row)?];
        self.attach_decisions(&mut records).await?;
        Ok(records.pop())
    }

    /// The promotion of `app` into the environment still pending or approved, if any (at most
    /// one is: a request is refused while another is open).
    pub async fn open_promotion(&self, environment_id: i64, app: &str) -> Result<Option<PromotionRecord>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM promotions WHERE environment_id = $1 AND app = $2 AND state IN ($3, $4) ORDER BY id DESC LIMIT 1",
        )
        .bind(environment_id)
        .bind(app)
        .bind(wire_name(&PromotionState::Pending, "a promotion state")?)
        .bind(wire_name(&PromotionState::Approved, "a promotion state")?)
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => self.promotion(id).await,
            None => Ok(None),
        }
    }

    /// Promotions newest first: of one environment or all, in one state or any.
    pub async fn promotions(
        &self,
        environment_id: Option<i64>,
        state: Option<PromotionState>,
        limit: i64,
    ) -> Result<Vec<PromotionRecord>, StoreError> {
        let state = state.map(|state| wire_name(&state, "a promotion state")).transpose()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROMOTION_COLUMNS} FROM promotions p JOIN environments e ON e.id = p.environment_id \
             WHERE ($1 IS NULL OR p.environment_id = $1) AND ($2 IS NULL OR p.state = $2) ORDER BY p.id DESC LIMIT $3"
        )))
        .bind(environment_id)
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut records = rows.iter().map(promotion_from_row).collect::<Result<Vec<_>, _>>()?;
        self.attach_decisions(&mut records).await?;
        Ok(records)
    }

    /// Records `login`'s decision on a pending promotion that has not expired at `now`, then
    /// moves the promotion on: rejected by any rejection, approved by the last approval needed.
    pub async fn decide_promotion(
        &self,
        id: i64,
        login: &str,
        approved: bool,
        comment: Option<&str>,
        now: i64,
    ) -> Result<DecisionChange, StoreError> {
        let pending = wire_name(&PromotionState::Pending, "a promotion state")?;
        let inserted = sqlx::query(
            "INSERT INTO promotion_decisions (promotion_id, login, approved, comment, decided_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM promotions WHERE id = $1 AND state = $6 AND expires_at > $5) \
             ON CONFLICT (promotion_id, login) DO NOTHING",
        )
        .bind(id)
        .bind(login)
        .bind(i64::from(approved))
        .bind(comment.map(str::to_owned))
        .bind(now)
        .bind(&pending)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            let decided: Option<i64> = sqlx::query_scalar("SELECT 1 FROM promotion_decisions WHERE promotion_id = $1 AND login = $2")
                .bind(id)
                .bind(login)
                .fetch_optional(&self.pool)
                .await?;
            return Ok(if decided.is_some() { DecisionChange::AlreadyDecided } else { DecisionChange::NotPending });
        }
        if !approved {
            let reason = format!("rejected by {login}");
            let end = PromotionEnd { reason: Some(&reason), ..PromotionEnd::new(PromotionState::Rejected) };
            let moved = self.move_promotion(id, PromotionState::Pending, &end, now).await?;
            return Ok(if moved { DecisionChange::Rejected } else { DecisionChange::NotPending });
        }
        let approved_state = wire_name(&PromotionState::Approved, "a promotion state")?;
        let moved = sqlx::query(
            "UPDATE promotions SET state = $2, updated_at = $4 WHERE id = $1 AND state = $3 \
             AND (SELECT COUNT(*) FROM promotion_decisions d WHERE d.promotion_id = $1 AND d.approved = 1) >= approvals_required",
        )
        .bind(id)
        .bind(&approved_state)
        .bind(&pending)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(if moved.rows_affected() > 0 { DecisionChange::Approved } else { DecisionChange::Recorded })
    }

    /// Pending promotions whose time ran out by `now`, each moved to `expired` once; those this
    /// call moved.
    pub async fn expire_promotions(&self, now: i64) -> Result<Vec<PromotionRecord>, StoreError> {
        let pending = wire_name(&PromotionState::Pending, "a promotion state")?;
        let due: Vec<i64> = sqlx::query_scalar("SELECT id FROM promotions WHERE state = $1 AND expires_at <= $2 ORDER BY id")
            .bind(&pending)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut expired = Vec::new();
        for id in due {
            let end = PromotionEnd { reason: Some("not approved in time"), ..PromotionEnd::new(PromotionState::Expired) };
            if self.move_promotion(id, PromotionState::Pending, &end, now).await? {
                expired.extend(self.promotion(id).await?);
            }
        }
        Ok(expired)
    }

    /// Moves promotion `id` of environment `environment_id` from `approved` to what its
    /// deployer reported. False when it was not approved (reported twice, or not this
    /// environment's).
    pub async fn finish_promotion(&self, environment_id: i64, id: i64, end: &PromotionEnd<'_>, now: i64) -> Result<bool, StoreError> {
        let owned: Option<i64> = sqlx::query_scalar("SELECT id FROM promotions WHERE id = $1 AND environment_id = $2")
            .bind(id)
            .bind(environment_id)
            .fetch_optional(&self.pool)
            .await?;
        if owned.is_none() {
            return Ok(false);
        }
        self.move_promotion(id, PromotionState::Approved, end, now).await
    }

    /// One conditional update from `from` to `end`.
    async fn move_promotion(&self, id: i64, from: PromotionState, end: &PromotionEnd<'_>, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE promotions SET state = $3, reason = COALESCE($4, reason), commit_sha = COALESCE($5, commit_sha), \
             branch = COALESCE($6, branch), updated_at = $7 WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(wire_name(&from, "a promotion state")?)
        .bind(wire_name(&end.state, "a promotion state")?)
        .bind(end.reason.map(str::to_owned))
        .bind(end.commit.map(str::to_owned))
        .bind(end.branch.map(str::to_owned))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn attach_decisions(&self, records: &mut [PromotionRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = records.iter().map(|record| record.id.to_string()).collect();
        // Ids are integers this function formatted: nothing of a caller's text is in the query.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT promotion_id, login, approved, comment, decided_at FROM promotion_decisions \
             WHERE promotion_id IN ({}) ORDER BY decided_at, login",
            ids.join(", ")
        )))
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let promotion_id: i64 = row.try_get("promotion_id")?;
            let approved: i64 = row.try_get("approved")?;
            let decision = PromotionDecisionRecord {
                login: row.try_get("login")?,
                approved: approved != 0,
                comment: row.try_get("comment")?,
                decided_at: row.try_get("decided_at")?,
            };
            if let Some(record) = records.iter_mut().find(|record| record.id == promotion_id) {
                record.decisions.push(decision);
            }
        }
        Ok(())
    }
}

fn promotion_from_row(row: &AnyRow) -> Result<PromotionRecord, StoreError> {
    let approvals_required: i64 = row.try_get("approvals_required")?;
    Ok(PromotionRecord {
        id: row.try_get("id")?,
        environment_id: row.try_get("environment_id")?,
        environment: row.try_get("environment")?,
        app: row.try_get("app")?,
        from_environment: row.try_get("from_environment")?,
        image: row.try_get("image")?,
        requested_by: row.try_get("requested_by")?,
        comment: row.try_get("comment")?,
        requested_at: row.try_get("requested_at")?,
        expires_at: row.try_get("expires_at")?,
        approvals_required: u32::try_from(approvals_required)
            .map_err(|_| StoreError::Corrupt(format!("promotion approvals_required holds {approvals_required}")))?,
        rules: json(row, "rules")?,
        state: from_wire_name(row, "state")?,
        updated_at: row.try_get("updated_at")?,
        reason: row.try_get("reason")?,
        commit: row.try_get("commit_sha")?,
        branch: row.try_get("branch")?,
        decisions: Vec::new(),
    })
}
