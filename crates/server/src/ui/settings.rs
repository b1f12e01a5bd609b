//! A repository's settings page: general settings, the webhook, secrets, registry credentials,
//! cron schedules, notifiers and members. Every change calls the JSON API's own handler, so the
//! page checks exactly what the API checks (roles, names, trust only for server admins) and
//! answers a bad field with the API's message.
//!
//! Write-only values (secret values, registry passwords, notifier secrets, the webhook secret)
//! are never drawn back into a page; a regenerated webhook secret is shown once, in the answer
//! to the request that made it.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State as AxumState};
use proto::api::{CronWrite, MemberSet, NotifierCreate, RegistryWrite, RepoSettingsChange, RepoUpdate, Role, SecretWrite};
use proto::{ApprovalPolicy, LostPolicy, State, Trust};
use serde::Deserialize;

use crate::api;
use crate::crypto::new_token;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::page::{Layout, PageResult, Posted, Viewer, render, see_other};

/// The fields of a posted form, repeated names kept (checkbox groups).
pub type Fields = Vec<(String, String)>;

fn one<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim()).unwrap_or_default()
}

fn all<'a>(fields: &'a Fields, name: &str) -> Vec<&'a str> {
    fields.iter().filter(|(key, _)| key == name).map(|(_, value)| value.trim()).filter(|value| !value.is_empty()).collect()
}

/// A comma- or line-separated list.
fn list(text: &str) -> Vec<String> {
    text.split([',', '\n']).map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

fn choice<T: serde::de::DeserializeOwned>(field: &str, value: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| ApiError::invalid(field, format!("`{value}` is not a choice here")))
}

/// What a finished change says on the page it leads back to; a fixed set, so nothing from the
/// request is echoed.
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "settings" => "Settings saved.",
        "secret" => "Secret saved. Its value is not shown again.",
        "secret-deleted" => "Secret deleted.",
        "registry" => "Registry credentials saved. The password is not shown again.",
        "registry-deleted" => "Registry credentials deleted.",
        "cron" => "Schedule saved.",
        "cron-deleted" => "Schedule deleted.",
        "notifier" => "Notifier added.",
        "notifier-deleted" => "Notifier deleted.",
        "member" => "Member saved.",
        "member-removed" => "Member removed.",
        _ => return None,
    })
}

pub struct SecretRow {
    pub name: String,
    pub events: String,
    pub images: String,
}

pub struct RegistryRow {
    pub host: String,
    pub username: String,
}

pub struct CronRow {
    pub name: String,
    pub schedule: String,
    pub branch: String,
    pub next: String,
}

pub struct NotifierRow {
    pub id: i64,
    pub kind: String,
    pub url: String,
    pub states: String,
    pub events: String,
    pub signed: bool,
}

pub struct MemberRow {
    pub login: String,
    pub role: &'static str,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    base: String,
    full_name: String,
    notice: Option<&'static str>,
    /// A webhook secret made by this request, shown this once.
    revealed_secret: Option<String>,
    webhook_url: String,
    default_branch: String,
    config_path: String,
    timeout_minutes: u32,
    cancel_previous: bool,
    poll_interval_seconds: u32,
    lost_policy: &'static str,
    approval: &'static str,
    server_admin: bool,
    trust: Trust,
    secrets: Vec<SecretRow>,
    registries: Vec<RegistryRow>,
    crons: Vec<CronRow>,
    notifiers: Vec<NotifierRow>,
    members: Vec<MemberRow>,
    events: &'static [&'static str],
    default_events: &'static [&'static str],
    lost_policies: &'static [&'static str],
    approvals: &'static [&'static str],
    final_states: &'static [&'static str],
}

#[derive(Deserialize, Default)]
pub struct SettingsQuery {
    pub done: Option<String>,
}

/// `GET /repos/{owner}/{name}/settings`: repository admins.
pub async fn show(
    viewer: Viewer,
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<SettingsQuery>,
) -> PageResult {
    page(&viewer, &state, &owner, &name, notice(query.done.as_deref()), None).await
}

