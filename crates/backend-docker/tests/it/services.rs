//! Services: reachable by their aliases from the workflow's other containers, probed for
//! readiness with a command run inside them, stopped at the end.

use std::time::{Duration, Instant};

use backend_docker::{DockerBackendOptions, DockerStep, NetworkPolicy};
use runtime::Backend;

use crate::support::{TestRun, collect, service_step, shell_step};

/// The longest a wait for the engine may take here before the test fails instead of hanging;
/// what it waits for takes well under a second on an idle engine, the shared one may be busy.
const CEILING: Duration = Duration::from_secs(30);

/// A web server that ends on SIGTERM: the shell is the container's first process, which gets no
/// default signal handlers, so it traps TERM itself.
const HTTP_SERVER: &str =
    "trap 'exit 0' TERM; mkdir -p /www && echo 'hello from the service' > /www/index.html && httpd -f -p 8080 -h /www & wait";

/// Probes the web server until it answers, within the ceiling.
async fn wait_until_serving(test: &TestRun, service: &DockerStep) {
    let ready = ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"].map(String::from);
    let deadline = Instant::now() + CEILING;
    while !test.backend.probe(service, &ready).await.unwrap() {
        assert!(Instant::now() < deadline, "the service was not ready within {CEILING:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_service_is_reached_by_its_alias_once_its_probe_passes() {
    let test = TestRun::new("service").await;
    let workflow = test.workflow("main").await;

    let (service, service_output) = test.start(&workflow, service_step("web server", HTTP_SERVER, &["web"])).await;
    wait_until_serving(&test, &service).await;

    let (output, exit_code) = test.run_step(&workflow, shell_step("client", "wget -q -O - http://web:8080/")).await;
    assert_eq!((output.stdout_text().as_str(), exit_code), ("hello from the service\n", 0));

    // A service gets a grace period (2 s by default) before it is killed. Its own TERM trap's
    // exit code says it ended on the signal within the grace; a kill at the grace's end is 137.
    tokio::time::timeout(CEILING, test.backend.stop(&service)).await.expect("stopping ends");
    let exit_code = tokio::time::timeout(CEILING, test.backend.wait(&service)).await.expect("waiting ends").unwrap();
    assert_eq!(exit_code, 0, "ended by its TERM trap, not killed");
    drop(collect(service_output).await);
    test.backend.remove(service).await;

    test.finish(workflow).await;
}

#[tokio::test]
async fn a_probe_is_true_exactly_when_its_command_exits_zero() {
    let test = TestRun::new("probe").await;
    let workflow = test.workflow("main").await;

    let (service, _output) = test.start(&workflow, service_step("idle", "exec sleep 300", &["idle"])).await;
    let shell = |script: &str| ["sh", "-c", script].map(String::from);
    assert!(test.backend.probe(&service, &shell("exit 0")).await.unwrap());
    assert!(!test.backend.probe(&service, &shell("exit 3")).await.unwrap());
    assert!(!test.backend.probe(&service, &["/no/such/program".to_string()]).await.unwrap());

    let outcome = test.engine().exec(service.container_id(), &shell("echo out; echo err >&2; exit 5")).await.unwrap();
    assert_eq!((outcome.exit_code, &outcome.stdout[..], &outcome.stderr[..]), (5, &b"out\n"[..], &b"err\n"[..]));

    test.finish(workflow).await;
}

/// Fetches the web server's page by the service's alias, giving up after 5 s.
const CLIENT: &str = "timeout 5 wget -q -O - http://web:8080/ 2>/dev/null";

#[tokio::test]
async fn containers_of_another_workflow_cannot_reach_the_service() {
    let test = TestRun::new("isolation").await;
    let with_service = test.workflow("with-service").await;
    let other = test.workflow("other").await;

    let (service, _output) = test.start(&with_service, service_step("web server", HTTP_SERVER, &["web"])).await;
    wait_until_serving(&test, &service).await;
    // Not `wget -T`: this busybox's wget crashes on it, which read as "unreachable" whatever the network did.
    let (output, _) = test.run_step(&other, shell_step("client", &format!("{CLIENT} || echo unreachable"))).await;
    assert_eq!(output.stdout_text(), "unreachable\n");
    // The same client in the service's own workflow does reach it.
    let (output, _) = test.run_step(&with_service, shell_step("client", CLIENT)).await;
    assert_eq!(output.stdout_text(), "hello from the service\n");

    test.backend.teardown(other).await;
    test.finish(with_service).await;
}

/// Prints which resolver the container uses: the engine's embedded one (127.0.0.11) is there on
/// a user-defined network only.
const WHICH_NETWORK: &str = "grep -q 'nameserver 127.0.0.11' /etc/resolv.conf && echo workflow-network || echo default-bridge";

#[tokio::test]
async fn when_addressed_steps_use_the_default_bridge_until_the_workflow_has_a_service() {
    let options = DockerBackendOptions { network_policy: NetworkPolicy::WhenAddressed, ..Default::default() };
    let test = TestRun::with_options("network-policy", options).await;

    // No service: steps run on the default bridge, like `docker run`.
    let plain = test.workflow("plain").await;
    assert_eq!(test.run_step(&plain, shell_step("where", WHICH_NETWORK)).await.0.stdout_text(), "default-bridge\n");

    // A step created before the service is, still reaches it by name once started.
    let with_service = test.workflow("with-service").await;
    let early = test
        .backend
        .prepare(&with_service, &shell_step("early", &format!("{WHICH_NETWORK}; wget -q -O - http://web:8080/")))
        .await
        .unwrap();
    let (service, _output) = test.start(&with_service, service_step("web server", HTTP_SERVER, &["web"])).await;
    wait_until_serving(&test, &service).await;
    let output = collect(test.backend.start(&early).await.unwrap()).await;
    assert_eq!(output.stdout_text(), "workflow-network\nhello from the service\n");
    assert_eq!(test.backend.wait(&early).await.unwrap(), 0);
    test.backend.remove(early).await;
    let (output, _) = test.run_step(&with_service, shell_step("late", WHICH_NETWORK)).await;
    assert_eq!(output.stdout_text(), "workflow-network\n");

    test.backend.teardown(plain).await;
    test.finish(with_service).await;
}
