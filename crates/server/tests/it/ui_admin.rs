//! The admin pages (agents, users, queue) and the account page, through a real listening server
//! and a browser's cookie session: who may see them, that their forms do what the API does and
//! need the page's CSRF token, and that a new API token is shown once and never again.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Harness, PIPELINE, git_repo};

const PASSWORD: &str = "password-of-test";

/// A browser signed in as one user: it sends the session cookie, and follows no redirect, so a
/// test sees where a form sends it.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: String,
}

/// An answer as a test reads it.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    fn is_page(&self) -> bool {
        self.headers.get("content-type").and_then(|value| value.to_str().ok()).is_some_and(|value| value.starts_with("text/html"))
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl Browser {
    /// Signs `login` in through the API, as the sign-in page does, keeping the session cookie.
    async fn sign_in(base: &str, login: &str) -> Browser {
        let http = client();
        let response =
            http.post(format!("{base}/api/v1/login")).json(&json!({ "login": login, "password": PASSWORD })).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        assert!(cookie.starts_with("gantry_session="), "{set_cookie}");
        Browser { base: base.to_owned(), http, cookie }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        Answer { status, headers, body: response.text().await.unwrap() }
    }

    async fn get(&self, path: &str) -> Answer {
        Self::answer(self.http.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await.unwrap()).await
    }

    /// A page that must show: its HTML.
    async fn page(&self, path: &str) -> String {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        answer.body
    }

    /// The CSRF token a page gives its forms (and scripts).
    async fn csrf(&self, path: &str) -> String {
        let page = self.page(path).await;
        between(&page, r#"<meta name="csrf-token" content=""#, "\"").to_owned()
    }

    /// Posts a form with exactly these fields (the CSRF token only when the test adds it).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        Self::answer(request.send().await.unwrap()).await
    }
}

/// The text of `text` after `start` and up to `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start} in {text}")) + start.len();
    let to = text[from..].find(end).unwrap() + from;
    &text[from..to]
}

fn with_csrf<'a>(fields: &[(&'a str, &'a str)], csrf: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut fields = fields.to_vec();
    fields.push(("_csrf", csrf));
    fields
}

