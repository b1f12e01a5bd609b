//! `gantry env promote|approve|reject|promotions`: promotions, asked of the Gantry server. The
//! server checks the target environment's rules and collects approvals; the environment's
//! deployer commits the version once it is approved. Nothing here writes to an environment.

use proto::api::{Promotion, PromotionDecisionRequest, PromotionRequest, PromotionState};

use super::http::Client;
use super::render::{self, Table};

pub(super) async fn request(
    client: Client,
    app: String,
    from: String,
    to: String,
    comment: Option<String>,
    json: bool,
) -> anyhow::Result<u8> {
    let promotion: Promotion = client.post(&["environments", &to, "promotions"], &PromotionRequest { app, from, comment }).await?;
    show(&promotion, json)?;
    if !json {
        let next = match promotion.state {
            PromotionState::Pending => format!(
                "waits for {} approval(s) until {}: `gantry env approve {}`",
                promotion.approvals_required,
                render::timestamp(promotion.expires),
                promotion.id
            ),
            _ => format!("the deployer of {} commits it on its next pass", promotion.environment),
        };
        render::emit(&format!("\n{next}\n"))?;
    }
    Ok(0)
}

pub(super) async fn decide(client: Client, id: i64, approve: bool, comment: Option<String>, json: bool) -> anyhow::Result<u8> {
    let path = id.to_string();
    let verb = if approve { "approve" } else { "reject" };
    let promotion: Promotion = client.post(&["promotions", &path, verb], &PromotionDecisionRequest { comment }).await?;
    show(&promotion, json)?;
    Ok(0)
}

pub(super) async fn list(client: Client, environment: String, state: Option<String>, json: bool) -> anyhow::Result<u8> {
    let mut query = vec![("limit", "100".to_owned())];
    if let Some(state) = state {
        query.push(("state", state));
    }
    let promotions: Vec<Promotion> = client.get_query(&["environments", &environment, "promotions"], &query).await?;
    if json {
        render::emit_json(&promotions)?;
        return Ok(0);
    }
    let mut table = Table::new(&["ID", "APP", "FROM", "STATE", "APPROVALS", "REQUESTED BY", "REQUESTED", "IMAGE"]);
    for promotion in &promotions {
        table.row(vec![
            promotion.id.to_string(),
            promotion.app.clone(),
            promotion.from_environment.clone(),
            promotion.state.as_str().to_owned(),
            format!("{}/{}", approvals(promotion), promotion.approvals_required),
            promotion.requested_by.clone(),
            render::timestamp(promotion.requested),
            promotion.image.clone(),
        ]);
    }
    render::emit(&table.render())?;
    Ok(0)
}

pub(super) async fn get(client: Client, id: i64, json: bool) -> anyhow::Result<u8> {
    let promotion: Promotion = client.get(&["promotions", &id.to_string()]).await?;
    show(&promotion, json)?;
    Ok(0)
}

fn show(promotion: &Promotion, json: bool) -> anyhow::Result<()> {
    if json {
        return render::emit_json(promotion);
    }
    let mut pairs = vec![
        ("promotion", promotion.id.to_string()),
        ("app", promotion.app.clone()),
        ("from", promotion.from_environment.clone()),
        ("to", promotion.environment.clone()),
        ("image", promotion.image.clone()),
        ("state", promotion.state.as_str().to_owned()),
        ("approvals", format!("{} of {}", approvals(promotion), promotion.approvals_required)),
        ("requested by", format!("{} at {}", promotion.requested_by, render::timestamp(promotion.requested))),
    ];
    if promotion.state == PromotionState::Pending {
        pairs.push(("expires", render::timestamp(promotion.expires)));
    }
    if let Some(build) = &promotion.build {
        pairs.push(("build", format!("{} #{} at {} ({})", build.repo, build.build, render::short_commit(&build.commit), build.url)));
    }
    for decision in &promotion.decisions {
        let verb = if decision.approved { "approved" } else { "rejected" };
        let comment = decision.comment.as_deref().map(|comment| format!(": {comment}")).unwrap_or_default();
        pairs.push(("decision", format!("{verb} by {} at {}{comment}", decision.user, render::timestamp(decision.at))));
    }
    if let Some(reason) = &promotion.reason {
        pairs.push(("reason", reason.clone()));
    }
    if let Some(commit) = &promotion.commit {
        pairs.push(("commit", commit.clone()));
    }
    if let Some(branch) = &promotion.branch {
        pairs.push(("branch", branch.clone()));
    }
    render::emit(&render::fields(&pairs))
}

fn approvals(promotion: &Promotion) -> usize {
    promotion.decisions.iter().filter(|decision| decision.approved).count()
}
