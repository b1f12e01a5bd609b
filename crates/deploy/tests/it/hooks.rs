//! The deployer's listener over real HTTP: push hooks in each forge's shape (the payloads the
//! forges document, the same fixtures the server's webhook tests read) wake the reconcile loop
//! only when signed with the deployer's secret and pushed to its branch; Gantry's
//! `image.published` asks for image automation; the inventory wants the API token when one is
//! set.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deploy::history::History;
use deploy::inventory::{Inventory, Metrics};
use deploy::serve::{Shared, router};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../forge/tests/data/webhooks/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn signature(secret: &str, body: &[u8]) -> String {
    forge::webhook::signature(secret, body)
}

struct Listener {
    shared: Arc<Shared>,
    url: String,
    client: reqwest::Client,
}

impl Listener {
    async fn start(branch: &str, webhook_secret: Option<&str>, api_token: Option<&str>) -> Listener {
        let folder = tempfile::tempdir().unwrap();
        let shared = Arc::new(Shared {
            inventory: tokio::sync::RwLock::new(Some(Inventory { environment: "production".into(), ..Inventory::default() })),
            metrics: std::sync::Mutex::new(Metrics::default()),
            history: History::new(folder.path()),
            wake: tokio::sync::Notify::new(),
            automation_due: std::sync::atomic::AtomicBool::new(false),
            branch: branch.to_owned(),
            webhook_secret: webhook_secret.map(str::to_owned),
            gantry_secret: Some("published-secret".to_owned()),
            api_token: api_token.map(str::to_owned),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Listener { shared, url, client: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> u16 {
        let mut request = self.client.post(format!("{}{path}", self.url)).header("Content-Type", "application/json").body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap().status().as_u16()
    }

    /// Whether the loop was woken (and takes the wake-up).
    async fn woken(&self) -> bool {
        tokio::time::timeout(Duration::from_millis(200), self.shared.wake.notified()).await.is_ok()
    }
}

fn run(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test);
}

#[test]
fn a_signed_push_to_the_deployers_branch_wakes_it_in_every_forges_shape() {
    run(async {
        let cases = [
            ("github", "github/push.json", "master", vec![("X-GitHub-Event", "push".to_owned())], true),
            ("generic", "github/push.json", "master", vec![("X-GitHub-Event", "push".to_owned())], true),
            ("gitea", "gitea/push.json", "develop", vec![("X-Gitea-Event", "push".to_owned())], true),
            ("forgejo", "gitea/push_forgejo.json", "develop", vec![("X-Forgejo-Event", "push".to_owned())], true),
            ("gitlab", "gitlab/push.json", "master", vec![("X-Gitlab-Event", "Push Hook".to_owned())], false),
        ];
        for (forge, path, branch, mut headers, hmac) in cases {
            let body = fixture(path);
            let listener = Listener::start(branch, Some("hook-secret"), None).await;
            let (name, right, wrong) = if hmac {
                let header = match forge {
                    "gitea" => "X-Gitea-Signature",
                    "forgejo" => "X-Forgejo-Signature",
                    _ => "X-Hub-Signature-256",
                };
                let strip =
                    |value: String| if header == "X-Hub-Signature-256" { value } else { value.trim_start_matches("sha256=").to_owned() };
                (header, strip(signature("hook-secret", &body)), strip(signature("another-secret", &body)))
            } else {
                ("X-Gitlab-Token", "hook-secret".to_owned(), "another-secret".to_owned())
            };
            let mut wrongly = headers.clone();
            wrongly.push((name, wrong));
            assert_eq!(listener.post(&format!("/hooks/{forge}"), &wrongly, body.clone()).await, 401, "{forge}: a wrong signature");
            assert_eq!(listener.post(&format!("/hooks/{forge}"), &headers, body.clone()).await, 401, "{forge}: no signature");
            assert!(!listener.woken().await, "{forge}: refused hooks wake nothing");
            headers.push((name, right));
            assert_eq!(listener.post(&format!("/hooks/{forge}"), &headers, body.clone()).await, 202, "{forge}");
            assert!(listener.woken().await, "{forge}: a push to the branch wakes the loop");

            // The same push to a branch this deployer does not follow.
            let elsewhere = Listener::start("production", Some("hook-secret"), None).await;
            assert_eq!(elsewhere.post(&format!("/hooks/{forge}"), &headers, body.clone()).await, 202);
            assert!(!elsewhere.woken().await, "{forge}: another branch wakes nothing");
        }
    });
}

#[test]
fn hooks_without_a_configured_secret_are_refused_and_unknown_forges_are_not_found() {
    run(async {
        let listener = Listener::start("master", None, None).await;
        let body = fixture("github/push.json");
        let headers = [("X-GitHub-Event", "push".to_owned()), ("X-Hub-Signature-256", signature("", &body))];
        assert_eq!(listener.post("/hooks/github", &headers, body.clone()).await, 403);
        assert_eq!(listener.post("/hooks/bitbucket", &headers, body).await, 404);
        assert!(!listener.woken().await);
    });
}

#[test]
fn gantrys_signed_image_published_asks_for_image_automation() {
    run(async {
        let listener = Listener::start("main", Some("hook-secret"), None).await;
        let body = serde_json::to_vec(&serde_json::json!({
            "event": "image.published", "repository": "acme/web", "build": 7, "build_url": "http://ci/acme/web/7",
            "commit": "c0ffee", "branch": "main", "reference": "refs/heads/main", "trigger": "push", "workflow": "ci",
            "step": "image", "image": "127.0.0.1:5000/acme/web", "digest": format!("sha256:{}", "a".repeat(64)),
            "pinned": format!("127.0.0.1:5000/acme/web@sha256:{}", "a".repeat(64)), "tags": ["1.2.0"]
        }))
        .unwrap();
        let forged = [("X-Gantry-Signature", signature("hook-secret", &body))];
        assert_eq!(listener.post("/hooks/gantry", &forged, body.clone()).await, 401, "the push hooks' secret is not Gantry's");
        assert!(!listener.shared.automation_due.load(Ordering::SeqCst));
        let signed = [("X-Gantry-Signature", signature("published-secret", &body))];
        assert_eq!(listener.post("/hooks/gantry", &signed, body.clone()).await, 202);
        assert!(listener.shared.automation_due.load(Ordering::SeqCst));
        assert!(listener.woken().await);
        let mut tampered = body.clone();
        tampered[20] ^= 1;
        assert_eq!(listener.post("/hooks/gantry", &signed, tampered).await, 401);
    });
}

#[test]
fn the_inventory_and_history_want_the_api_token_when_one_is_set() {
    run(async {
        let listener = Listener::start("main", None, Some("read-token")).await;
        let get = |token: Option<&str>, path: &str| {
            let mut request = listener.client.get(format!("{}{path}", listener.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        for path in ["/api/v1/inventory", "/api/v1/history"] {
            assert_eq!(get(None, path).await, 401, "{path}");
            assert_eq!(get(Some("wrong"), path).await, 401, "{path}");
            assert_eq!(get(Some("read-token"), path).await, 200, "{path}");
        }
        assert_eq!(get(None, "/metrics").await, 200, "metrics are for the scraper");
        assert_eq!(get(None, "/healthz").await, 200);
    });
}
