//! The web UI in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver) against a real `gantry server` and `gantry agent`. What a person does: sign
//! in, run a build and watch it finish without reloading, follow a log to its last line,
//! cancel and restart, read the step graph; and what an attacker tries: a forged form post,
//! a read-only member looking for write controls.
//!
//! A failing test saves a screenshot to `target/browser-screenshots/<test>.png`. With
//! `GANTRY_SCREENSHOTS=1` the tests also save the pages the README shows, to `docs/screenshots`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use futures_util::FutureExt as _;
use serde_json::{Value, json};

use crate::e2e::{Cluster, remote};

/// A chromedriver process and a headless Chromium session on it, both ended when dropped.
struct Browser {
    client: Client,
    driver: Child,
    base: String,
    /// The relays between the browser's network namespace and the host (see `Loopback`).
    relays: Vec<tokio::task::JoinHandle<()>>,
}

/// chromedriver's port inside the browser's namespace, where nothing else listens.
const DRIVER_PORT: u16 = 9515;

/// A network namespace that holds only loopback, with chromedriver (and so Chromium) in it.
///
/// Chromium aborts a page load with ERR_NETWORK_CHANGED whenever an interface appears or goes,
/// and the Docker engine adds and removes them all the time while other tests run. In a
/// namespace of its own the browser sees no interface but `lo`; it reaches the server through a
/// relay from the namespace's 127.0.0.1:<server port> to the host's, and the test reaches
/// chromedriver through a relay the other way.
struct Loopback {
    driver: Child,
    /// Listens on the server's port inside the namespace.
    server_side: std::net::TcpListener,
    /// Asks the namespace's thread for a connection to chromedriver.
    connect: std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<std::io::Result<std::net::TcpStream>>>,
}

impl Loopback {
    /// Enters a new network namespace on a thread of its own (a namespace belongs to a thread
    /// and to what it starts; sockets keep the namespace they were made in), starts chromedriver
    /// there and stays to open connections to it.
    fn start(server_port: u16) -> Loopback {
        let (ready, started) = std::sync::mpsc::channel();
        let (connect, requests) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<std::io::Result<std::net::TcpStream>>>();
        std::thread::spawn(move || {
            let setup = || -> Result<(Child, std::net::TcpListener), String> {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|error| format!("unshare(CLONE_NEWNET), which needs root: {error}"))?;
                let ip = if Path::new("/usr/sbin/ip").exists() { "/usr/sbin/ip" } else { "ip" };
                let up = Command::new(ip)
                    .args(["link", "set", "lo", "up"])
                    .status()
                    .map_err(|error| format!("{ip} (scripts/setup.sh installs iproute2): {error}"))?;
                if !up.success() {
                    return Err(format!("ip link set lo up: {up}"));
                }
                let server_side = std::net::TcpListener::bind(("127.0.0.1", server_port))
                    .map_err(|error| format!("binding the server's port in the namespace: {error}"))?;
                let driver = Command::new("chromedriver")
                    .args([format!("--port={DRIVER_PORT}"), "--allowed-ips=127.0.0.1".to_owned()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|error| format!("chromedriver (scripts/setup.sh installs chromium-driver): {error}"))?;
                Ok((driver, server_side))
            };
            let set_up = setup();
            let failed = set_up.is_err();
            let _ = ready.send(set_up);
            if failed {
                return;
            }
            // Until the Browser is gone and its sender with it.
            for reply in requests {
                let _ = reply.send(std::net::TcpStream::connect(("127.0.0.1", DRIVER_PORT)));
            }
        });
        let (driver, server_side) = started
            .recv()
            .expect("the namespace's thread answers")
            .unwrap_or_else(|error| panic!("no network namespace for the browser: {error}"));
        Loopback { driver, server_side, connect }
    }