async fn page(
    viewer: &Viewer,
    state: &AppState,
    owner: &str,
    name: &str,
    notice: Option<&'static str>,
    revealed_secret: Option<String>,
) -> PageResult {
    let (repo, _) = viewer.repo(state, owner, name, Role::Admin).await?;
    let path = || Path((owner.to_owned(), name.to_owned()));
    let caller = viewer.0.clone();
    let Json(secrets) = api::secrets::list(caller.clone(), AxumState(state.clone()), path()).await?;
    let Json(registries) = api::registries::list(caller.clone(), AxumState(state.clone()), path()).await?;
    let Json(crons) = api::schedules::list_crons(caller.clone(), AxumState(state.clone()), path()).await?;
    let Json(notifiers) = api::schedules::list_notifiers(caller.clone(), AxumState(state.clone()), path()).await?;
    let Json(members) = api::repos::members(caller.clone(), AxumState(state.clone()), path()).await?;
    let base = format!("/repos/{}", repo.full_name);
    let settings = &repo.settings;
    let page = SettingsPage {
        layout: Layout::new(Some(viewer), format!("Settings · {}", repo.full_name))
            .crumb(repo.full_name.clone(), base.clone())
            .crumb("Settings", format!("{base}/settings")),
        full_name: repo.full_name.clone(),
        notice,
        revealed_secret,
        webhook_url: format!("{}/api/hooks/{}", state.config.public_url.trim_end_matches('/'), repo.full_name),
        default_branch: settings.default_branch.clone(),
        config_path: settings.config_path.clone(),
        timeout_minutes: settings.timeout_minutes,
        cancel_previous: settings.cancel_previous,
        poll_interval_seconds: settings.poll_interval_seconds.unwrap_or(0),
        lost_policy: settings.lost_policy.as_str(),
        approval: settings.approval.as_str(),
        server_admin: viewer.server_admin,
        trust: settings.trust,
        secrets: secrets
            .iter()
            .map(|secret| SecretRow { name: secret.name.clone(), events: secret.events.join(", "), images: secret.images.join(", ") })
            .collect(),
        registries: registries
            .iter()
            .map(|registry| RegistryRow { host: registry.host.clone(), username: registry.username.clone() })
            .collect(),
        crons: crons
            .iter()
            .map(|cron| CronRow {
                name: cron.name.clone(),
                schedule: cron.schedule.clone(),
                branch: cron.branch.clone(),
                next: crate::ui::page::clock_time(cron.next * 1000),
            })
            .collect(),
        notifiers: notifiers
            .iter()
            .map(|notifier| NotifierRow {
                id: notifier.id,
                kind: notifier.kind.clone(),
                url: notifier.url.clone(),
                states: if notifier.states.is_empty() {
                    "all".to_owned()
                } else {
                    notifier.states.iter().map(|state| state.as_str()).collect::<Vec<_>>().join(", ")
                },
                events: notifier.events.join(", "),
                signed: notifier.signed,
            })
            .collect(),
        members: members.iter().map(|member| MemberRow { login: member.login.clone(), role: member.role.as_str() }).collect(),
        events: pipeline::context::EVENTS,
        default_events: proto::api::DEFAULT_SECRET_EVENTS,
        lost_policies: &["requeue", "fail"],
        approvals: &["none", "forks", "pull_requests", "all_events"],
        final_states: &["success", "failure", "killed", "error"],
        base,
    };
    Ok(render(&page))
}

fn back(owner: &str, name: &str, done: &str, section: &str) -> axum::response::Response {
    see_other(&format!("/repos/{owner}/{name}/settings?done={done}#{section}"))
}

/// `POST …/settings`: the general settings.
pub async fn update(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    // The role first: someone who may not change settings learns nothing from their form's checks.
    posted.viewer.repo(&state, &owner, &name, Role::Admin).await?;
    let fields = &posted.form;
    let number = |field: &str| -> Result<u32, ApiError> {
        one(fields, field).parse().map_err(|_| ApiError::invalid(field, format!("`{}` is not a whole number", one(fields, field))))
    };
    let mut settings = RepoSettingsChange {
        default_branch: Some(one(fields, "default_branch").to_owned()),
        config_path: Some(one(fields, "config_path").to_owned()),
        timeout_minutes: Some(number("timeout_minutes")?),
        cancel_previous: Some(one(fields, "cancel_previous") == "on"),
        poll_interval_seconds: Some(number("poll_interval_seconds")?),
        lost_policy: Some(choice::<LostPolicy>("lost_policy", one(fields, "lost_policy"))?),
        approval: Some(choice::<ApprovalPolicy>("approval", one(fields, "approval"))?),
        ..RepoSettingsChange::default()
    };
    // Trust is only on a server admin's form; others leave it as it is (the API refuses a change).
    if fields.iter().any(|(key, _)| key == "trust_form") {
        settings.trust = Some(Trust {
            privileged: one(fields, "trust_privileged") == "on",
            volumes: one(fields, "trust_volumes") == "on",
            network: one(fields, "trust_network") == "on",
        });
    }
    let body = RepoUpdate { clone_url: None, settings };
    let _saved = api::repos::update(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone())), Json(body)).await?;
    Ok(back(&owner, &name, "settings", "general"))
}

