//! The long-running deployer: the environment repository cloned into its data folder and
//! fetched every poll (with jitter, so that many deployers do not fetch in step) or when a
//! webhook says so, then one reconcile. When the repository cannot be reached, the checkout's
//! last commit is reconciled again: what runs stays the last known good state, drift is still
//! healed, and a rollback is still committed (locally, pushed later). A commit with mistakes
//! is not applied; the deployer says so and waits for the next one.
//!
//! A rollout that fails its health check is rolled back as a commit: the application's file
//! as it was at the revision that last ran, plus a hold on the failed image, by the deployer,
//! with the reason in the message and trailers naming the failed revision and image. Git and
//! what runs agree again, and image automation skips the held image. An application whose
//! policy is `pause` (or that has nothing to go back to) keeps its failed version paused: it is
//! not retried until the repository changes it.
//!
//! Each pass whose repository read without mistakes also syncs promotions with the Gantry
//! servers among the receivers (`promote`): an approved promotion is committed like image
//! automation's updates, and reconciled at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::envgit::Checkout;
use crate::events::{self, DeploymentEvent, Receiver};
use crate::history::{DeploymentOutcome, DeploymentRecord, History};
use crate::inventory::{self, Metrics};
use crate::model::{App, FailureAction};
use crate::plan::Action;
use crate::reconcile::{Desired, Journal, Outcome, ReconcileError, ReconcileOptions, Revision, Targets, observe, read_desired};
use crate::secrets::SecretStore;
use crate::serve::Shared;
use crate::target::TargetError;

pub struct RunOptions {
    /// Where the repository is cloned from: any URL git takes, chosen by whoever runs the
    /// deployer (a path or `file://` included).
    pub repo: String,
    pub branch: String,
    /// The deployer's own folder: the checkout, the secret store, the history.
    pub data: PathBuf,
    pub poll: Duration,
    pub docker_host: Option<String>,
    /// Serves hooks, the inventory and metrics there.
    pub listen: Option<SocketAddr>,
    /// Verifies push webhooks.
    pub webhook_secret: Option<String>,
    /// Verifies Gantry's `image.published` events.
    pub gantry_secret: Option<String>,
    /// Required as a bearer token by the inventory and history endpoints, when set.
    pub api_token: Option<String>,
    /// Seals the secret store (else a key file in `data`).
    pub secret_key: Option<String>,
    pub receivers: Vec<Receiver>,
    /// Plans every pass and changes nothing.
    pub dry_run: bool,
    /// Only this target (by name or kind) and its applications.
    pub target: Option<String>,
    /// How often registries are asked for newer images (besides Gantry's `image.published`).
    pub image_poll: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretStoreError),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("deployment history: {0}")]
    History(#[from] crate::history::HistoryError),
}

/// Reconciles until `stop` is cancelled.
pub async fn run(options: RunOptions, stop: CancellationToken) -> Result<(), RunError> {
    let secrets = SecretStore::open(&options.data, options.secret_key.as_deref())?;
    let history = History::new(&options.data);
    let client = reqwest::Client::new();
    let shared = Arc::new(Shared {
        inventory: tokio::sync::RwLock::new(None),
        metrics: std::sync::Mutex::new(Metrics::default()),
        history: history.clone(),
        wake: tokio::sync::Notify::new(),
        automation_due: std::sync::atomic::AtomicBool::new(false),
        branch: options.branch.clone(),
        webhook_secret: options.webhook_secret.clone(),
        gantry_secret: options.gantry_secret.clone(),
        api_token: options.api_token.clone(),
    });
    for record in history.close_interrupted()? {
        tracing::warn!(app = %record.app, revision = %record.revision, "a rollout was interrupted when the deployer stopped; reconciling finishes or undoes it");
        count(&shared, |metrics| *metrics.deployments.entry("interrupted".to_owned()).or_default() += 1);
    }
    if let Some(address) = options.listen {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|source| RunError::Listen { address, source })?;
        tracing::info!(%address, "listening for hooks, inventory and metrics");
        let router = crate::serve::router(shared.clone());
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(async move { stopped.cancelled().await }).await;
        });
    }
    let checkout = Checkout::new(&options.repo, &options.branch, &options.data);
    let mut deployer = Deployer {
        options: &options,
        checkout,
        secrets,
        shared: shared.clone(),
        client,
        paused: BTreeMap::new(),
        reported_drift: BTreeMap::new(),
        image_labels: BTreeMap::new(),
        registry: registry::Registry::new(),
        images_polled: None,
        desired: None,
        targets: None,
        history: None,
        promotions: crate::promote::Promotions::new(&options.receivers),
    };
    loop {
        let again = deployer.pass().await;
        if again {
            continue;
        }
        let jitter = options.poll.mul_f64(0.1 * pseudo_random());
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(options.poll + jitter) => {}
            () = shared.wake.notified() => {}
        }
    }
}