    /// Relays connections made in the namespace to the server's port to the host's 127.0.0.1.
    fn relay_server(server_side: std::net::TcpListener, server_port: u16) -> tokio::task::JoinHandle<()> {
        server_side.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(server_side).unwrap();
        tokio::spawn(async move {
            while let Ok((mut inside, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut host) = tokio::net::TcpStream::connect(("127.0.0.1", server_port)).await {
                        let _ = host.set_nodelay(true);
                        let _ = inside.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut host).await;
                    }
                });
            }
        })
    }

    /// Relays connections to a host port to chromedriver in the namespace; returns the port.
    async fn relay_driver(
        connect: std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<std::io::Result<std::net::TcpStream>>>,
    ) -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = tokio::spawn(async move {
            while let Ok((mut host, _)) = listener.accept().await {
                let (reply, answer) = tokio::sync::oneshot::channel();
                if connect.send(reply).is_err() {
                    return;
                }
                tokio::spawn(async move {
                    let Ok(Ok(inside)) = answer.await else { return };
                    if inside.set_nonblocking(true).is_err() {
                        return;
                    }
                    let Ok(mut inside) = tokio::net::TcpStream::from_std(inside) else { return };
                    let _ = inside.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut host, &mut inside).await;
                });
            }
        });
        (port, relay)
    }
}

