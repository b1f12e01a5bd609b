//! The web UI's pages as HTTP: who may see and change what, CSRF on every form, the security
//! headers, errors in the audience's form, and write-only values that never come back. (What a
//! person does in a browser is tested in headless Chromium: crates/cli/tests/it/browser.rs.)

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt as _;

use crate::both;
use crate::harness::Harness;

/// A browser's view of the server: a session cookie and the CSRF token its pages carry.
struct Session {
    cookie: String,
    csrf: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|value| value.to_str().ok()).unwrap_or_default()
    }
}

async fn send(harness: &Harness, request: Request<Body>) -> Answer {
    let response = harness.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

async fn get(harness: &Harness, path: &str, cookie: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(harness, request.body(Body::empty()).unwrap()).await
}

async fn post_form(harness: &Harness, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Answer {
    let body = fields.iter().map(|(key, value)| format!("{}={}", urlencode(key), urlencode(value))).collect::<Vec<_>>().join("&");
    let mut request = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(harness, request.body(Body::from(body)).unwrap()).await
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The value of `name=` in the answer's cookies.
fn cookie_of(answer: &Answer, name: &str) -> Option<String> {
    answer.headers.get_all("set-cookie").iter().filter_map(|value| value.to_str().ok()).find_map(|value| {
        let pair = value.split(';').next()?;
        pair.strip_prefix(&format!("{name}=")).map(|value| format!("{name}={value}"))
    })
}

/// The `content` of `<meta name="csrf-token">` or the `value` of the hidden `name` input.
fn attribute_after(html: &str, marker: &str, attribute: &str) -> String {
    let start = html.find(marker).unwrap_or_else(|| panic!("no {marker} in {html}"));
    let rest = &html[start..];
    let value = rest.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    rest[value..value + rest[value..].find('"').unwrap()].to_owned()
}

/// Signs in through the sign-in form, as a browser does.
async fn sign_in(harness: &Harness, login: &str) -> Session {
    let form = get(harness, "/login", None).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let form_cookie = cookie_of(&form, "gantry_form").expect("the sign-in form sets its token cookie");
    let token = attribute_after(&form.body, "name=\"form_token\"", "value");
    let answer = post_form(
        harness,
        "/login",
        Some(&form_cookie),
        &[("form_token", &token), ("next", "/"), ("login", login), ("password", "password-of-test")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let cookie = cookie_of(&answer, "gantry_session").expect("a session cookie");
    let page = get(harness, "/", Some(&cookie)).await;
    let csrf = attribute_after(&page.body, "name=\"csrf-token\"", "content");
    assert!(!csrf.is_empty());
    Session { cookie, csrf }
}

/// A repository with members `writer` (write), `reader` (read) and `keeper` (admin).
async fn team(harness: &Harness) {
    harness.repo("acme/app", "file:///nowhere/app.git", json!({})).await;
    for (login, role) in [("writer", "write"), ("reader", "read"), ("keeper", "admin")] {
        harness.user(login).await;
        let (status, answer) =
            harness.admin(Method::PUT, &format!("/api/v1/repos/acme/app/members/{login}"), Some(json!({ "role": role }))).await;
        assert!(status.is_success(), "{answer}");
    }
}

async fn pages_lead_to_sign_in_and_back_but_never_off_site(harness: Harness) {
    team(&harness).await;
    let answer = get(&harness, "/repos/acme/app?branch=main", None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/login?next=%2Frepos%2Facme%2Fapp%3Fbranch%3Dmain");

    let form = get(&harness, "/login?next=%2Frepos%2Facme%2Fapp", None).await;
    assert!(form.body.contains(r#"name="next" value="/repos/acme/app""#), "{}", form.body);
    let form_cookie = cookie_of(&form, "gantry_form").unwrap();
    let token = attribute_after(&form.body, "name=\"form_token\"", "value");
    for (next, lands) in
        [("/repos/acme/app", "/repos/acme/app"), ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\evil.example", "/")]
    {
        let answer = post_form(
            &harness,
            "/login",
            Some(&form_cookie),
            &[("form_token", &token), ("next", next), ("login", "reader"), ("password", "password-of-test")],
        )
        .await;
        assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, lands), "next={next}");
    }
    // The sign-in form's own token is checked too (a cross-site form cannot sign someone in).
    let answer =
        post_form(&harness, "/login", None, &[("form_token", &token), ("login", "reader"), ("password", "password-of-test")]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(cookie_of(&answer, "gantry_session").is_none());
    // A wrong password shows the form again with a message, and no session.
    let answer =
        post_form(&harness, "/login", Some(&form_cookie), &[("form_token", &token), ("login", "reader"), ("password", "wrong password")])
            .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body.contains("role=\"alert\""));
    assert!(cookie_of(&answer, "gantry_session").is_none());
}
both!(pages_lead_to_sign_in_and_back_but_never_off_site, pages_lead_to_sign_in_and_back_but_never_off_site);

async fn security_headers_and_errors_in_the_audiences_form(harness: Harness) {
    team(&harness).await;
    let reader = sign_in(&harness, "reader").await;
    for path in ["/login", "/", "/repos/acme/app", "/api/v1/user", "/no/such/page"] {
        let answer = get(&harness, path, Some(&reader.cookie)).await;
        let csp = answer.headers.get("content-security-policy").and_then(|value| value.to_str().ok()).unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(answer.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(answer.headers["x-content-type-options"], "nosniff", "{path}");
    }
    let page = get(&harness, "/no/such/page", Some(&reader.cookie)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let api = get(&harness, "/api/v1/no/such/endpoint", Some(&reader.cookie)).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.headers["content-type"].to_str().unwrap().starts_with("application/json"), "{}", api.body);
    let bad_number = get(&harness, "/repos/acme/app/builds/not-a-number", Some(&reader.cookie)).await;
    assert_eq!(bad_number.status, StatusCode::BAD_REQUEST);
    assert!(bad_number.body.contains("<!doctype html>"), "{}", bad_number.body);
    let missing = get(&harness, "/repos/acme/app/builds/41", Some(&reader.cookie)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("<!doctype html>"));
    let hidden = get(&harness, "/repos/acme/secret-project", Some(&reader.cookie)).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "a repository one cannot see looks like none");
}
both!(security_headers_and_errors_in_the_audiences_form, security_headers_and_errors_in_the_audiences_form);

async fn every_form_post_needs_the_sessions_csrf_token(harness: Harness) {
    team(&harness).await;
    let writer = sign_in(&harness, "writer").await;
    let other = sign_in(&harness, "keeper").await;
    for token in [None, Some(""), Some("forged"), Some(other.csrf.as_str())] {
        let mut fields = vec![("branch", "main")];
        if let Some(token) = token {
            fields.push(("_csrf", token));
        }
        let answer = post_form(&harness, "/repos/acme/app/run", Some(&writer.cookie), &fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "token {token:?}: {}", answer.body);
        let answer = post_form(&harness, "/logout", Some(&writer.cookie), &fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "sign-out with token {token:?}");
    }
    let (_, builds) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds", None).await;
    assert_eq!(builds, json!([]), "no build was started by a forged form");

    // The JSON API takes the session cookie only with the token in a header.
    let request = |token: Option<&str>| {
        let mut request = Request::put("/api/v1/repos/acme/app/members/reader")
            .header("cookie", &writer.cookie)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        request.body(Body::from(json!({ "role": "write" }).to_string())).unwrap()
    };
    assert_eq!(send(&harness, request(None)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(send(&harness, request(Some("forged"))).await.status, StatusCode::FORBIDDEN);

    // With the token the same post works, and signing out ends the session.
    let answer = post_form(&harness, "/logout", Some(&writer.cookie), &[("_csrf", &writer.csrf)]).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(get(&harness, "/", Some(&writer.cookie)).await.status, StatusCode::SEE_OTHER, "the old cookie no longer signs in");
}
both!(every_form_post_needs_the_sessions_csrf_token, every_form_post_needs_the_sessions_csrf_token);

async fn a_reader_sees_no_write_controls_and_cannot_change_anything(harness: Harness) {
    team(&harness).await;
    let reader = sign_in(&harness, "reader").await;
    let page = get(&harness, "/repos/acme/app", Some(&reader.cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("/repos/acme/app/run") && !page.body.contains("/repos/acme/app/settings"), "{}", page.body);
    let settings = get(&harness, "/repos/acme/app/settings", Some(&reader.cookie)).await;
    assert_eq!(settings.status, StatusCode::FORBIDDEN);
    for (path, fields) in [
        ("/repos/acme/app/run", vec![("branch", "main")]),
        ("/repos/acme/app/secrets", vec![("name", "token"), ("value", "x")]),
        ("/repos/acme/app/members", vec![("login", "reader"), ("role", "admin")]),
        ("/repos/acme/app/settings", vec![("default_branch", "main")]),
    ] {
        let mut fields = fields;
        fields.push(("_csrf", &reader.csrf));
        let answer = post_form(&harness, path, Some(&reader.cookie), &fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}: {}", answer.body);
    }
    let (_, members) = harness.admin(Method::GET, "/api/v1/repos/acme/app/members", None).await;
    assert!(members.to_string().contains(r#"{"login":"reader","role":"read"}"#), "{members}");

    // A writer runs builds but does not open settings either.
    let writer = sign_in(&harness, "writer").await;
    let page = get(&harness, "/repos/acme/app", Some(&writer.cookie)).await;
    assert!(page.body.contains(r#"action="/repos/acme/app/run""#));
    assert!(!page.body.contains(r#"href="/repos/acme/app/settings""#));
}
both!(a_reader_sees_no_write_controls_and_cannot_change_anything, a_reader_sees_no_write_controls_and_cannot_change_anything);

async fn write_only_values_set_on_the_settings_page_never_come_back(harness: Harness) {
    team(&harness).await;
    let keeper = sign_in(&harness, "keeper").await;
    const VALUE: &str = "s3cr3t-value-written-on-the-page";
    const PASSWORD: &str = "registry-password-written-on-the-page";
    const SIGNING: &str = "notifier-signing-secret-on-the-page";
    let csrf = keeper.csrf.as_str();
    let posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/repos/acme/app/secrets",
            vec![("name", "deploy_token"), ("value", VALUE), ("events", "push"), ("events", "tag"), ("images", "")],
        ),
        ("/repos/acme/app/registries", vec![("host", "registry.example.com"), ("username", "robot"), ("password", PASSWORD)]),
        (
            "/repos/acme/app/notifiers",
            vec![("kind", "webhook"), ("url", "https://hooks.example.com/x"), ("events", "build.finished"), ("secret", SIGNING)],
        ),
        ("/repos/acme/app/crons", vec![("name", "nightly"), ("schedule", "0 3 * * *"), ("branch", "")]),
    ];
    let mut seen = String::new();
    for (path, mut fields) in posts {
        fields.push(("_csrf", csrf));
        let answer = post_form(&harness, path, Some(&keeper.cookie), &fields).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}: {}", answer.body);
        assert!(answer.location().starts_with("/repos/acme/app/settings?done="), "{}", answer.location());
        seen.push_str(&answer.body);
    }
    let page = get(&harness, "/repos/acme/app/settings", Some(&keeper.cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("deploy_token") && page.body.contains("push, tag"), "the secret is listed by name and events");
    assert!(page.body.contains("registry.example.com") && page.body.contains("robot") && page.body.contains("nightly"));
    seen.push_str(&page.body);
    for path in
        ["/", "/repos/acme/app", "/api/v1/repos/acme/app/secrets", "/api/v1/repos/acme/app/registries", "/api/v1/repos/acme/app/notifiers"]
    {
        let answer = get(&harness, path, Some(&keeper.cookie)).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.status);
        seen.push_str(&answer.body);
    }
    for value in [VALUE, PASSWORD, SIGNING] {
        assert!(!seen.contains(value), "{value} came back in a page or answer");
    }

    // Deleting from the page.
    let answer = post_form(&harness, "/repos/acme/app/secrets/deploy_token/delete", Some(&keeper.cookie), &[("_csrf", csrf)]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let (_, secrets) = harness.admin(Method::GET, "/api/v1/repos/acme/app/secrets", None).await;
    assert_eq!(secrets, json!([]));

    // A bad field is answered with the API's message, naming it.
    let answer = post_form(
        &harness,
        "/repos/acme/app/crons",
        Some(&keeper.cookie),
        &[("name", "bad"), ("schedule", "every tuesday"), ("_csrf", csrf)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("<!doctype html>") && answer.body.contains("every tuesday"), "{}", answer.body);

    // A new webhook secret is shown once, in the answer that made it.
    let answer = post_form(&harness, "/repos/acme/app/settings/webhook-secret", Some(&keeper.cookie), &[("_csrf", csrf)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let secret = attribute_between(&answer.body, r#"<code class="token" id="revealed-secret">"#, "</code>");
    assert!(secret.len() >= 32, "{secret}");
    let repo = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    assert_eq!(repo.settings.webhook_secret, secret);
    let again = get(&harness, "/repos/acme/app/settings", Some(&keeper.cookie)).await;
    assert!(!again.body.contains(&secret), "shown once only");
}
both!(write_only_values_set_on_the_settings_page_never_come_back, write_only_values_set_on_the_settings_page_never_come_back);

fn attribute_between(html: &str, start: &str, end: &str) -> String {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start} in {html}")) + start.len();
    html[from..from + html[from..].find(end).unwrap()].to_owned()
}

async fn trust_is_changed_on_the_page_by_server_admins_only(harness: Harness) {
    team(&harness).await;
    let keeper = sign_in(&harness, "keeper").await;
    let general = |csrf: &str, trust: bool| {
        let mut fields = vec![
            ("default_branch", "main".to_owned()),
            ("config_path", String::new()),
            ("timeout_minutes", "30".to_owned()),
            ("poll_interval_seconds", "0".to_owned()),
            ("cancel_previous", "on".to_owned()),
            ("lost_policy", "fail".to_owned()),
            ("approval", "all_events".to_owned()),
            ("_csrf", csrf.to_owned()),
        ];
        if trust {
            fields.extend([("trust_form", "1".to_owned()), ("trust_volumes", "on".to_owned())]);
        }
        fields
    };
    let page = get(&harness, "/repos/acme/app/settings", Some(&keeper.cookie)).await;
    assert!(!page.body.contains("trust_form"), "a repository admin is not offered trust");
    let fields = general(&keeper.csrf, true);
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let answer = post_form(&harness, "/repos/acme/app/settings", Some(&keeper.cookie), &borrowed).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let fields = general(&keeper.csrf, false);
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let answer = post_form(&harness, "/repos/acme/app/settings", Some(&keeper.cookie), &borrowed).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let repo = harness.state.store.repo_by_name("acme/app").await.unwrap().unwrap();
    assert!(repo.settings.cancel_previous && repo.settings.lost_policy == proto::LostPolicy::Fail);
    assert_eq!(repo.settings.approval, proto::ApprovalPolicy::AllEvents);
    assert!(!repo.settings.trust.is_any());
}
both!(trust_is_changed_on_the_page_by_server_admins_only, trust_is_changed_on_the_page_by_server_admins_only);

async fn the_badge_answers_only_with_the_repositorys_key(harness: Harness) {
    team(&harness).await;
    let reader = sign_in(&harness, "reader").await;
    let page = get(&harness, "/repos/acme/app", Some(&reader.cookie)).await;
    let unescape = |html: &str| html.replace("&#38;", "&").replace("&amp;", "&");
    let badge = unescape(&attribute_after(&page.body, "<img src=\"/repos/acme/app/badge.svg", "src"));
    let markdown = attribute_between(&page.body, r#"<textarea id="badge-markdown" rows="2" readonly>"#, "</textarea>");
    assert!(unescape(&markdown).contains(&format!("http://gantry.test{badge}")), "the Markdown to paste holds the badge URL: {markdown}");
    let answer = get(&harness, &badge, None).await;
    assert_eq!(answer.headers["content-type"], "image/svg+xml");
    assert!(answer.body.contains("build: none"), "no build yet: {}", answer.body);
    for wrong in ["/repos/acme/app/badge.svg", "/repos/acme/app/badge.svg?key=0000", "/repos/acme/other/badge.svg"] {
        let answer = get(&harness, wrong, None).await;
        assert!(answer.body.contains("build: unknown"), "{wrong}: {}", answer.body);
    }
}
both!(the_badge_answers_only_with_the_repositorys_key, the_badge_answers_only_with_the_repositorys_key);

async fn the_first_start_creates_an_administrator_with_the_code_once(harness: Harness) {
    server::ui::account::prepare_first_start(&harness.state).await;
    let code_file = harness.state.config.data_dir.join("setup-code");
    let code = std::fs::read_to_string(&code_file).expect("the first-start code is written beside the data").trim().to_owned();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&code_file).unwrap().permissions().mode() & 0o077, 0, "only the server's user reads it");

    let login = get(&harness, "/login", None).await;
    assert_eq!((login.status, login.location()), (StatusCode::SEE_OTHER, "/setup"), "no users yet: the first start");
    let form = get(&harness, "/setup", None).await;
    assert!(form.body.contains(&code_file.display().to_string()), "the page says where the code is");
    assert!(!form.body.contains(&code), "and does not show it");
    let form_cookie = cookie_of(&form, "gantry_form").unwrap();
    let token = attribute_after(&form.body, "name=\"form_token\"", "value");
    let setup = |code: String| {
        let (form_cookie, token) = (form_cookie.clone(), token.clone());
        let harness = &harness;
        async move {
            post_form(
                harness,
                "/setup",
                Some(&form_cookie),
                &[("form_token", &token), ("code", &code), ("login", "root"), ("password", "a long password")],
            )
            .await
        }
    };
    for wrong in ["", "gsc_wrong", &code[..code.len() - 1]] {
        let answer = setup(wrong.to_owned()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "code {wrong:?}");
    }
    assert!(harness.state.store.list_users().await.unwrap().is_empty());
    let answer = setup(code.clone()).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let session = cookie_of(&answer, "gantry_session").expect("signed in at once");
    let root = harness.state.store.user_by_login("root").await.unwrap().unwrap();
    assert!(root.admin);
    assert_eq!(get(&harness, "/", Some(&session)).await.status, StatusCode::OK);

    // Once there is a user, the first start is over, code or not.
    assert_eq!(get(&harness, "/setup", None).await.location(), "/login");
    let again = setup(code).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(harness.state.store.list_users().await.unwrap().len(), 1);
}
both!(the_first_start_creates_an_administrator_with_the_code_once, the_first_start_creates_an_administrator_with_the_code_once);

async fn the_new_log_search_and_live_streams_hide_what_one_cannot_see(harness: Harness) {
    team(&harness).await;
    harness.user("stranger").await;
    let stranger = sign_in(&harness, "stranger").await;
    for path in [
        "/api/v1/repos/acme/app/builds/1/steps/1/log/search?q=token",
        "/api/v1/repos/acme/app/builds/1/steps/1/log?limit=5",
        "/repos/acme/app/events",
        "/repos/acme/app/builds/1/events",
        "/repos/acme/app/badge.svg?key=",
    ] {
        let answer = get(&harness, path, Some(&stranger.cookie)).await;
        let hidden = answer.status == StatusCode::NOT_FOUND || answer.body.contains("build: unknown");
        assert!(hidden, "{path} as someone without a role: {} {}", answer.status, answer.body);
    }
    // Without a session the live streams send to sign-in, as pages do.
    assert_eq!(get(&harness, "/repos/acme/app/events", None).await.status, StatusCode::SEE_OTHER);
    // A search needs something to find.
    let reader = sign_in(&harness, "reader").await;
    let answer = get(&harness, "/api/v1/repos/acme/app/builds/1/steps/1/log/search", Some(&reader.cookie)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "no build 1 yet: {}", answer.body);
}
both!(the_new_log_search_and_live_streams_hide_what_one_cannot_see, the_new_log_search_and_live_streams_hide_what_one_cannot_see);
