//! The REST API: who may call what (every endpoint × every role), secrets and registry passwords
//! never leave the server, and bad input answered with a JSON body that says what is wrong.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN_TOKEN, Harness, PIPELINE, git_repo};

/// The least a caller needs for an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Needs {
    /// Any signed-in user, whatever their roles (environments are the server's, not a
    /// repository's).
    SignedIn,
    Read,
    Write,
    Admin,
    ServerAdmin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Anonymous,
    Outsider,
    Reader,
    Writer,
    RepoAdmin,
    ServerAdmin,
}

fn allowed(caller: Caller, needs: Needs) -> bool {
    match caller {
        Caller::Anonymous => false,
        Caller::Outsider => needs == Needs::SignedIn,
        Caller::Reader => needs <= Needs::Read,
        Caller::Writer => needs <= Needs::Write,
        Caller::RepoAdmin => needs <= Needs::Admin,
        Caller::ServerAdmin => true,
    }
}

/// Denied means: 401 for nobody, 403, or the 404 that hides a repository from outsiders.
fn denied(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || (status == StatusCode::NOT_FOUND && body["error"].as_str().is_some_and(|error| error.contains("cannot see it")))
}

async fn role_matrix(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (status, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    let step = build["workflows"][0]["steps"][0]["id"].as_i64().expect("a step");
    // Finished, so that following its log ends.
    let (status, _) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds/1/cancel", None).await;
    assert_eq!(status, StatusCode::OK);

    let mut tokens = vec![(Caller::Anonymous, None), (Caller::ServerAdmin, Some(ADMIN_TOKEN.to_owned()))];
    for (caller, login, role) in [
        (Caller::Outsider, "outsider", None),
        (Caller::Reader, "reader", Some("read")),
        (Caller::Writer, "writer", Some("write")),
        (Caller::RepoAdmin, "owner", Some("admin")),
    ] {
        let token = harness.user(login).await;
        if let Some(role) = role {
            let (status, body) =
                harness.admin(Method::PUT, &format!("/api/v1/repos/acme/app/members/{login}"), Some(json!({ "role": role }))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        tokens.push((caller, Some(token)));
    }
    harness.user("someone").await;
    let (status, answer) = harness.admin(Method::POST, "/api/v1/environments", Some(json!({ "name": "staging" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let repo = "/api/v1/repos/acme/app";
    let endpoints: Vec<(Method, String, Option<Value>, Needs)> = vec![
        (Method::GET, repo.to_owned(), None, Needs::Read),
        (Method::PATCH, repo.to_owned(), Some(json!({ "timeout_minutes": 30 })), Needs::Admin),
        (Method::GET, format!("{repo}/members"), None, Needs::Read),
        (Method::PUT, format!("{repo}/members/someone"), Some(json!({ "role": "read" })), Needs::Admin),
        (Method::DELETE, format!("{repo}/members/someone"), None, Needs::Admin),
        (Method::POST, format!("{repo}/poll"), None, Needs::Write),
        (Method::GET, format!("{repo}/builds"), None, Needs::Read),
        (Method::POST, format!("{repo}/builds"), Some(json!({})), Needs::Write),
        (Method::GET, format!("{repo}/builds/1"), None, Needs::Read),
        (Method::POST, format!("{repo}/builds/1/cancel"), None, Needs::Write),
        (Method::POST, format!("{repo}/builds/1/restart"), None, Needs::Write),
        (Method::POST, format!("{repo}/builds/1/approve"), None, Needs::Write),
        (Method::POST, format!("{repo}/builds/1/decline"), None, Needs::Write),
        (Method::GET, format!("{repo}/builds/1/steps/{step}/log"), None, Needs::Read),
        (Method::GET, format!("{repo}/builds/1/steps/{step}/log/stream"), None, Needs::Read),
        (Method::GET, format!("{repo}/secrets"), None, Needs::Write),
        (Method::PUT, format!("{repo}/secrets/token"), Some(json!({ "value": "s3cret-value" })), Needs::Admin),
        (Method::DELETE, format!("{repo}/secrets/token"), None, Needs::Admin),
        (Method::GET, format!("{repo}/registries"), None, Needs::Write),
        (Method::PUT, format!("{repo}/registries/127.0.0.1:5001"), Some(json!({ "username": "ci", "password": "pw" })), Needs::Admin),
        (Method::DELETE, format!("{repo}/registries/127.0.0.1:5001"), None, Needs::Admin),
        (Method::GET, format!("{repo}/crons"), None, Needs::Read),
        (Method::PUT, format!("{repo}/crons/nightly"), Some(json!({ "schedule": "0 3 * * *" })), Needs::Admin),
        (Method::DELETE, format!("{repo}/crons/nightly"), None, Needs::Admin),
        (Method::GET, format!("{repo}/notifiers"), None, Needs::Admin),
        (Method::POST, format!("{repo}/notifiers"), Some(json!({ "kind": "webhook", "url": "http://192.0.2.1:9/hook" })), Needs::Admin),
        (Method::DELETE, format!("{repo}/notifiers/999"), None, Needs::Admin),
        (Method::GET, "/api/v1/agents".into(), None, Needs::ServerAdmin),
        (Method::DELETE, "/api/v1/agents/nobody".into(), None, Needs::ServerAdmin),
        (Method::GET, "/api/v1/environments".into(), None, Needs::SignedIn),
        (Method::POST, "/api/v1/environments".into(), Some(json!({ "name": "matrix" })), Needs::ServerAdmin),
        (Method::GET, "/api/v1/environments/staging/deployments".into(), None, Needs::SignedIn),
        (Method::GET, "/api/v1/environments/staging/apps".into(), None, Needs::SignedIn),
        (Method::POST, "/api/v1/environments/staging/secret".into(), None, Needs::ServerAdmin),
        (Method::DELETE, "/api/v1/environments/nothing".into(), None, Needs::ServerAdmin),
        (Method::GET, "/api/v1/users".into(), None, Needs::ServerAdmin),
        (Method::POST, "/api/v1/users".into(), Some(json!({ "login": "made", "password": "password-long" })), Needs::ServerAdmin),
        (Method::DELETE, repo.to_owned(), None, Needs::Admin),
    ];
    let mut failures = Vec::new();
    for (method, path, body, needs) in &endpoints {
        // Deleting the repository is checked last, by the one allowed caller that goes last.
        let callers: Vec<_> = if *method == Method::DELETE && path == repo {
            tokens.iter().filter(|(caller, _)| !allowed(*caller, *needs) || *caller == Caller::ServerAdmin).collect()
        } else {
            tokens.iter().collect()
        };
        for (caller, token) in callers {
            let (status, answer) = harness.call(method.clone(), path, token.as_deref(), body.clone()).await;
            let expected_allowed = allowed(*caller, *needs);
            if expected_allowed == denied(status, &answer) {
                failures.push(format!("{method} {path} as {caller:?}: {status} {answer}"));
            }
            if *caller == Caller::Anonymous && status != StatusCode::UNAUTHORIZED {
                failures.push(format!("{method} {path} without a token answered {status}, not 401"));
            }
        }
    }
    assert!(failures.is_empty(), "authorization mismatches:\n{}", failures.join("\n"));
}
both!(every_endpoint_authorizes_every_role, role_matrix);

async fn secrets_never_leave(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let value = "hunter2-the-secret-value";
    let (status, written) = harness
        .admin(Method::PUT, "/api/v1/repos/acme/app/secrets/deploy_token", Some(json!({ "value": value, "images": ["plugins/ssh"] })))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = harness.admin(Method::GET, "/api/v1/repos/acme/app/secrets", None).await;
    let (_, repo) = harness.admin(Method::GET, "/api/v1/repos/acme/app", None).await;
    for answer in [&written, &listed, &repo] {
        assert!(!answer.to_string().contains(value), "a secret value leaked: {answer}");
        assert!(!answer.to_string().contains("hook-secret"), "the webhook secret leaked: {answer}");
    }
    assert_eq!(listed[0]["name"], "deploy_token");
    assert_eq!(listed[0]["images"], json!(["plugins/ssh"]));
    assert!(!listed[0]["events"].as_array().unwrap().contains(&json!("pull_request")), "pull requests get no secrets by default");
    let repo_id = repo["id"].as_i64().unwrap();
    let stored = harness.state.store.list_secrets(repo_id).await.unwrap();
    assert!(!String::from_utf8_lossy(&stored[0].ciphertext).contains(value), "stored in clear");
    assert_eq!(harness.state.secrets.open(repo_id, "deploy_token", &stored[0].ciphertext).unwrap(), value);
    assert!(harness.state.secrets.open(repo_id, "other_name", &stored[0].ciphertext).is_err(), "a ciphertext is bound to its name");

    // A generated webhook secret is shown once, when the repository is registered.
    let (status, created) = harness
        .admin(
            Method::POST,
            "/api/v1/repos",
            Some(json!({ "full_name": "acme/other", "clone_url": "https://git.example.com/acme/other.git" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let generated = created["webhook_secret"].as_str().expect("shown once").to_owned();
    assert!(generated.len() >= 32);
    let (_, shown) = harness.admin(Method::GET, "/api/v1/repos/acme/other", None).await;
    assert!(shown.get("webhook_secret").is_none() && !shown.to_string().contains(&generated), "{shown}");
}
both!(secret_values_are_write_only_and_encrypted, secrets_never_leave);

async fn registry_passwords_never_leave(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    let repo = harness.repo("acme/app", &url, json!({})).await;
    let password = "hunter2-the-registry-password";
    let mut answers = Vec::new();
    // The host as a user may paste it: a scheme, capitals and a trailing slash are dropped.
    for host in ["https:%2F%2FRegistry.Example.com%2F", "127.0.0.1:5001", "index.docker.io"] {
        let (status, written) = harness
            .admin(
                Method::PUT,
                &format!("/api/v1/repos/acme/app/registries/{host}"),
                Some(json!({ "username": "ci-bot", "password": password })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{host}: {written}");
        answers.push(written);
    }
    assert_eq!(
        answers[0],
        json!({ "host": "registry.example.com", "username": "ci-bot", "created": answers[0]["created"], "updated": answers[0]["updated"] })
    );
    let (status, listed) = harness.admin(Method::GET, "/api/v1/repos/acme/app/registries", None).await;
    assert_eq!(status, StatusCode::OK);
    let hosts: Vec<&str> = listed.as_array().unwrap().iter().map(|registry| registry["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["127.0.0.1:5001", "docker.io", "registry.example.com"]);
    answers.push(listed);
    // Replacing keeps one login per host.
    let (status, replaced) = harness
        .admin(Method::PUT, "/api/v1/repos/acme/app/registries/docker.io", Some(json!({ "username": "other-bot", "password": password })))
        .await;
    assert_eq!((status, replaced["username"].as_str()), (StatusCode::OK, Some("other-bot")));
    answers.push(replaced);
    let (_, listed) = harness.admin(Method::GET, "/api/v1/repos/acme/app/registries", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    answers.push(listed);
    answers.push(harness.admin(Method::GET, "/api/v1/repos/acme/app", None).await.1);

    let (status, removed) =
        harness.admin(Method::DELETE, "/api/v1/repos/acme/app/registries/https:%2F%2Findex.docker.io%2Fv1%2F", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{removed}");
    let (status, again) = harness.admin(Method::DELETE, "/api/v1/repos/acme/app/registries/docker.io", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(again["error"], "acme/app has no credentials for registry docker.io");
    let (_, listed) = harness.admin(Method::GET, "/api/v1/repos/acme/app/registries", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    answers.extend([removed, again, listed]);
    for answer in &answers {
        assert!(!answer.to_string().contains(password), "a registry password leaked: {answer}");
    }
    // Kept sealed: the store opens it for a job, bound to the repository and the host.
    let auths = harness.state.store.registry_auths(repo["id"].as_i64().unwrap()).await.unwrap();
    assert_eq!(
        auths.iter().map(|auth| (auth.host.as_str(), auth.password.as_str())).collect::<Vec<_>>(),
        [("127.0.0.1:5001", password), ("registry.example.com", password)]
    );
}
both!(registry_passwords_are_write_only, registry_passwords_never_leave);

async fn bad_registry_input(harness: Harness) {
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let password = "hunter2-the-registry-password";
    let login = json!({ "username": "ci-bot", "password": password });
    // path after the repository, body, field named, what the error says
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("registry.example.com%2Fteam%2Fapp", login.clone(), "host", "has a path"),
        ("registry%20example.com", login.clone(), "host", "` ` is not allowed"),
        ("registry.example.com:http", login.clone(), "host", "port"),
        ("registry.example.com", json!({ "username": "", "password": password }), "username", "needs a username"),
        ("registry.example.com", json!({ "username": "ci:bot", "password": password }), "username", "cannot hold `:`"),
        ("registry.example.com", json!({ "username": "x".repeat(300), "password": password }), "username", "longer than 256"),
        ("registry.example.com", json!({ "username": "ci-bot", "password": "" }), "password", "needs a password"),
        ("registry.example.com", json!({ "username": "ci-bot", "password": format!("{password}\n") }), "password", "line break"),
        ("registry.example.com", json!({ "username": "ci-bot", "password": password.repeat(1000) }), "password", "at most 16384 bytes"),
    ];
    for (host, body, field, says) in cases {
        let path = format!("/api/v1/repos/acme/app/registries/{host}");
        let (status, answer) = harness.admin(Method::PUT, &path, Some(body)).await;
        assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{path}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|error| error.contains(says)), "{path}: {answer} should say {says}");
        assert!(!answer.to_string().contains(password), "an error echoed the password: {answer}");
    }
    let (status, answer) = harness.admin(Method::DELETE, "/api/v1/repos/acme/app/registries/a%2Fb", None).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("host")), "{answer}");
    let (_, listed) = harness.admin(Method::GET, "/api/v1/repos/acme/app/registries", None).await;
    assert_eq!(listed, json!([]), "nothing refused was kept");
}
both!(bad_registry_logins_are_refused_naming_the_field, bad_registry_input);

async fn bad_input(harness: Harness) {
    // method, path, body, status, field named, what the error says
    type Case<'a> = (Method, &'a str, Value, StatusCode, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/v1/repos",
            json!({ "full_name": "no-slash", "clone_url": "file:///x" }),
            StatusCode::BAD_REQUEST,
            Some("full_name"),
            "owner/name",
        ),
        (
            Method::POST,
            "/api/v1/repos",
            json!({ "full_name": "a/b", "clone_url": "--upload-pack=evil" }),
            StatusCode::BAD_REQUEST,
            Some("clone_url"),
            "not a git remote",
        ),
        (
            Method::POST,
            "/api/v1/repos",
            json!({ "full_name": "a/b", "clone_url": "file:///x", "poll_interval_seconds": 1 }),
            StatusCode::BAD_REQUEST,
            Some("poll_interval_seconds"),
            "every 10 seconds",
        ),
        (Method::POST, "/api/v1/repos", json!({ "clone_url": "file:///x" }), StatusCode::UNPROCESSABLE_ENTITY, None, "full_name"),
        (
            Method::POST,
            "/api/v1/users",
            json!({ "login": "x", "password": "short" }),
            StatusCode::BAD_REQUEST,
            Some("password"),
            "8 characters",
        ),
        (Method::GET, "/api/v1/nothing-here", Value::Null, StatusCode::NOT_FOUND, None, "no such endpoint"),
    ];
    for (method, path, body, status, field, says) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, answer) = harness.admin(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|error| error.contains(says)), "{method} {path}: {answer} should say {says}");
        assert_eq!(answer["field"].as_str(), field, "{answer}");
    }
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", PIPELINE)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (status, answer) = harness.admin(Method::POST, "/api/v1/repos", Some(json!({ "full_name": "acme/app", "clone_url": url }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = harness.admin(Method::GET, "/api/v1/repos/acme/app/builds/notanumber", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].is_string(), "axum's own rejections are JSON too: {answer}");
    let (status, answer) =
        harness.admin(Method::PUT, "/api/v1/repos/acme/app/crons/nightly", Some(json!({ "schedule": "every day at noon" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "schedule");
    let (status, answer) = harness.admin(Method::PATCH, "/api/v1/repos/acme/app", Some(json!({ "trust": { "privileged": true } }))).await;
    assert_eq!(status, StatusCode::OK, "server admins set trust: {answer}");

    // A browser session: the cookie from signing in stands for the user.
    let (status, _) =
        harness.admin(Method::POST, "/api/v1/users", Some(json!({ "login": "browser", "password": "password-of-test" }))).await;
    assert_eq!(status, StatusCode::CREATED);
    let response = {
        use tower::ServiceExt as _;
        let request = axum::http::Request::post("/api/v1/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(json!({ "login": "browser", "password": "password-of-test" }).to_string()))
            .unwrap();
        harness.app.clone().oneshot(request).await.unwrap()
    };
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("gantry_session="));
    let me = {
        use tower::ServiceExt as _;
        let request = axum::http::Request::get("/api/v1/user").header("cookie", &cookie).body(axum::body::Body::empty()).unwrap();
        let response = harness.app.clone().oneshot(request).await.unwrap();
        serde_json::from_slice::<Value>(&axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap()
    };
    assert_eq!(me["login"], "browser");
    let (status, answer) =
        harness.call(Method::POST, "/api/v1/login", None, Some(json!({ "login": "browser", "password": "wrong-password" }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    // A file:// remote would let any user read the server's disk through builds.
    let user = harness.user("dev").await;
    let body = json!({ "full_name": "dev/local", "clone_url": "file:///etc" });
    let (status, answer) = harness.call(Method::POST, "/api/v1/repos", Some(&user), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["field"], "clone_url");
    let body = json!({ "full_name": "dev/remote", "clone_url": "https://git.example.com/dev/remote.git", "trust": { "volumes": true } });
    let (status, _) = harness.call(Method::POST, "/api/v1/repos", Some(&user), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only server admins trust a repository");
}
both!(bad_input_is_answered_with_what_is_wrong, bad_input);

async fn pipeline_errors_fail_visibly(harness: Harness) {
    let broken = "steps:\n  build:\n    image: gantry-test/busybox:latest\n    depends_on: [compile]\n    commands:\n      - echo hi\n";
    let (url, _, _) = git_repo(harness.dir.path(), &[(".woodpecker.yml", broken)]);
    harness.repo("acme/app", &url, json!({})).await;
    let (status, build) = harness.admin(Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    assert_eq!(build["state"], "error");
    assert_eq!(build["reason"], "the pipeline has errors");
    let diagnostic = &build["diagnostics"][0];
    assert_eq!(diagnostic["file"], ".woodpecker.yml");
    assert_eq!(diagnostic["line"], 4);
    assert!(diagnostic["message"].as_str().unwrap().contains("compile"), "{diagnostic}");
}
both!(a_pipeline_with_errors_is_a_failed_build_with_its_diagnostics, pipeline_errors_fail_visibly);