/// `POST …/settings/webhook-secret`: a new webhook secret, shown once in the answer.
pub async fn regenerate_webhook_secret(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    let secret = new_token("");
    let body = RepoUpdate {
        clone_url: None,
        settings: RepoSettingsChange { webhook_secret: Some(secret.clone()), ..RepoSettingsChange::default() },
    };
    let _saved =
        api::repos::update(posted.viewer.0.clone(), AxumState(state.clone()), Path((owner.clone(), name.clone())), Json(body)).await?;
    page(
        &posted.viewer,
        &state,
        &owner,
        &name,
        Some("A new webhook secret is in place: set it at the forge now; it is not shown again."),
        Some(secret),
    )
    .await
}

/// `POST …/secrets`: adds or replaces a secret.
pub async fn put_secret(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    let fields = &posted.form;
    let secret = one(fields, "name").to_owned();
    let body = SecretWrite {
        value: fields.iter().find(|(key, _)| key == "value").map(|(_, value)| value.clone()).unwrap_or_default(),
        events: Some(all(fields, "events").into_iter().map(str::to_owned).collect()),
        images: Some(list(one(fields, "images"))),
    };
    let _saved =
        api::secrets::put(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), secret)), Json(body)).await?;
    Ok(back(&owner, &name, "secret", "secrets"))
}

/// `POST …/secrets/{secret}/delete`.
pub async fn delete_secret(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, secret)): Path<(String, String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    api::secrets::delete(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), secret))).await?;
    Ok(back(&owner, &name, "secret-deleted", "secrets"))
}

/// `POST …/registries`.
pub async fn put_registry(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    let fields = &posted.form;
    let host = one(fields, "host").to_owned();
    let body = RegistryWrite {
        username: one(fields, "username").to_owned(),
        password: fields.iter().find(|(key, _)| key == "password").map(|(_, value)| value.clone()).unwrap_or_default(),
    };
    let _saved =
        api::registries::put(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), host)), Json(body)).await?;
    Ok(back(&owner, &name, "registry", "registries"))
}

/// `POST …/registries/{host}/delete`.
pub async fn delete_registry(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, host)): Path<(String, String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    api::registries::delete(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), host))).await?;
    Ok(back(&owner, &name, "registry-deleted", "registries"))
}

/// `POST …/crons`.
pub async fn put_cron(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    let fields = &posted.form;
    let cron = one(fields, "name").to_owned();
    let branch = Some(one(fields, "branch").to_owned()).filter(|branch| !branch.is_empty());
    let body = CronWrite { schedule: one(fields, "schedule").to_owned(), branch };
    let _saved =
        api::schedules::put_cron(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), cron)), Json(body)).await?;
    Ok(back(&owner, &name, "cron", "crons"))
}

/// `POST …/crons/{cron}/delete`.
pub async fn delete_cron(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, cron)): Path<(String, String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    api::schedules::delete_cron(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), cron))).await?;
    Ok(back(&owner, &name, "cron-deleted", "crons"))
}

/// `POST …/notifiers`.
pub async fn create_notifier(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    posted.viewer.repo(&state, &owner, &name, Role::Admin).await?;
    let fields = &posted.form;
    let states = all(fields, "states").into_iter().map(|value| choice::<State>("states", value)).collect::<Result<Vec<_>, _>>()?;
    let secret = Some(one(fields, "secret").to_owned()).filter(|secret| !secret.is_empty());
    let body = NotifierCreate {
        kind: one(fields, "kind").to_owned(),
        url: one(fields, "url").to_owned(),
        states,
        events: all(fields, "events").into_iter().map(str::to_owned).collect(),
        secret,
    };
    let _saved =
        api::schedules::create_notifier(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone())), Json(body)).await?;
    Ok(back(&owner, &name, "notifier", "notifiers"))
}

/// `POST …/notifiers/{id}/delete`.
pub async fn delete_notifier(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, id)): Path<(String, String, i64)>,
    posted: Posted<Fields>,
) -> PageResult {
    api::schedules::delete_notifier(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), id))).await?;
    Ok(back(&owner, &name, "notifier-deleted", "notifiers"))
}

/// `POST …/members`: adds a member or changes their role.
pub async fn set_member(
    AxumState(state): AxumState<AppState>,
    Path((owner, name)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    posted.viewer.repo(&state, &owner, &name, Role::Admin).await?;
    let fields = &posted.form;
    let login = one(fields, "login").to_owned();
    let body = MemberSet { role: choice::<Role>("role", one(fields, "role"))? };
    let _saved =
        api::repos::set_member(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), login)), Json(body)).await?;
    Ok(back(&owner, &name, "member", "members"))
}

/// `POST …/members/{login}/delete`.
pub async fn remove_member(
    AxumState(state): AxumState<AppState>,
    Path((owner, name, login)): Path<(String, String, String)>,
    posted: Posted<Fields>,
) -> PageResult {
    api::repos::remove_member(posted.viewer.0.clone(), AxumState(state), Path((owner.clone(), name.clone(), login))).await?;
    Ok(back(&owner, &name, "member-removed", "members"))
}
