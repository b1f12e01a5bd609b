//! Who is calling, and what they may do. A caller is a user (API token or session cookie) or the
//! server admin token. Repository roles are read < write < admin; server admins hold every role.
//! A repository the caller cannot read answers 404, as if it did not exist.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use proto::api::Role;
use store::{AgentRecord, RepoRecord, TokenRecord, UserRecord};

use crate::crypto::{same_secret, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now_ms};

pub const SESSION_COOKIE: &str = "gantry_session";

#[derive(Clone, Debug)]
pub struct Caller {
    /// `None` for the admin token.
    pub user: Option<UserRecord>,
    pub server_admin: bool,
    /// The user's token (API token or session) this request came with; `None` for the admin
    /// token.
    pub token: Option<TokenRecord>,
    /// The CSRF token of the session cookie this request came with; `None` for a bearer token
    /// (which a browser never sends on its own, so it needs none).
    pub csrf: Option<String>,
}

impl Caller {
    pub fn login(&self) -> &str {
        self.user.as_ref().map(|user| user.login.as_str()).unwrap_or("admin-token")
    }

    pub fn require_server_admin(&self) -> ApiResult<()> {
        if self.server_admin { Ok(()) } else { Err(ApiError::forbidden("only server administrators may do this")) }
    }

    /// The caller's role on a repository, if any.
    pub async fn role_on(&self, state: &AppState, repo: &RepoRecord) -> ApiResult<Option<Role>> {
        if self.server_admin {
            return Ok(Some(Role::Admin));
        }
        let Some(user) = &self.user else { return Ok(None) };
        Ok(state.store.member_role(repo.id, user.id).await?.and_then(|role| Role::parse(&role)))
    }

    /// The repository `owner/name` if the caller holds at least `needed` on it.
    pub async fn repo(&self, state: &AppState, owner: &str, name: &str, needed: Role) -> ApiResult<(RepoRecord, Role)> {
        let full_name = format!("{owner}/{name}");
        let not_found = || ApiError::not_found(format!("repository {full_name} does not exist or you cannot see it"));
        let repo = state.store.repo_by_name(&full_name).await?.ok_or_else(not_found)?;
        let role = self.role_on(state, &repo).await?.ok_or_else(not_found)?;
        if role < needed {
            return Err(ApiError::forbidden(format!("this needs the {} role on {full_name}; you have {}", needed.as_str(), role.as_str())));
        }
        Ok((repo, role))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookies| cookies.split(';').map(str::trim).find_map(|pair| pair.strip_prefix(SESSION_COOKIE)?.strip_prefix('=')))
}

/// The header a cookie-authenticated request that changes something carries its session's
/// CSRF token in (forms carry it in the `_csrf` field instead).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session's CSRF token: derived from the session token, which only the browser holding the
/// cookie knows, so a page on another site cannot compute it; the token cannot be turned back
/// into the session. Different from `token_hash`, which the database keeps.
pub fn csrf_token(session_token: &str) -> String {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    digest.update(b"gantry csrf\0");
    digest.update(session_token.as_bytes());
    hex::encode(digest.finalize())
}

/// Who sent the request, from a bearer token or the session cookie, without judging the
/// request's method: `None` when it carries neither. Pages and the API both start here.
pub async fn authenticate(parts: &Parts, state: &AppState) -> ApiResult<Option<Caller>> {
    let (token, from_cookie) = match bearer(parts) {
        Some(token) => (token, false),
        None => match session_cookie(parts) {
            Some(token) => (token, true),
            None => return Ok(None),
        },
    };
    let csrf = from_cookie.then(|| csrf_token(token));
    if let Some(admin_token) = &state.config.admin_token
        && same_secret(token, admin_token)
    {
        return Ok(Some(Caller { user: None, server_admin: true, token: None, csrf }));
    }
    match state.store.user_by_token_hash(&token_hash(token), now_ms()).await? {
        Some((user, token)) => Ok(Some(Caller { server_admin: user.admin, user: Some(user), token: Some(token), csrf })),
        None => Err(ApiError::unauthorized("the token is not valid or has expired")),
    }
}

impl Caller {
    /// Refuses a request made with the session cookie that changes something and does not
    /// prove it comes from one of our pages (the CSRF token, `given`).
    pub fn check_csrf(&self, given: Option<&str>) -> ApiResult<()> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) if given.is_some_and(|given| same_secret(given, expected)) => Ok(()),
            Some(_) => Err(ApiError::forbidden(
                "this request uses the session cookie and lacks its CSRF token: reload the page, or send an API token instead",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(caller) = authenticate(parts, state).await? else {
            return Err(ApiError::unauthorized("sign in, or send an API token as `Authorization: Bearer <token>`"));
        };
        if !parts.method.is_safe() {
            caller.check_csrf(parts.headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok()))?;
        }
        Ok(caller)
    }
}

/// The shared agent secret: what registers an agent, and nothing else.
pub struct AgentSecret;

impl FromRequestParts<AppState> for AgentSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.config.agent_secret else {
            return Err(ApiError::unauthorized("this server accepts no agents: start it with GANTRY_AGENT_SECRET"));
        };
        match bearer(parts) {
            Some(given) if same_secret(given, expected) => Ok(AgentSecret),
            _ => Err(ApiError::unauthorized("agents register with `Authorization: Bearer <GANTRY_AGENT_SECRET>`")),
        }
    }
}

/// A registered agent, by the token its registration returned. Every request of the protocol
/// after registration is bound to it.
pub struct AgentCaller(pub AgentRecord);

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.config.agent_secret.is_none() {
            return Err(ApiError::unauthorized("this server accepts no agents: start it with GANTRY_AGENT_SECRET"));
        }
        let Some(token) = bearer(parts) else {
            return Err(ApiError::unauthorized("agents send `Authorization: Bearer <the token their registration returned>`"));
        };
        match state.store.agent_by_token_hash(&token_hash(token)).await? {
            Some(agent) => Ok(AgentCaller(agent)),
            None => Err(ApiError::unauthorized(
                "this agent's token is not valid: an administrator removed the agent, or another registered under its name; start the agent again to register",
            )),
        }
    }
}

/// Where a request comes from: the peer's address, or with `--trust-forwarded-for` (behind a
/// reverse proxy) the last address the proxy added to `X-Forwarded-For`. `None` when neither is
/// known (in-process tests).
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip());
        if !state.config.trust_forwarded_for {
            return Ok(ClientAddress(peer));
        }
        // The proxy appends the address it saw: the last entry of the last header.
        let last_header = parts.headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).next_back();
        let forwarded = last_header.and_then(|value| value.rsplit(',').next()).and_then(|address| address.trim().parse().ok());
        Ok(ClientAddress(forwarded.or(peer)))
    }
}
