//! Promotions, the deployer's half: a version that runs in one environment, asked for in
//! another and approved on a Gantry server, becomes a commit in this environment's repository.
//!
//! The server never writes to an environment repository and never holds its credentials: the
//! deployer calls out. On every pass whose repository read without mistakes, it posts a
//! `PromotionSync` to each Gantry server among its receivers (`…/environments/{name}/events`
//! becomes `…/environments/{name}/promotions/sync`), signed like its events: the environment's
//! `promotion:` rules and what became of the promotions it was given. The answer lists the
//! promotions approved and not yet carried out. Each is checked again here, where what the
//! server cannot know is known (the application's file and holds, the deployer's own clock for
//! freezes), then committed on the branch the deployer follows (`review: commit`: it deploys
//! next) or pushed to a branch `gantry/promote/<app>-<id>` for people to review and merge
//! (`review: branch`).
//!
//! Results wait in memory until a sync is answered. A commit that could not be pushed yet (the
//! repository unreachable) is reported once it is, with the id it has on the branch then, or as
//! failed when it no longer applied. A deployer that restarts before reporting finds the
//! version already pinned and reports it applied at that revision. A server that is down slows
//! nothing: it is asked again next pass.
//!
//! `decide` and `commit_message` do no IO; `apply` is git only; `Promotions` adds the HTTP.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use proto::delivery::{
    FreezeWindow, PromotionOutcome, PromotionResult, PromotionReview, PromotionRules, PromotionSync, PromotionSyncAnswer, ReadyPromotion,
};

use crate::edit::{EditError, set_image};
use crate::envgit::{Checkout, GitError};
use crate::events::Receiver;
use crate::model::{App, EnvironmentRepo, ImageRef};

/// The trailer naming the promotion a commit carries out.
pub const PROMOTION_TRAILER: &str = "Gantry-Promotion";
/// How long one sync may take: a server that hangs costs a pass this much, no more.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The promotions endpoint of a receiver that is a Gantry server's events endpoint
/// (`{base}/api/v1/environments/{name}/events` → `…/{name}/promotions/sync`); `None` for any
/// other receiver.
pub fn sync_url(events_url: &str) -> Option<String> {
    let base = events_url.strip_suffix("/events")?;
    base.contains("/api/v1/environments/").then(|| format!("{base}/promotions/sync"))
}

/// The branch a promotion is proposed on (`review: branch`).
pub fn review_branch(promotion: &ReadyPromotion) -> String {
    format!("gantry/promote/{}-{}", promotion.app, promotion.id)
}

/// Why the deployer refuses a promotion; its text is the reason the server shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this environment takes no promotions: its environment.yml has no `promotion:` section")]
    Closed,
    #[error("the environment repository has no application `{app}`")]
    UnknownApp { app: String },
    #[error("`{image}` is not an image pinned by digest")]
    NotPinned { image: String },
    #[error("`{image}` is held in {file} (`{hold}`): remove the hold by a commit first")]
    Held { image: String, file: String, hold: String },
    #[error("a change freeze is on from {} to {}{}", time_text(.window.from_ms), time_text(.window.to_ms), reason_text(&.window.reason))]
    Frozen { window: FreezeWindow },
    #[error("this environment takes promotions only from {}, not from `{from}`", .allowed.join(", "))]
    SourceNotAllowed { from: String, allowed: Vec<String> },
    #[error("{given} approval(s) given, {required} required")]
    NotApproved { given: usize, required: u32 },
    #[error(transparent)]
    NotEditable(#[from] EditError),
}

/// What a promotion that passes the checks does to the repository.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<'a> {
    /// The application's file already pins exactly that image: nothing to commit.
    AlreadyPinned { app: &'a App },
    /// The application's file is to pin `image`.
    Change { app: &'a App, image: ImageRef },
}

/// The checks the deployer makes itself before it commits a promotion, at `now_ms` (Unix
/// milliseconds, the deployer's clock), without IO.
///
/// A file that already pins the image is applied whatever the rules say now: the version is
/// there (a deployer that stopped between its push and its report, a freeze that began since),
/// and nothing is changed.
pub fn decide<'a>(repository: &'a EnvironmentRepo, promotion: &ReadyPromotion, now_ms: u64) -> Result<Decision<'a>, Refusal> {
    let app = repository.apps.get(&promotion.app).ok_or_else(|| Refusal::UnknownApp { app: promotion.app.clone() })?;
    let image = crate::read::parse_image(&promotion.image)
        .ok()
        .filter(|image| image.digest.is_some())
        .ok_or_else(|| Refusal::NotPinned { image: promotion.image.clone() })?;
    if app.image == image {
        return Ok(Decision::AlreadyPinned { app });
    }
    if let Some(hold) = app.holds.iter().find(|hold| Some(*hold) == image.digest.as_ref() || Some(*hold) == image.tag.as_ref()) {
        return Err(Refusal::Held { image: image.to_string(), file: app.file.clone(), hold: hold.clone() });
    }
    let rules = &repository.environment.promotion;
    if !rules.open {
        return Err(Refusal::Closed);
    }
    if let Some(window) = rules.freezes.iter().find(|window| window.covers(now_ms)) {
        return Err(Refusal::Frozen { window: window.clone() });
    }
    if !rules.from.is_empty() && !rules.from.contains(&promotion.from_environment) {
        return Err(Refusal::SourceNotAllowed { from: promotion.from_environment.clone(), allowed: rules.from.clone() });
    }
    let given = approvers(promotion).len();
    if given < rules.approvals as usize {
        return Err(Refusal::NotApproved { given, required: rules.approvals });
    }
    Ok(Decision::Change { app, image })
}