struct Deployer<'a> {
    options: &'a RunOptions,
    checkout: Checkout,
    secrets: SecretStore,
    shared: Arc<Shared>,
    client: reqwest::Client,
    /// Applications whose desired spec failed and is not retried until it changes: spec digest.
    paused: BTreeMap<String, String>,
    /// The drift last reported per application, so that it is reported once, not every poll.
    reported_drift: BTreeMap<String, Vec<String>>,
    /// Images' labels by reference, for provenance.
    image_labels: BTreeMap<String, BTreeMap<String, String>>,
    registry: registry::Registry,
    /// When registries were last asked for newer images.
    images_polled: Option<Instant>,
    /// The repository as last read, with the revision and secret store it was read at: a pass
    /// with nothing new reads nothing again.
    desired: Option<ReadAt>,
    /// Connections to the targets, kept while the targets stay the same.
    targets: Option<Arc<Targets>>,
    /// The deployment history as last read; read again after a pass that deployed.
    history: Option<Vec<DeploymentRecord>>,
    /// Promotions with the Gantry servers among the receivers.
    promotions: crate::promote::Promotions,
}

/// The repository as read at one revision, with the secret store's stamp then.
struct ReadAt {
    revision: String,
    store: Option<(std::time::SystemTime, u64)>,
    desired: Arc<Desired>,
}

/// Writes the history, sends events and counts outcomes as deployments start and end.
struct RunJournal<'a> {
    history: &'a History,
    shared: &'a Shared,
    client: &'a reqwest::Client,
    receivers: &'a [Receiver],
    owners: BTreeMap<String, String>,
}

impl Journal for RunJournal<'_> {
    fn record(&self, record: &DeploymentRecord) {
        self.history.record(record);
        let event = match record.outcome {
            DeploymentOutcome::Running => events::DEPLOYMENT_STARTED,
            DeploymentOutcome::Succeeded => events::DEPLOYMENT_SUCCEEDED,
            DeploymentOutcome::Failed | DeploymentOutcome::Interrupted => events::DEPLOYMENT_FAILED,
        };
        if record.outcome != DeploymentOutcome::Running {
            let outcome = if record.outcome == DeploymentOutcome::Succeeded { "succeeded" } else { "failed" };
            count(self.shared, |metrics| *metrics.deployments.entry(outcome.to_owned()).or_default() += 1);
        }
        events::send(
            self.client,
            self.receivers,
            &DeploymentEvent {
                event: event.to_owned(),
                environment: record.environment.clone(),
                app: record.app.clone(),
                owner_team: self.owners.get(&record.app).cloned(),
                deployment: Some(record.clone()),
                drift: Vec::new(),
            },
        );
    }
}