impl Browser {
    async fn open(base: &str) -> Browser {
        let server_port = reqwest::Url::parse(base).unwrap().port().expect("the server's URL names its port");
        let Loopback { driver, server_side, connect } = Loopback::start(server_port);
        let (port, driver_relay) = Loopback::relay_driver(connect).await;
        let relays = vec![Loopback::relay_server(server_side, server_port), driver_relay];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking"],
            }
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("no browser session: {error}"),
            }
        };
        Browser { client, driver, base: base.to_owned(), relays }
    }

    async fn go(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|error| panic!("no {css}: {error}")).text().await.unwrap()
    }

    async fn exists(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|error| panic!("no {css}: {error}")).click().await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|error| panic!("no {css}: {error}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Presses and releases one key, as a person at the keyboard does (into whatever has focus).
    async fn press(&self, key: impl Into<char>) {
        use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
        let key = key.into();
        let actions = KeyActions::new("keyboard".to_owned()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
        self.client.perform_actions(actions).await.unwrap();
    }

    /// What has focus, in the page's terms (see `FOCUSED`), and whether it shows a focus ring.
    async fn focused(&self) -> (String, bool) {
        let answer = self.run(FOCUSED, vec![]).await;
        (answer["what"].as_str().unwrap_or_default().to_owned(), answer["ring"] == json!(true))
    }

    /// Runs `script` in the page (its arguments in `arguments`) and returns its value.
    async fn run(&self, script: &str, arguments: Vec<Value>) -> Value {
        self.client.execute(script, arguments).await.unwrap()
    }

    /// Waits until `check` holds on the page, at most `limit`.
    async fn wait_for(&self, what: &str, limit: Duration, check: impl AsyncFn(&Browser) -> bool) {
        let deadline = Instant::now() + limit;
        while !check(self).await {
            assert!(Instant::now() < deadline, "{what} did not happen in {limit:?}; the page is {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element `css` shows `text` (a part of its text).
    async fn wait_text(&self, css: &str, text: &str, limit: Duration) {
        self.wait_for(&format!("{css} showing {text:?}"), limit, async |browser| match browser.client.find_all(Locator::Css(css)).await {
            Ok(found) => {
                for element in found {
                    if element.text().await.is_ok_and(|shown| shown.contains(text)) {
                        return true;
                    }
                }
                false
            }
            Err(_) => false,
        })
        .await;
    }

    async fn sign_in(&self, login: &str, password: &str) {
        self.go("/login").await;
        self.fill("#login", login).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]").await;
        self.wait_for("signing in", Duration::from_secs(10), async |browser| {
            browser.path().await != "/login" && !browser.path().await.starts_with("/login?")
        })
        .await;
    }

    /// Runs axe-core on the page: fails on any violation of serious or critical impact.
    async fn check_accessibility(&self, page: &str) {
        let loaded = self.run(&format!("{AXE}\nreturn typeof axe;"), vec![]).await;
        assert_eq!(loaded, json!("object"), "axe-core loads into {page}");
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] })
              .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }))))
              .catch(e => done({ error: String(e) }));";
        let violations = self.client.execute_async(script, vec![]).await.unwrap();
        assert_eq!(violations, json!([]), "accessibility violations on {page}");
    }

    async fn screenshot(&self, path: &Path) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::create_dir_all(path.parent().unwrap());
            let _ = std::fs::write(path, png);
        }
    }

    /// A screenshot for the README when `GANTRY_SCREENSHOTS=1`.
    async fn document(&self, name: &str) {
        if std::env::var("GANTRY_SCREENSHOTS").as_deref() == Ok("1") {
            self.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots").join(format!("{name}.png"))).await;
        }
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs a browser test; a failure saves a screenshot of the page first.
async fn with_browser<F>(name: &str, cluster: &Cluster, test: F)
where
    F: AsyncFnOnce(&Browser),
{
    let browser = Browser::open(&cluster.url()).await;
    let outcome = std::panic::AssertUnwindSafe(test(&browser)).catch_unwind().await;
    if let Err(panic) = outcome {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots").join(format!("{name}.png"));
        browser.screenshot(&path).await;
        eprintln!("browser test {name} failed; screenshot: {}\nserver log:\n{}", path.display(), cluster.log("server.log"));
        browser.close().await;
        std::panic::resume_unwind(panic);
    }
    browser.close().await;
}

const PASSWORD: &str = "correct horse battery";

/// Names the focused element as the build page's parts, and says whether its focus ring is
/// drawn (an outline; a graph node's box takes the focus colour instead).
const FOCUSED: &str = "const e = document.activeElement;
    let what = e.tagName.toLowerCase();
    if (e.matches('a.skip')) what = 'skip';
    else if (e.matches('svg.graph a.node')) what = 'graph:' + e.dataset.step;
    else if (e.closest('.steps .step')) what = 'step:' + e.closest('.step').querySelector('.name').textContent.trim();
    else if (e.matches('[data-log-action]')) what = 'log:' + e.dataset.logAction;
    else if (e.matches('#log-query')) what = 'log:search';
    else if (e.matches('.log-view')) what = 'log:lines';
    else if (e.closest('form') && /[/](restart|cancel)$/.test(e.closest('form').action)) what = e.closest('form').action.split('/').pop();
    const ring = e.matches('svg.graph a.node')
      ? getComputedStyle(e.querySelector('rect')).stroke === getComputedStyle(document.documentElement).getPropertyValue('--focus').trim().replace(/^#(..)(..)(..)$/, (_, r, g, b) => `rgb(${parseInt(r, 16)}, ${parseInt(g, 16)}, ${parseInt(b, 16)})`)
      : getComputedStyle(e).outlineStyle !== 'none';
    return { what, ring };";

/// axe-core, vendored (see `vendor/README.md`).
const AXE: &str = include_str!("vendor/axe-4.14.1.min.js");

async fn add_user(cluster: &Cluster, login: &str, admin: bool) {
    let (status, answer) =
        cluster.api(reqwest::Method::POST, "/api/v1/users", Some(json!({ "login": login, "password": PASSWORD, "admin": admin }))).await;
    assert_eq!(status, 201, "{answer}");
}

async fn add_member(cluster: &Cluster, login: &str, role: &str) {
    let (status, answer) =
        cluster.api(reqwest::Method::PUT, &format!("/api/v1/repos/acme/app/members/{login}"), Some(json!({ "role": role }))).await;
    assert!(status == 200 || status == 204, "{status} {answer}");
}

/// Fan-out and fan-in: `build` first, then `test` and `lint` beside each other, then `report`.
/// `test` prints enough lines to page, ending with a line the viewer must reach.
const GRAPH_PIPELINE: &str = "steps:
  build:
    image: gantry-test/busybox:latest
    commands: [echo building]
  test:
    image: gantry-test/busybox:latest
    depends_on: [build]
    commands:
      - i=1; while [ $i -le 3000 ]; do echo \"test line $i\"; i=$((i+1)); done
      - sleep 1
      - printf '\\033[32mall tests passed\\033[0m\\n'
      - echo LAST-LINE-OF-TEST
  lint:
    image: gantry-test/busybox:latest
    depends_on: [build]
    commands: [echo linting]
  report:
    image: gantry-test/busybox:latest
    depends_on: [test, lint]
    commands: [echo done]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_runs_a_build_and_watches_it_finish_with_its_graph_and_log() {
    let cluster = Cluster::start(&[]).await;
    let (url, _work) = remote(cluster.dir.path(), &[(".woodpecker.yml", GRAPH_PIPELINE)]);
    cluster.add_repo(&url, json!({})).await;
    add_user(&cluster, "dev", false).await;
    add_member(&cluster, "dev", "write").await;

    with_browser("signs_in_and_runs_a_build", &cluster, async |browser| {
        // A page asked for before signing in comes back after it.
        browser.go("/repos/acme/app").await;
        assert!(browser.path().await.starts_with("/login?next="), "{}", browser.path().await);
        browser.document("sign-in").await;
        browser.check_accessibility("the sign-in page").await;
        browser.fill("#login", "dev").await;
        browser.fill("#password", PASSWORD).await;
        browser.click("form[action='/login'] button[type=submit]").await;
        browser.wait_for("the repository page", Duration::from_secs(10), async |browser| browser.path().await == "/repos/acme/app").await;

        // Run a build by hand; the form leads to the new build's page.
        browser.click("#run summary").await;
        browser.fill("#run-branch", "main").await;
        browser.click("#run button[type=submit]").await;
        browser.wait_for("the build page", Duration::from_secs(10), async |browser| browser.path().await.starts_with("/repos/acme/app/builds/1")).await;
        // A mark in the page's memory: still there at the end means the page never reloaded.
        browser.run("window.gantryMark = 'unchanged'; return true;", vec![]).await;

        browser.wait_text("#live h1 .badge", "success", Duration::from_secs(120)).await;
        assert_eq!(browser.run("return window.gantryMark || null;", vec![]).await, json!("unchanged"), "the page was not reloaded");
        for step in ["build", "test", "lint", "report"] {
            browser.wait_text(".step.state-success .name", step, Duration::from_secs(10)).await;
        }

        // The graph puts each step right of what it depends on.
        let columns = browser
            .run("const c = {}; for (const n of document.querySelectorAll('svg.graph .node')) c[n.dataset.step] = Number(n.dataset.column); return c;", vec![])
            .await;
        assert_eq!(columns, json!({ "clone": 0, "build": 1, "test": 2, "lint": 2, "report": 3 }), "graph columns");
        let edges = browser.run("return document.querySelectorAll('svg.graph .edges path').length;", vec![]).await;
        assert_eq!(edges, json!(5), "clone→build, build→test, build→lint, test→report, lint→report");
        browser.document("build").await;
        browser.check_accessibility("the build page").await;

        // The log of `test`: 3,000+ lines, paged; its last line is reachable and coloured.
        browser.click("svg.graph .node[data-step='test']").await;
        browser.wait_for("the test step's log", Duration::from_secs(10), async |browser| browser.text("#log-title").await.contains("test")).await;
        browser.wait_text("[data-log-count]", "3,0", Duration::from_secs(10)).await;
        browser.click("[data-log-action='bottom']").await;
        browser.wait_text(".log-window .line", "LAST-LINE-OF-TEST", Duration::from_secs(10)).await;
        let coloured = browser.run("return Array.from(document.querySelectorAll('.log-window .line .f2')).map(e => e.textContent);", vec![]).await;
        assert_eq!(coloured, json!(["all tests passed"]), "ANSI green drawn as a class");
        // Search finds a line and moves to it.
        browser.fill("#log-query", "test line 1500").await;
        browser.click(".log-search button[type=submit]").await;
        browser.wait_text(".log-window .line.current", "test line 1500", Duration::from_secs(10)).await;
        browser.document("log").await;

        // A permalink opens the log at its line.
        let step_id = browser.run("return document.getElementById('log').dataset.stepId;", vec![]).await;
        let step_id = step_id.as_str().unwrap().to_owned();
        let permalink = format!("/repos/acme/app/builds/1?step={step_id}#step-{step_id}-L2000");
        browser.go(&permalink).await;
        browser.wait_text(&format!("#step-{step_id}-L2000.current .ln"), "2000", Duration::from_secs(10)).await;
        let shown = browser.text(&format!("#step-{step_id}-L2000")).await;
        assert!(shown.starts_with("2000") && shown.contains("test line"), "line 2000 as drawn: {shown:?}");

        // Keyboard only: the first Tab is the skip link, which leads past the header; Tab then
        // reaches the actions, the steps, the graph's nodes and the log's controls, each with a
        // focus ring; Enter on a graph node opens that step's log; `/` goes to the log's search.
        use fantoccini::key::Key;
        browser.go("/repos/acme/app/builds/1").await;
        browser.press(Key::Tab).await;
        assert_eq!(browser.focused().await.0, "skip");
        browser.press(Key::Enter).await;
        assert_eq!(browser.run("return location.hash;", vec![]).await, json!("#main"));
        let mut reached = Vec::new();
        // Until the end of the page, where focus leaves the document.
        for _ in 0..200 {
            browser.press(Key::Tab).await;
            if reached.is_empty() {
                let in_main = browser.run("return document.activeElement.closest('main') !== null;", vec![]).await;
                assert_eq!(in_main, json!(true), "the Tab after the skip link is in the content");
            }
            let (what, ring) = browser.focused().await;
            if what == "body" {
                break;
            }
            assert!(ring, "{what} has focus without a visible ring; before it: {reached:?}");
            reached.push(what);
        }
        for part in ["restart", "step:build", "step:test", "graph:test", "graph:report", "log:search", "log:follow", "log:lines"] {
            assert!(reached.iter().any(|what| what == part), "Tab never reached {part}: {reached:?}");
        }
        let position = |part: &str| reached.iter().position(|what| what == part).unwrap();
        let order = ["graph:clone", "graph:build", "graph:test", "graph:report", "step:clone", "step:report", "log:search", "log:lines"];
        assert!(order.windows(2).all(|pair| position(pair[0]) < position(pair[1])), "Tab order: {reached:?}");
        browser.run("document.querySelector('svg.graph a.node[data-step=lint]').focus(); return true;", vec![]).await;
        browser.press(Key::Enter).await;
        browser.wait_for("lint's log opened from the keyboard", Duration::from_secs(10), async |browser| browser.text("#log-title").await.contains("lint")).await;
        browser.press('/').await;
        assert_eq!(browser.focused().await.0, "log:search");
        for key in "linting".chars() {
            browser.press(key).await;
        }
        browser.press(Key::Enter).await;
        browser.wait_text(".log-window .line.current", "linting", Duration::from_secs(10)).await;

        // The dashboard lists the repository with its last build.
        browser.go("/").await;
        browser.wait_text(".card", "acme/app", Duration::from_secs(5)).await;
        browser.wait_text(".card .badge", "success", Duration::from_secs(5)).await;
        browser.document("dashboard").await;
        browser.check_accessibility("the dashboard").await;
        browser.go("/repos/acme/app").await;
        browser.wait_text("table.builds", "#1", Duration::from_secs(5)).await;
        browser.document("repository").await;
        browser.check_accessibility("the repository page").await;
    })
    .await;
}

const SLEEPY_PIPELINE: &str = "steps:
  wait:
    image: gantry-test/busybox:latest
    commands:
      - echo started
      - i=1; while [ $i -le 600 ]; do echo \"tick $i\"; sleep 0.2; i=$((i+1)); done
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_build_is_followed_live_then_cancelled_and_restarted_from_its_page() {
    let cluster = Cluster::start(&[]).await;
    let (url, _work) = remote(cluster.dir.path(), &[(".woodpecker.yml", SLEEPY_PIPELINE)]);
    cluster.add_repo(&url, json!({})).await;
    add_user(&cluster, "dev", false).await;
    add_member(&cluster, "dev", "write").await;

    with_browser("cancel_and_restart", &cluster, async |browser| {
        browser.sign_in("dev", PASSWORD).await;
        // The repository page, open while a build starts elsewhere, shows it without a reload.
        browser.go("/repos/acme/app").await;
        browser.run("window.gantryMark = 'unchanged'; return true;", vec![]).await;
        let (status, answer) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({ "branch": "main" }))).await;
        assert_eq!(status, 201, "{answer}");
        browser.wait_text("table.builds", "#1", Duration::from_secs(10)).await;
        browser.wait_text("table.builds .badge", "running", Duration::from_secs(60)).await;
        assert_eq!(browser.run("return window.gantryMark || null;", vec![]).await, json!("unchanged"), "the page was not reloaded");
        browser.go("/repos/acme/app/builds/1").await;
        browser.wait_text("#live h1 .badge", "running", Duration::from_secs(60)).await;
        // The page opened before the step ran has no log yet: reload onto the running step
        // (`wait`, not the clone step before it, which runs first).
        browser
            .wait_for("the wait step running", Duration::from_secs(30), async |browser| {
                browser
                    .run(
                        "return [...document.querySelectorAll('.step.state-running .name')].some(n => n.textContent.trim() === 'wait');",
                        vec![],
                    )
                    .await
                    == json!(true)
            })
            .await;
        browser.go("/repos/acme/app/builds/1").await;
        // Following: new lines arrive and the view stays at the bottom.
        browser.wait_text(".log-window .line", "tick 5", Duration::from_secs(30)).await;
        let following = browser.run("return document.querySelector('[data-log-action=follow]').checked;", vec![]).await;
        assert_eq!(following, json!(true), "a running step's log is followed");
        browser.wait_text(".log-window .line", "tick 15", Duration::from_secs(30)).await;

        browser.click("form[action$='/cancel'] button").await;
        browser.wait_text("#live h1 .badge", "killed", Duration::from_secs(60)).await;
        browser.click("form[action$='/restart'] button").await;
        browser
            .wait_for("the restarted build's page", Duration::from_secs(10), async |browser| {
                browser.path().await.starts_with("/repos/acme/app/builds/2")
            })
            .await;
        browser.wait_text("#live h1 .badge", "running", Duration::from_secs(60)).await;
        browser.click("form[action$='/cancel'] button").await;
        browser.wait_text("#live h1 .badge", "killed", Duration::from_secs(60)).await;
    })
    .await;
    let build = cluster.build(2).await;
    assert_eq!(build["state"], "killed", "{build}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_member_sees_no_write_controls_and_a_forged_post_fails() {
    let cluster = Cluster::start(&[]).await;
    let (url, _work) = remote(
        cluster.dir.path(),
        &[(".woodpecker.yml", "steps:\n  build:\n    image: gantry-test/busybox:latest\n    commands: [echo hi]\n")],
    );
    cluster.add_repo(&url, json!({})).await;
    add_user(&cluster, "reader", false).await;
    add_member(&cluster, "reader", "read").await;
    add_user(&cluster, "writer", false).await;
    add_member(&cluster, "writer", "write").await;
    let (status, answer) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({ "branch": "main" }))).await;
    assert_eq!(status, 201, "{answer}");
    cluster.wait_finished(1).await;

    with_browser("read_only_and_forged_post", &cluster, async |browser| {
        browser.sign_in("reader", PASSWORD).await;
        browser.go("/repos/acme/app").await;
        browser.wait_text("table.builds", "#1", Duration::from_secs(5)).await;
        assert!(!browser.exists("#run").await, "no run form for a reader");
        browser.go("/repos/acme/app/builds/1").await;
        browser.wait_text("#live h1 .badge", "success", Duration::from_secs(5)).await;
        for action in ["cancel", "restart", "approve", "decline"] {
            assert!(!browser.exists(&format!("form[action$='/{action}']")).await, "no {action} control for a reader");
        }
        // The reader posting anyway (with the session's token) is refused by role.
        let token = browser.run("return document.querySelector('meta[name=csrf-token]').content;", vec![]).await;
        let status = browser
            .run(
                "return fetch('/repos/acme/app/builds/1/restart', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: '_csrf=' + arguments[0], redirect: 'manual'}).then(r => r.status);",
                vec![token],
            )
            .await;
        assert_eq!(status, json!(403), "a reader cannot restart");

        // A writer's session without the CSRF token (what a forged cross-site form sends).
        browser.client.delete_all_cookies().await.unwrap();
        browser.sign_in("writer", PASSWORD).await;
        for (path, body) in [("/repos/acme/app/run", "branch=main"), ("/repos/acme/app/builds/1/restart", ""), ("/logout", "")] {
            let status = browser
                .run(
                    "return fetch(arguments[0], {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: arguments[1], redirect: 'manual'}).then(r => r.status);",
                    vec![json!(path), json!(body)],
                )
                .await;
            assert_eq!(status, json!(403), "POST {path} without the CSRF token");
        }
        let status = browser
            .run(
                "return fetch('/api/v1/repos/acme/app/builds', {method: 'POST', headers: {'content-type': 'application/json'}, body: '{\"branch\":\"main\"}'}).then(r => r.status);",
                vec![],
            )
            .await;
        assert_eq!(status, json!(403), "the API refuses a cookie session's POST without the CSRF header");
    })
    .await;
    let (_, builds) = cluster.api(reqwest::Method::GET, "/api/v1/repos/acme/app/builds", None).await;
    assert_eq!(builds.as_array().map(Vec::len), Some(1), "no forged build was started: {builds}");
}