/// The message of a promotion's commit: what, from where, who asked and who approved, and
/// trailers that machines read back (`Gantry-Promotion` finds the commit again).
pub fn commit_message(promotion: &ReadyPromotion, image: &ImageRef) -> String {
    let version = match (&image.tag, &image.digest) {
        (Some(tag), _) => tag.clone(),
        (None, Some(digest)) => digest.chars().take("sha256:".len() + 12).collect(),
        (None, None) => image.to_string(),
    };
    let from = one_line(&promotion.from_environment);
    let mut message = format!("Promote {} from {from}: {version}\n\n", one_line(&promotion.app));
    let approvers: Vec<String> = approvers(promotion).into_iter().map(one_line).collect();
    let requested_by = one_line(&promotion.requested_by);
    if approvers.is_empty() {
        let _ = writeln!(message, "Requested by {requested_by}; no approval required.");
    } else {
        let _ = writeln!(message, "Requested by {requested_by}; approved by {}.", approvers.join(", "));
    }
    message.push('\n');
    let _ = writeln!(message, "{PROMOTION_TRAILER}: {}", promotion.id);
    let _ = writeln!(message, "Gantry-Promoted-From: {from}");
    let _ = writeln!(message, "Gantry-Image: {image}");
    for approver in &approvers {
        let _ = writeln!(message, "Approved-by: {approver}");
    }
    message
}

/// What carrying out one promotion came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    pub result: PromotionResult,
    /// A commit went on the branch the deployer follows: it is reconciled next.
    pub committed: bool,
    /// That commit is only in the checkout yet (the repository unreachable): it is pushed with
    /// a later fetch, and may have another id then.
    pub unpushed: bool,
}

impl Carried {
    fn refused(promotion: &ReadyPromotion, refusal: &Refusal) -> Carried {
        Carried {
            result: PromotionResult {
                id: promotion.id,
                outcome: PromotionOutcome::Failed,
                commit: None,
                branch: None,
                reason: Some(refusal.to_string()),
            },
            committed: false,
            unpushed: false,
        }
    }
}