impl Deployer<'_> {
    /// The repository at `revision` (read again only when it or the secret store changed)
    /// against what the targets run (connections kept).
    async fn prepare(&mut self, revision: &str) -> Result<crate::reconcile::Prepared, ReconcileError> {
        let stamp = self.secrets.stamp();
        let desired = match &self.desired {
            Some(read) if read.revision == revision && read.store == stamp => read.desired.clone(),
            _ => {
                let options = ReconcileOptions {
                    docker_host: self.options.docker_host.as_deref(),
                    secrets: Some(&self.secrets),
                    only_target: self.options.target.as_deref(),
                };
                let desired = Arc::new(read_desired(&self.checkout.path, &options)?);
                self.desired = Some(ReadAt { revision: revision.to_owned(), store: stamp, desired: desired.clone() });
                desired
            }
        };
        let docker_host = self.options.docker_host.as_deref();
        let targets = match &self.targets {
            Some(targets) if targets.serve(&desired, docker_host) => targets.clone(),
            _ => {
                let targets = Arc::new(Targets::connect(&desired, docker_host).await?);
                self.targets = Some(targets.clone());
                targets
            }
        };
        let prepared = observe(desired, targets).await;
        if prepared.is_err() {
            // The engine may have gone and come back: connect again next time.
            self.targets = None;
        }
        prepared
    }

    /// One pass: fetch, reconcile, roll back what failed, image automation, promotions. True
    /// when the deployer committed (a rollback, an image update, a promotion), so that it is
    /// reconciled at once.
    async fn pass(&mut self) -> bool {
        let started = Instant::now();
        let (revision, reachable) = match self.checkout.sync().await {
            Ok(revision) => (Some(revision), true),
            Err(error) => {
                tracing::warn!(repo = %self.options.repo, %error, "cannot fetch the environment repository; keeping the last known good state");
                (self.checkout.head().await, false)
            }
        };
        let Some(revision) = revision else { return false };
        let mut prepared = match self.prepare(&revision).await {
            Ok(prepared) => prepared,
            Err(error) => {
                report_failure(&revision, &error);
                count(&self.shared, |metrics| {
                    metrics.reconciles += 1;
                    metrics.reconcile_failures += 1;
                });
                // A repository that read well, on targets that cannot be reached: promotions
                // are still committed, and deployed once the targets are back.
                return self.promote(&revision).await;
            }
        };
        // A version that failed is not tried again until the repository changes it.
        prepared.changes.retain(|change| {
            let paused = self.paused.get(&change.app).is_some_and(|spec| prepared.desired.spec_digests.get(&change.app) == Some(spec));
            !(paused && matches!(change.action, Action::Create { .. } | Action::Update { .. }))
        });
        self.paused.retain(|app, spec| prepared.desired.spec_digests.get(app) == Some(spec));
        self.report_drift(&prepared);
        let mut rolled_back = false;
        let mut remaining = prepared.changes.clone();
        if self.options.dry_run {
            if !prepared.changes.is_empty() {
                tracing::info!(%revision, plan = %crate::plan::render(&prepared.changes), "dry run: nothing applied");
            }
        } else if !prepared.changes.is_empty() {
            tracing::info!(%revision, changes = prepared.changes.len(), "reconciling");
            let journal = RunJournal {
                history: &self.shared.history,
                shared: &self.shared,
                client: &self.client,
                receivers: &self.options.receivers,
                owners: prepared.desired.repository.apps.iter().map(|(name, app)| (name.clone(), app.owner.team.clone())).collect(),
            };
            let author = self.checkout.author_of(&revision).await;
            let outcomes = prepared.apply(&Revision { id: revision.clone(), author }, &journal).await;
            for outcome in &outcomes {
                if outcome.result.is_err()
                    && let Some(app) = prepared.desired.repository.apps.get(&outcome.change.app)
                {
                    rolled_back |= self.after_failure(app, outcome, &prepared.desired.spec_digests).await;
                }
            }
            remaining = outcomes.into_iter().filter(|outcome| outcome.result.is_err()).map(|outcome| outcome.change).collect();
            remaining.extend(prepared.changes.iter().filter(|change| matches!(change.action, Action::Warn { .. })).cloned());
            // What runs now, for the inventory.
            self.history = None;
            if let Ok(after) = observe(prepared.desired.clone(), prepared.targets.clone()).await {
                prepared.observed = after.observed;
            }
        }
        self.update_inventory(&prepared, &revision, &remaining, reachable).await;
        let automated = !self.options.dry_run && self.automate(&prepared.desired.repository).await;
        let promoted = self.promote(&revision).await;
        let elapsed = started.elapsed().as_secs_f64();
        count(&self.shared, |metrics| {
            metrics.reconciles += 1;
            metrics.last_reconcile_seconds = elapsed;
            metrics.reconcile_seconds_sum += elapsed;
        });
        rolled_back || automated || promoted
    }

    /// Promotions synced with the Gantry servers and carried out, when the repository at
    /// `revision` read without mistakes (with the secret store as it is) and this is no dry
    /// run. True when one was committed on the branch.
    async fn promote(&mut self, revision: &str) -> bool {
        if self.options.dry_run || self.promotions.is_empty() {
            return false;
        }
        let stamp = self.secrets.stamp();
        let Some(desired) =
            self.desired.as_ref().filter(|read| read.revision == revision && read.store == stamp).map(|read| read.desired.clone())
        else {
            return false;
        };
        self.promotions.pass(&self.client, &self.checkout, &desired.repository, revision, &desired.elsewhere).await
    }

    /// Image automation when it is due (Gantry said an image was published, or the registry
    /// poll interval passed): each newer image a policy takes becomes a commit by the
    /// deployer. True when one was committed, so that it is reconciled at once.
    async fn automate(&mut self, repository: &crate::EnvironmentRepo) -> bool {
        let announced = self.shared.automation_due.swap(false, std::sync::atomic::Ordering::SeqCst);
        let due = self.images_polled.is_none_or(|polled| polled.elapsed() >= self.options.image_poll);
        if !(announced || due) || repository.apps.values().all(|app| app.image_policy.is_none()) {
            return false;
        }
        self.images_polled = Some(Instant::now());
        let logins: BTreeMap<String, registry::Credentials> = self
            .secrets
            .registries()
            .unwrap_or_default()
            .into_iter()
            .map(|login| (login.host, registry::Credentials { username: login.username, password: login.password }))
            .collect();
        let updates =
            crate::automation::find_updates(repository, &self.registry, |host| logins.get(host).cloned(), std::time::SystemTime::now())
                .await;
        tracing::info!(updates = updates.len(), announced, "asked the registries for newer images");
        let mut committed = false;
        for update in updates {
            let path = self.checkout.path.join(&update.file);
            let result = match tokio::fs::read_to_string(&path).await {
                Ok(text) => update.edit(&text).map_err(|error| error.to_string()),
                Err(error) => Err(format!("{}: {error}", update.file)),
            };
            let text = match result {
                Ok(text) => text,
                Err(error) => {
                    tracing::warn!(app = %update.app, %error, "cannot write the image update");
                    continue;
                }
            };
            match self.checkout.commit_and_push(&[(update.file.clone(), text)], &crate::automation::commit_message(&update), None).await {
                Ok(commit) => {
                    tracing::info!(app = %update.app, from = %update.from, to = %update.to, %commit, "image update committed");
                    committed = true;
                }
                Err(error) => tracing::warn!(app = %update.app, %error, "cannot commit the image update"),
            }
        }
        committed
    }

    /// A failed rollout: rolled back by a commit when the policy says so and there is a
    /// revision to go back to; otherwise paused. True when a rollback was committed.
    async fn after_failure(&mut self, app: &App, outcome: &Outcome, spec_digests: &BTreeMap<String, String>) -> bool {
        let Err(TargetError::Unhealthy { why, .. }) = &outcome.result else {
            // Not the version's fault (the engine, a missing secret): tried again next poll.
            return false;
        };
        if let Some(spec) = spec_digests.get(&app.name) {
            self.paused.insert(app.name.clone(), spec.clone());
        }
        let Some(record) = &outcome.record else { return false };
        let previous = match (&app.update.failure_action, &record.from_revision) {
            (FailureAction::Rollback, Some(previous)) if matches!(outcome.change.action, Action::Update { .. }) => previous.clone(),
            _ => {
                tracing::warn!(app = %app.name, "the new version failed; paused until the repository changes it");
                return false;
            }
        };
        match self.commit_rollback(app, record, &previous, why).await {
            Ok(commit) => {
                tracing::warn!(app = %app.name, %commit, "rolled back by a commit to the environment repository");
                count(&self.shared, |metrics| metrics.rollbacks += 1);
                events::send(
                    &self.client,
                    &self.options.receivers,
                    &DeploymentEvent {
                        event: events::DEPLOYMENT_ROLLED_BACK.to_owned(),
                        environment: record.environment.clone(),
                        app: app.name.clone(),
                        owner_team: Some(app.owner.team.clone()),
                        deployment: Some(record.clone()),
                        drift: Vec::new(),
                    },
                );
                true
            }
            Err(error) => {
                tracing::error!(app = %app.name, %error, "cannot commit the rollback");
                false
            }
        }
    }

    /// The application's file as it was at `previous`, with a hold on the failed image added
    /// to the holds it has now, committed by the deployer.
    async fn commit_rollback(&self, app: &App, record: &DeploymentRecord, previous: &str, why: &str) -> Result<String, String> {
        let before = self
            .checkout
            .file_at(previous, &app.file)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("{} did not exist at {previous}", app.file))?;
        let hold = self.hold_for(app).await;
        let today = time_now_date();
        let mut holds: Vec<(String, String)> = app.holds.iter().map(|hold| (hold.clone(), String::new())).collect();
        if !holds.iter().any(|(existing, _)| existing == &hold) {
            holds.push((hold.clone(), format!("{} rolled back {today}: {why}", app.image)));
        }
        let text = crate::edit::set_holds(&before, &holds);
        let failed_image = app.image.to_string();
        let restored = record.from_image.clone().unwrap_or_else(|| "the previous version".to_owned());
        let message = format!(
            "Roll back {name} to {restored}\n\n{failed_image} did not become healthy: {why}\n\nThe deployer rolled it back and holds {hold}, so that image automation does not\nbring it back; remove the hold by a commit once a fixed version is out.\n\nGantry-Rolled-Back-Revision: {revision}\nGantry-Failed-Image: {failed_image}\n",
            name = app.name,
            revision = record.revision,
        );
        self.checkout.commit_and_push(&[(app.file.clone(), text)], &message, None).await.map_err(|error| error.to_string())
    }

    /// What to hold: the failed image's digest (pinned, or as the engine pulled it), else its
    /// tag.
    async fn hold_for(&self, app: &App) -> String {
        if let Some(digest) = &app.image.digest {
            return digest.clone();
        }
        let host = self.options.docker_host.clone().unwrap_or_else(docker::resolve_host);
        if let Ok(engine) = docker::Engine::connect_to(&host).await
            && let Ok(details) = engine.inspect_image(&app.image.pull_reference()).await
            && let Some(digest) = details
                .repo_digests
                .iter()
                .find_map(|pinned| pinned.split_once('@').filter(|(repository, _)| *repository == app.image.repository).map(|(_, d)| d))
        {
            return digest.to_owned();
        }
        app.image.tag.clone().unwrap_or_else(|| "latest".to_owned())
    }

    /// Drift reported (log, event) once per change of what drifted.
    fn report_drift(&mut self, prepared: &crate::reconcile::Prepared) {
        let mut drifted = BTreeMap::new();
        for change in &prepared.changes {
            if let Action::Heal { drift } | Action::Warn { drift } = &change.action {
                drifted.insert(change.app.clone(), drift.clone());
            }
        }
        for (app, drift) in &drifted {
            if self.reported_drift.get(app) != Some(drift) {
                tracing::warn!(%app, drift = %drift.join("; "), "drift detected");
                events::send(
                    &self.client,
                    &self.options.receivers,
                    &DeploymentEvent {
                        event: events::DRIFT_DETECTED.to_owned(),
                        environment: prepared.desired.repository.environment.name.clone(),
                        app: app.clone(),
                        owner_team: prepared.desired.repository.apps.get(app).map(|app| app.owner.team.clone()),
                        deployment: None,
                        drift: drift.clone(),
                    },
                );
            }
        }
        let count_drifted = drifted.len() as u64;
        count(&self.shared, |metrics| metrics.drifted_apps = count_drifted);
        self.reported_drift = drifted;
    }

    async fn update_inventory(
        &mut self,
        prepared: &crate::reconcile::Prepared,
        revision: &str,
        remaining: &[crate::plan::Change],
        reachable: bool,
    ) {
        let unknown: Vec<String> =
            prepared.observed.iter().map(|app| app.image.clone()).filter(|image| !self.image_labels.contains_key(image)).collect();
        if !unknown.is_empty() {
            let host = self.options.docker_host.clone().unwrap_or_else(docker::resolve_host);
            if let Ok(engine) = docker::Engine::connect_to(&host).await {
                for image in unknown {
                    let reference =
                        crate::read::parse_image(&image).map(|parsed| parsed.pull_reference()).unwrap_or_else(|_| image.clone());
                    let labels = engine.inspect_image(&reference).await.map(|details| details.labels).unwrap_or_default();
                    self.image_labels.insert(image, labels);
                }
            }
        }
        if self.history.is_none() {
            self.history = Some(self.shared.history.read().unwrap_or_default());
        }
        let history = self.history.as_deref().unwrap_or_default();
        let mut inventory =
            inventory::build(&prepared.desired.repository, revision, &prepared.observed, remaining, history, &self.image_labels);
        inventory.repository_reachable = reachable;
        inventory.pending_commits = self.checkout.pending().len();
        let apps = inventory.apps.len() as u64;
        count(&self.shared, |metrics| metrics.apps = apps);
        *self.shared.inventory.write().await = Some(inventory);
    }
}

fn report_failure(revision: &str, error: &ReconcileError) {
    match error {
        ReconcileError::Mistakes(diagnostics) => {
            let errors = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
            let first = diagnostics
                .iter()
                .find(|diagnostic| diagnostic.is_error())
                .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message));
            tracing::error!(%revision, errors, first = first.unwrap_or_default(), "the environment repository has mistakes; nothing is applied");
        }
        error => tracing::error!(%revision, %error, "reconcile failed"),
    }
}

fn count(shared: &Shared, update: impl FnOnce(&mut Metrics)) {
    if let Ok(mut metrics) = shared.metrics.lock() {
        update(&mut metrics);
    }
}

/// Today as `YYYY-MM-DD` (UTC), for a hold's note.
fn time_now_date() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// A number in [0, 1) that differs between processes and calls; jitter needs no better.
fn pseudo_random() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
    f64::from((nanos ^ std::process::id()) % 1000) / 1000.0
}