const SECRET_PIPELINE: &str = "steps:
  deploy:
    image: gantry-test/busybox:latest
    environment:
      TOKEN:
        from_secret: deploy_token
    commands:
      - echo token=$TOKEN
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_added_in_the_browser_is_listed_by_name_and_its_value_is_in_no_page_or_answer() {
    const VALUE: &str = "value-typed-into-the-browser-7c1e";
    let cluster = Cluster::start(&[]).await;
    let (url, _work) = remote(cluster.dir.path(), &[(".woodpecker.yml", SECRET_PIPELINE)]);
    cluster.add_repo(&url, json!({})).await;
    add_user(&cluster, "keeper", false).await;
    add_member(&cluster, "keeper", "admin").await;

    with_browser("secret_in_the_browser", &cluster, async |browser| {
        browser.sign_in("keeper", PASSWORD).await;
        browser.go("/repos/acme/app/settings").await;
        browser.check_accessibility("the settings page").await;
        browser.fill("#secret-name", "deploy_token").await;
        browser.fill("#secret-value", VALUE).await;
        browser.click("form[action='/repos/acme/app/secrets'] button[type=submit]").await;
        browser.wait_text(".notice", "Secret saved", Duration::from_secs(10)).await;
        browser.wait_text("#secrets table", "deploy_token", Duration::from_secs(5)).await;
        browser.document("settings").await;
        let mut seen = browser.client.source().await.unwrap();

        // A build that prints it: the log shows it masked.
        browser.go("/repos/acme/app").await;
        browser.click("#run summary").await;
        browser.click("#run button[type=submit]").await;
        browser
            .wait_for("the build page", Duration::from_secs(10), async |browser| {
                browser.path().await.starts_with("/repos/acme/app/builds/1")
            })
            .await;
        browser.wait_text("#live h1 .badge", "success", Duration::from_secs(120)).await;
        browser.click(".step a[href*='step=']:not([aria-current])").await;
        browser.wait_text(".log-window .line", "token=", Duration::from_secs(10)).await;
        seen.push_str(&browser.client.source().await.unwrap());
        // What the page's script fetched, fetched again the same way.
        let fetched = browser
            .run(
                "const log = document.getElementById('log');
                 return Promise.all([fetch(log.dataset.linesUrl + '&from=0&limit=100').then(r => r.text()),
                                     fetch(document.getElementById('live').dataset.livePart).then(r => r.text()),
                                     fetch('/api/v1/repos/acme/app/secrets').then(r => r.text())]).then(parts => parts.join('\\n'));",
                vec![],
            )
            .await;
        seen.push_str(fetched.as_str().unwrap_or_default());
        for path in ["/", "/repos/acme/app"] {
            browser.go(path).await;
            seen.push_str(&browser.client.source().await.unwrap());
        }
        assert!(seen.contains("deploy_token") && seen.contains("token=********"), "the name is listed and the log masked");
        assert!(!seen.contains(VALUE), "the secret's value came back");
    })
    .await;
    assert!(!cluster.log("server.log").contains(VALUE) && !cluster.log("agent.log").contains(VALUE), "no log holds the value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_line_log_opens_and_its_last_line_is_reachable() {
    let pipeline = "steps:\n  loud:\n    image: gantry-test/busybox:latest\n    commands:\n      - seq 1 1000000\n";
    let cluster = Cluster::start(&[]).await;
    let (url, _work) = remote(cluster.dir.path(), &[(".woodpecker.yml", pipeline)]);
    cluster.add_repo(&url, json!({})).await;
    add_user(&cluster, "dev", false).await;
    add_member(&cluster, "dev", "read").await;
    let (status, answer) = cluster.api(reqwest::Method::POST, "/api/v1/repos/acme/app/builds", Some(json!({ "branch": "main" }))).await;
    assert_eq!(status, 201, "{answer}");
    let build = cluster.wait_build(1, Duration::from_secs(300), "a million lines", |build| build["state"] == "success").await;
    let step_id = crate::e2e::step(&build, "loud")["id"].as_i64().unwrap();

    with_browser("million_lines", &cluster, async |browser| {
        browser.sign_in("dev", PASSWORD).await;
        browser.go(&format!("/repos/acme/app/builds/1?step={step_id}")).await;
        // The first screen, drawn from the first range.
        browser.wait_text(".log-window .line", "+ seq 1 1000000", Duration::from_secs(10)).await;
        let total = browser.run("return document.querySelector('[data-log-count]').textContent;", vec![]).await;
        assert!(total.as_str().unwrap().starts_with("1,000,001 lines"), "the command line and a million numbers: {total}");
        let lines_in_page = browser.run("return document.querySelectorAll('#log .line').length;", vec![]).await;
        assert!(lines_in_page.as_u64().unwrap() < 200, "only a screenful is in the page: {lines_in_page}");
        browser.click("[data-log-action='bottom']").await;
        browser.wait_text(&format!("#step-{step_id}-L1000001"), "1000000", Duration::from_secs(10)).await;
        // And a line in the middle, by permalink.
        browser.go(&format!("/repos/acme/app/builds/1?step={step_id}#step-{step_id}-L500001")).await;
        browser.wait_text(&format!("#step-{step_id}-L500001.current"), "500000", Duration::from_secs(10)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_and_account_pages_pass_the_accessibility_check() {
    let cluster = Cluster::start(&[]).await;
    add_user(&cluster, "root", true).await;
    with_browser("admin_and_account", &cluster, async |browser| {
        browser.sign_in("root", PASSWORD).await;
        for (path, marker) in [("/admin/agents", "e2e-agent"), ("/admin/users", "root"), ("/admin/queue", "Queue"), ("/account", "root")] {
            browser.go(path).await;
            browser.wait_text("main", marker, Duration::from_secs(10)).await;
            browser.check_accessibility(path).await;
        }
        browser.document("account").await;
    })
    .await;
}