/// Carries out `promotion` in the checkout, whose repository read as `repository` at
/// `revision`, at `now_ms` (Unix milliseconds): refused with the rule it breaks, applied as it
/// already is, committed on the followed branch and pushed (`review: commit`), or committed on
/// a branch of its own made from `revision` and pushed as that branch, the checkout left as it
/// is (`review: branch`). An error is git's (the branch could not be pushed, the checkout could
/// not be written): nothing was reported, and the promotion can be tried again.
pub async fn apply(
    checkout: &Checkout,
    repository: &EnvironmentRepo,
    revision: &str,
    promotion: &ReadyPromotion,
    now_ms: u64,
) -> Result<Carried, GitError> {
    let (app, image) = match decide(repository, promotion, now_ms) {
        Ok(Decision::AlreadyPinned { .. }) => {
            let result = PromotionResult {
                id: promotion.id,
                outcome: PromotionOutcome::Applied,
                commit: Some(revision.to_owned()),
                branch: None,
                reason: None,
            };
            return Ok(Carried { result, committed: false, unpushed: false });
        }
        Ok(Decision::Change { app, image }) => (app, image),
        Err(refusal) => return Ok(Carried::refused(promotion, &refusal)),
    };
    let review = repository.environment.promotion.review;
    let base = match review {
        // On top of whatever the deployer committed on the branch meanwhile (a rollback).
        PromotionReview::Commit => checkout.head().await.unwrap_or_else(|| revision.to_owned()),
        PromotionReview::Branch => revision.to_owned(),
    };
    let Some(text) = checkout.file_at(&base, &app.file).await? else {
        return Ok(Carried::refused(promotion, &Refusal::UnknownApp { app: app.name.clone() }));
    };
    let text = match set_image(&app.file, &text, &image.to_string()) {
        Ok(text) => text,
        Err(error) => return Ok(Carried::refused(promotion, &Refusal::NotEditable(error))),
    };
    let message = commit_message(promotion, &image);
    let files = [(app.file.clone(), text)];
    match review {
        PromotionReview::Commit => {
            let commit = checkout.commit_and_push(&files, &message, None).await?;
            let unpushed = checkout.pending().contains(&commit);
            let result =
                PromotionResult { id: promotion.id, outcome: PromotionOutcome::Applied, commit: Some(commit), branch: None, reason: None };
            Ok(Carried { result, committed: true, unpushed })
        }
        PromotionReview::Branch => {
            let branch = review_branch(promotion);
            // Pushed before, and the report lost (the deployer stopped): the branch is the proposal.
            let commit = match checkout.remote_branch(&branch).await? {
                Some(commit) => commit,
                None => checkout.commit_to_new_branch(&base, &files, &message, &branch).await?,
            };
            let result = PromotionResult {
                id: promotion.id,
                outcome: PromotionOutcome::Proposed,
                commit: Some(commit),
                branch: Some(branch),
                reason: None,
            };
            Ok(Carried { result, committed: false, unpushed: false })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot reach the server: {0}")]
    Request(#[source] reqwest::Error),
    #[error("the server answered {status}")]
    Status { status: u16 },
    #[error("the server's answer is not a list of ready promotions: {0}")]
    Answer(#[source] reqwest::Error),
}

/// One sync: `body` posted to `url`, signed under `secret` like the deployer's events; the
/// promotions ready for this environment. No error names the URL or the secret.
pub async fn sync(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    body: &PromotionSync,
) -> Result<PromotionSyncAnswer, SyncError> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").timeout(SYNC_TIMEOUT).body(body.clone());
    if let Some(secret) = secret {
        request = request.header(proto::api::SIGNATURE_HEADER, forge::webhook::signature(secret, &body));
    }
    let response = request.send().await.map_err(|error| SyncError::Request(error.without_url()))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(SyncError::Status { status: response.status().as_u16() });
    }
    response.json().await.map_err(|error| SyncError::Answer(error.without_url()))
}

/// The deployer's side of promotions with each Gantry server among its receivers: the results
/// not delivered yet, and the promotions this process carried out, which it does not carry out
/// twice.
pub struct Promotions {
    servers: Vec<Server>,
}

struct Server {
    url: String,
    secret: Option<String>,
    /// Results no sync has delivered yet.
    undelivered: Vec<PromotionResult>,
    /// Results of commits waiting to be pushed: delivered once they are.
    unpushed: Vec<PromotionResult>,
    /// Ids carried out or refused by this process.
    handled: BTreeSet<i64>,
}

impl Promotions {
    /// One promotions endpoint per receiver that is a Gantry server's events endpoint.
    pub fn new(receivers: &[Receiver]) -> Promotions {
        let servers = receivers
            .iter()
            .filter_map(|receiver| {
                Some(Server {
                    url: sync_url(&receiver.url)?,
                    secret: receiver.secret.clone(),
                    undelivered: Vec::new(),
                    unpushed: Vec::new(),
                    handled: BTreeSet::new(),
                })
            })
            .collect();
        Promotions { servers }
    }

    /// Whether any receiver is a Gantry server.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// One pass with the repository as read at `revision`: each server is sent the rules and
    /// the results it has not had; each promotion it answers with is carried out (except those
    /// of `elsewhere`, applications on targets another deployer keeps), and the results are
    /// sent again at once. True when a promotion was committed on the followed branch, so that
    /// it is reconciled now.
    pub async fn pass(
        &mut self,
        client: &reqwest::Client,
        checkout: &Checkout,
        repository: &EnvironmentRepo,
        revision: &str,
        elsewhere: &BTreeSet<String>,
    ) -> bool {
        let mut committed = false;
        for server in &mut self.servers {
            server.settle_unpushed(checkout).await;
            let Some(answer) = server.sync(client, repository, revision).await else { continue };
            let mut carried_any = false;
            for promotion in answer.ready {
                if server.handled.contains(&promotion.id) || elsewhere.contains(&promotion.app) {
                    continue;
                }
                match apply(checkout, repository, revision, &promotion, now_ms()).await {
                    Ok(carried) => {
                        log(&promotion, &carried);
                        server.handled.insert(promotion.id);
                        committed |= carried.committed;
                        if carried.unpushed {
                            server.unpushed.push(carried.result);
                        } else {
                            server.undelivered.push(carried.result);
                            carried_any = true;
                        }
                    }
                    Err(error) => tracing::warn!(
                        app = %promotion.app,
                        id = promotion.id,
                        %error,
                        "cannot carry out the promotion yet; trying again next pass"
                    ),
                }
            }
            // The server learns the results now rather than a poll later; what it answers
            // this time waits for the next pass.
            if carried_any {
                server.sync(client, repository, revision).await;
            }
        }
        committed
    }
}

impl Server {
    /// Sends the rules and the undelivered results; on a 200 they are delivered.
    async fn sync(&mut self, client: &reqwest::Client, repository: &EnvironmentRepo, revision: &str) -> Option<PromotionSyncAnswer> {
        let body = PromotionSync {
            environment: repository.environment.name.clone(),
            revision: revision.to_owned(),
            rules: repository.environment.promotion.clone(),
            sent_at: now_ms(),
            results: self.undelivered.clone(),
        };
        let endpoint = proto::remote::redact_credentials(&self.url);
        match sync(client, &self.url, self.secret.as_deref(), &body).await {
            Ok(answer) => {
                self.undelivered.clear();
                Some(answer)
            }
            Err(error @ SyncError::Status { .. }) => {
                tracing::warn!(%endpoint, %error, undelivered = body.results.len(), "the server refused the promotions sync; trying again next pass");
                None
            }
            Err(error) => {
                tracing::info!(%endpoint, %error, undelivered = body.results.len(), "cannot sync promotions with the server; trying again next pass");
                None
            }
        }
    }

    /// Once nothing of the deployer's waits to be pushed, each unpushed promotion is reported
    /// with the commit that carries it on the branch, or as failed when its commit was dropped
    /// (it no longer applied).
    async fn settle_unpushed(&mut self, checkout: &Checkout) {
        if self.unpushed.is_empty() || !checkout.pending().is_empty() {
            return;
        }
        for mut result in std::mem::take(&mut self.unpushed) {
            match checkout.commit_with_trailer(&format!("{PROMOTION_TRAILER}: {}", result.id)).await {
                Ok(Some(commit)) => {
                    result.commit = Some(commit);
                    self.undelivered.push(result);
                }
                Ok(None) => self.undelivered.push(PromotionResult {
                    id: result.id,
                    outcome: PromotionOutcome::Failed,
                    commit: None,
                    branch: None,
                    reason: Some("its commit no longer applied to the branch (the application's file changed meanwhile)".to_owned()),
                }),
                Err(error) => {
                    tracing::warn!(id = result.id, %error, "cannot find the promotion's commit");
                    self.unpushed.push(result);
                }
            }
        }
    }
}

fn log(promotion: &ReadyPromotion, carried: &Carried) {
    let result = &carried.result;
    let commit = result.commit.as_deref().unwrap_or_default();
    match result.outcome {
        PromotionOutcome::Applied => tracing::info!(
            app = %promotion.app,
            id = promotion.id,
            from = %promotion.from_environment,
            image = %promotion.image,
            commit,
            already_pinned = !carried.committed,
            "promotion applied"
        ),
        PromotionOutcome::Proposed => tracing::info!(
            app = %promotion.app,
            id = promotion.id,
            from = %promotion.from_environment,
            image = %promotion.image,
            branch = result.branch.as_deref().unwrap_or_default(),
            commit,
            "promotion proposed for review"
        ),
        PromotionOutcome::Failed => tracing::warn!(
            app = %promotion.app,
            id = promotion.id,
            from = %promotion.from_environment,
            image = %promotion.image,
            reason = result.reason.as_deref().unwrap_or_default(),
            "promotion refused"
        ),
    }
}

/// Who approved, each once, in the order the server gave.
fn approvers(promotion: &ReadyPromotion) -> Vec<&str> {
    let mut seen = Vec::new();
    for user in &promotion.approved_by {
        if !seen.contains(&user.as_str()) {
            seen.push(user.as_str());
        }
    }
    seen
}

/// Text from the server on one line of a commit message: a line break in a name cannot forge
/// a trailer.
fn one_line(text: &str) -> String {
    text.chars().map(|character| if character.is_control() { ' ' } else { character }).collect()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds as RFC 3339, UTC.
fn time_text(ms: u64) -> String {
    i128::from(ms)
        .checked_mul(1_000_000)
        .and_then(|nanos| time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn reason_text(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(" ({reason})") }
}