async fn admin_user(harness: &Harness, login: &str) {
    let body = json!({ "login": login, "password": PASSWORD, "admin": true });
    let (status, answer) = harness.admin(Method::POST, "/api/v1/users", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

async fn agent_names(harness: &Harness) -> Vec<String> {
    let (status, agents) = harness.admin(Method::GET, "/api/v1/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    agents.as_array().unwrap().iter().map(|agent| agent["name"].as_str().unwrap().to_owned()).collect()
}

async fn logins(harness: &Harness) -> Vec<String> {
    harness.state.store.list_users().await.unwrap().into_iter().map(|user| user.login).collect()
}

// ---------------------------------------------------------------------------------------------
// Admin pages

async fn non_admins(harness: Harness) {
    let base = harness.serve().await;
    harness.user("alice").await;
    harness.register_agent("runner-1", json!({})).await;
    let alice = Browser::sign_in(&base, "alice").await;

    for path in ["/admin/agents", "/admin/users", "/admin/queue"] {
        let answer = alice.get(path).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert!(answer.is_page(), "{path} answers with the error page");
        assert!(answer.body.contains("only server administrators may do this"), "{path}: {}", answer.body);
        assert!(!answer.body.contains("runner-1"), "{path} shows nothing of the server");
    }
    let dashboard = alice.page("/").await;
    assert!(!dashboard.contains(r#"href="/admin/agents""#), "no Admin link for a non-admin");

    // With the page's own CSRF token, so it is the role that refuses, not the token.
    let csrf = alice.csrf("/").await;
    let answer = alice.post("/admin/agents/runner-1/revoke", &[("_csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(agent_names(&harness).await, ["runner-1"], "the agent is still there");
    let form = [("_csrf", csrf.as_str()), ("login", "mallory"), ("password", "long-enough-password"), ("admin", "on")];
    let answer = alice.post("/admin/users", &form).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(!logins(&harness).await.contains(&"mallory".to_owned()));

    // Nobody signed in is sent to sign in, and back afterwards.
    let answer = Browser::answer(client().get(format!("{base}/admin/agents")).send().await.unwrap()).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/login?next=%2Fadmin%2Fagents"));
}
both!(admin_pages_and_the_revoke_post_answer_403_to_non_admins, non_admins);

async fn admin_sees(harness: Harness) {
    let base = harness.serve().await;
    admin_user(&harness, "root").await;
    harness.user("alice").await;
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let agent = harness.register_agent("runner-1", json!({ "platform": "linux/amd64" })).await;
    let (status, first) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let workflow = first["workflows"][0]["name"].as_str().unwrap().to_owned();
    let (status, job) = harness.agent("/lease", json!({ "agent_id": agent })).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let (status, _) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let root = Browser::sign_in(&base, "root").await;

    let dashboard = root.page("/").await;
    assert!(dashboard.contains(r#"<a href="/admin/agents">Admin</a>"#), "the Admin link for an admin");

    let agents = root.page("/admin/agents").await;
    assert!(agents.contains("<td>runner-1</td>") && agents.contains("platform=linux/amd64"), "{agents}");
    assert!(agents.contains("<td>2</td>") && agents.contains("<td>1</td>"), "capacity 2, one running: {agents}");
    assert!(agents.contains(r#"action="/admin/agents/runner-1/revoke""#), "{agents}");
    assert!(agents.contains(r#"<a href="/admin/agents" aria-current="page">Agents</a>"#), "the sub-nav marks the page: {agents}");
    assert!(agents.contains(r#"<a href="/admin/users">Users</a>"#) && agents.contains(r#"<a href="/admin/queue">Queue</a>"#));

    let users = root.page("/admin/users").await;
    let row = |login: &str, admin: &str| format!("<td>{login}</td>\n<td>{admin}</td>");
    assert!(users.contains(&row("root", "yes")) && users.contains(&row("alice", "no")), "{users}");
    assert!(!users.contains("$argon2"), "no password hash on the page");

    let queue = root.page("/admin/queue").await;
    let rows: Vec<&str> = queue.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "one workflow per build, oldest first: {queue}");
    assert!(rows[0].contains("<td>acme/app</td>") && rows[0].contains(r#"<a href="/repos/acme/app/builds/1">#1</a>"#), "{queue}");
    assert!(rows[0].contains(&format!("<td>{workflow}</td>")) && rows[0].contains(">running<") && rows[0].contains("<td>runner-1</td>"));
    assert!(rows[1].contains(r#"<a href="/repos/acme/app/builds/2">#2</a>"#) && rows[1].contains(">pending<"), "{queue}");
    assert!(rows[1].contains("none yet"), "a pending workflow has no agent: {queue}");
}
both!(an_admin_sees_the_agents_the_users_and_the_queue, admin_sees);

async fn revoke_agent(harness: Harness) {
    let base = harness.serve().await;
    admin_user(&harness, "root").await;
    let agent = harness.register_agent("runner-1", json!({})).await;
    let root = Browser::sign_in(&base, "root").await;
    let csrf = root.csrf("/admin/agents").await;

    let answer = root.post("/admin/agents/runner-1/revoke", &[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "without the CSRF token: {}", answer.body);
    assert_eq!(agent_names(&harness).await, ["runner-1"]);

    let answer = root.post("/admin/agents/runner-1/revoke", &[("_csrf", &csrf)]).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/admin/agents"), "{}", answer.body);
    assert!(agent_names(&harness).await.is_empty(), "gone, as after DELETE /api/v1/agents/runner-1");
    let (status, _) = harness.agent("/heartbeat", json!({ "agent_id": agent })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its token stops working");
    assert!(!root.page("/admin/agents").await.contains("runner-1"));

    let answer = root.post("/admin/agents/runner-1/revoke", &[("_csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert!(answer.is_page() && answer.body.contains("there is no agent runner-1"));

    // A name with a space and a slash still makes one path segment of the button's form.
    harness.register_agent("build box/2", json!({})).await;
    let page = root.page("/admin/agents").await;
    let action = between(&page, r#"action="/admin/agents/"#, "\"");
    assert_eq!(action, "build%20box%2F2/revoke");
    let answer = root.post(&format!("/admin/agents/{action}"), &[("_csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert!(agent_names(&harness).await.is_empty());
}
both!(revoking_an_agent_on_its_page_removes_it_as_the_api_does, revoke_agent);

async fn create_user(harness: Harness) {
    let base = harness.serve().await;
    admin_user(&harness, "root").await;
    let root = Browser::sign_in(&base, "root").await;
    let csrf = root.csrf("/admin/users").await;
    let carol = [("login", "carol"), ("password", PASSWORD), ("admin", "on")];

    let answer = root.post("/admin/users", &carol).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "without the CSRF token: {}", answer.body);
    let answer = root.post("/admin/users", &with_csrf(&carol, "not-the-token")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "with another token: {}", answer.body);
    assert!(!logins(&harness).await.contains(&"carol".to_owned()), "nothing was created");

    let answer = root.post("/admin/users", &with_csrf(&carol, &csrf)).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/admin/users"), "{}", answer.body);
    let carol = harness.state.store.user_by_login("carol").await.unwrap().expect("carol exists");
    assert!(carol.admin, "the box was checked");
    Browser::sign_in(&base, "carol").await;
    assert!(root.page("/admin/users").await.contains("<td>carol</td>"));

    // What the API refuses shows the form again with its reason, and creates nothing.
    let answer = root.post("/admin/users", &[("_csrf", &csrf), ("login", "dave"), ("password", "short")]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("a password has at least 8 characters") && answer.body.contains(r#"value="dave""#), "{}", answer.body);
    let answer = root.post("/admin/users", &[("_csrf", &csrf), ("login", "carol"), ("password", "another-password")]).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    let users = logins(&harness).await;
    assert!(!users.contains(&"dave".to_owned()) && users.iter().filter(|login| *login == "carol").count() == 1, "{users:?}");
    let unchecked = root.post("/admin/users", &[("_csrf", &csrf), ("login", "erin"), ("password", "erins-password")]).await;
    assert_eq!(unchecked.status, StatusCode::SEE_OTHER);
    assert!(!harness.state.store.user_by_login("erin").await.unwrap().unwrap().admin, "an unchecked box makes a plain user");
}
both!(creating_a_user_on_the_users_page_needs_the_csrf_token_and_shows_what_is_wrong, create_user);

// ---------------------------------------------------------------------------------------------
// My account

/// The API's view of `bearer`'s tokens.
async fn tokens(harness: &Harness, bearer: &str) -> Value {
    let (status, tokens) = harness.call(Method::GET, "/api/v1/user/tokens", Some(bearer), None).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn token_shown_once(harness: Harness) {
    let base = harness.serve().await;
    let bearer = harness.user("alice").await;
    let alice = Browser::sign_in(&base, "alice").await;
    let account = alice.page("/account").await;
    assert!(account.contains("<dd>alice</dd>") && account.contains("(this browser)"), "{account}");
    let csrf = between(&account, r#"<meta name="csrf-token" content=""#, "\"").to_owned();

    let answer = alice.post("/account/tokens", &[("_csrf", &csrf), ("name", "deploy"), ("expires_in_days", "30")]).await;
    assert_eq!(answer.status, StatusCode::OK, "the answer is the page itself, not a redirect: {}", answer.body);
    assert!(answer.body.contains("it will not be shown again"), "{}", answer.body);
    let token = between(&answer.body, r#"id="new-token" class="token" value=""#, "\"").to_owned();
    assert!(token.starts_with("gta_") && token.len() > 20, "{token}");
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert!(answer.headers.get("set-cookie").is_none() && answer.headers.get("location").is_none());
    let (status, me) = harness.call(Method::GET, "/api/v1/user", Some(&token), None).await;
    assert_eq!((status, me["login"].as_str()), (StatusCode::OK, Some("alice")), "the token works");

    let later = alice.page("/account").await;
    assert!(later.contains("<td>deploy</td>"), "listed by name: {later}");
    assert!(!later.contains(&token), "never shown again");
    assert!(!alice.page("/").await.contains(&token));
    let listed = tokens(&harness, &bearer).await;
    let id = listed.as_array().unwrap().iter().find(|token| token["name"] == "deploy").unwrap()["id"].as_i64().unwrap();
    assert!(later.contains(&format!(r#"action="/account/tokens/{id}/revoke""#)), "{later}");

    let answer = alice.post(&format!("/account/tokens/{id}/revoke"), &[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "without the CSRF token: {}", answer.body);
    assert_eq!(harness.call(Method::GET, "/api/v1/user", Some(&token), None).await.0, StatusCode::OK, "still works");
    let answer = alice.post(&format!("/account/tokens/{id}/revoke"), &[("_csrf", &csrf)]).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/account"), "{}", answer.body);
    assert_eq!(harness.call(Method::GET, "/api/v1/user", Some(&token), None).await.0, StatusCode::UNAUTHORIZED, "revoked at once");
    assert!(!alice.page("/account").await.contains("<td>deploy</td>"));
}
both!(a_token_made_on_the_account_page_is_shown_once_and_revoked_there, token_shown_once);

async fn token_form(harness: Harness) {
    let base = harness.serve().await;
    harness.user("alice").await;
    let bob = harness.user("bob").await;
    let alice = Browser::sign_in(&base, "alice").await;
    let csrf = alice.csrf("/account").await;

    let answer = alice.post("/account/tokens", &[("name", "deploy")]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "without the CSRF token: {}", answer.body);
    let answer = alice.post("/account/tokens", &[("_csrf", &csrf), ("name", "deploy"), ("expires_in_days", "soon")]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("whole number of days") && answer.body.contains(r#"value="deploy""#), "{}", answer.body);
    let answer = alice.post("/account/tokens", &[("_csrf", &csrf), ("name", "deploy"), ("expires_in_days", "0")]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("a token expires in 1 to"), "the API's own check: {}", answer.body);
    assert!(!answer.body.contains(r#"id="new-token""#));
    let alices = harness.state.store.user_by_login("alice").await.unwrap().unwrap();
    let stored = harness.state.store.list_tokens(alices.id).await.unwrap();
    assert!(stored.iter().all(|token| token.name != "deploy"), "nothing was made");

    // Without an expiry the token never expires; bob's tokens cannot be revoked from alice's page.
    let answer = alice.post("/account/tokens", &[("_csrf", &csrf), ("name", "forever"), ("expires_in_days", "")]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(alice.page("/account").await.contains("never"));
    let bobs = tokens(&harness, &bob).await;
    let bobs_id = bobs.as_array().unwrap()[0]["id"].as_i64().unwrap();
    let answer = alice.post(&format!("/account/tokens/{bobs_id}/revoke"), &[("_csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert_eq!(tokens(&harness, &bob).await, bobs, "bob keeps his tokens");
}
both!(the_token_form_refuses_what_the_api_refuses_and_touches_only_ones_own_tokens, token_form);
