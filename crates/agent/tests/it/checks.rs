//! What a job must have before anything runs: the trust its steps need, and every secret they
//! reference. A job lacking either fails with a reason and starts no container.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::{State, Trust};

use crate::server::FakeServer;
use crate::support::{TestAgent, job, plan};

struct Case {
    name: &'static str,
    pipeline: String,
    trust: Trust,
    secrets: &'static [(&'static str, &'static str)],
    state: State,
    /// Must be in the job's reason (empty: no reason expected).
    reason: &'static str,
}

fn step(extra: &str) -> String {
    format!(
        "skip_clone: true\nsteps:\n  build:\n    image: IMAGE\n{extra}    commands:\n      - echo hello\n  later:\n    image: IMAGE\n    commands:\n      - echo later\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trust_and_secrets_are_checked_before_anything_runs() {
    let host_dir = tempfile::tempdir().unwrap();
    let host_volume = format!("    volumes:\n      - {}:/host\n", host_dir.path().display());
    let cases = [
        Case {
            name: "privileged without trust",
            pipeline: step("    privileged: true\n"),
            trust: Trust::default(),
            secrets: &[],
            state: State::Error,
            reason: "step `build` needs trust: it is privileged",
        },
        Case {
            name: "host volume, trusted for privileges only",
            pipeline: step(&host_volume),
            trust: Trust { privileged: true, ..Trust::default() },
            secrets: &[],
            state: State::Error,
            reason: "an admin must allow host volumes for this repository",
        },
        Case {
            name: "host network without trust",
            pipeline: step("    network_mode: host\n"),
            trust: Trust::default(),
            secrets: &[],
            state: State::Error,
            reason: "it uses the host's network",
        },
        Case {
            name: "another container's network without trust",
            pipeline: step("    network_mode: container:gantry-other\n"),
            trust: Trust { privileged: true, volumes: true, ..Trust::default() },
            secrets: &[],
            state: State::Error,
            reason: "it joins the network of container `gantry-other`",
        },
        Case {
            name: "the engine's default bridge without trust",
            pipeline: step("    network_mode: bridge\n"),
            trust: Trust::default(),
            secrets: &[],
            state: State::Error,
            reason: "it joins the network `bridge` instead of its workflow's; an admin must allow networks",
        },
        Case {
            name: "dns without trust",
            pipeline: step("    dns: [10.0.0.53]\n"),
            trust: Trust { privileged: true, volumes: true, ..Trust::default() },
            secrets: &[],
            state: State::Error,
            reason: "it sets its own DNS servers (10.0.0.53); an admin must allow networks",
        },
        Case {
            name: "dns_search without trust",
            pipeline: step("    dns_search: [corp.example]\n"),
            trust: Trust::default(),
            secrets: &[],
            state: State::Error,
            reason: "it sets its own DNS search domains (corp.example)",
        },
        Case {
            name: "the host gateway as an extra host without trust",
            pipeline: step("    extra_hosts: [\"host.docker.internal:host-gateway\"]\n"),
            trust: Trust::default(),
            secrets: &[],
            state: State::Error,
            reason: "`host-gateway` is the host itself; an admin must allow networks",
        },
        Case {
            name: "devices, trusted for volumes only",
            pipeline: step("    devices: [/dev/null]\n"),
            trust: Trust { volumes: true, network: true, ..Trust::default() },
            secrets: &[],
            state: State::Error,
            reason: "it uses host devices (/dev/null): a device is the host's hardware; an admin must allow privileged steps",
        },
        Case {
            name: "dns and extra hosts, trusted for networks",
            pipeline: step("    dns: [10.0.0.53]\n    extra_hosts: [\"database:10.0.0.5\"]\n"),
            trust: Trust { network: true, ..Trust::default() },
            secrets: &[],
            state: State::Success,
            reason: "",
        },
        Case {
            name: "host volume, trusted for volumes",
            pipeline: step(&host_volume),
            trust: Trust { volumes: true, ..Trust::default() },
            secrets: &[],
            state: State::Success,
            reason: "",
        },
        Case {
            name: "missing secret",
            pipeline: step("    environment:\n      TOKEN:\n        from_secret: deploy_token\n"),
            trust: Trust::default(),
            secrets: &[("other", "value")],
            state: State::Error,
            reason: "step `build` of workflow `woodpecker` needs secret `deploy_token`, which was not given",
        },
    ];
    let server = FakeServer::start().await;
    let agent = TestAgent::start_with(&server.url, |config| config.capacity = 4);
    for (index, case) in cases.iter().enumerate() {
        let mut job = job(20 + index as i64, plan(&case.pipeline));
        job.trust = case.trust;
        job.secrets = case.secrets.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect::<BTreeMap<_, _>>();
        server.push_job(job);
    }
    for (index, case) in cases.iter().enumerate() {
        let id = 20 + index as i64;
        let done = server.done(id, Duration::from_secs(60)).await;
        assert_eq!(done.state, case.state, "{}: {done:?}", case.name);
        let reason = done.reason.clone().unwrap_or_default();
        assert!(reason.contains(case.reason), "{}: the reason `{reason}` does not say `{}`", case.name, case.reason);
        if case.state == State::Error {
            // Nothing ran: every step is reported skipped, with the reason.
            assert!(done.steps.iter().all(|step| step.state == State::Skipped), "{}: {done:?}", case.name);
            assert_eq!(done.steps.len(), 2, "{}: {done:?}", case.name);
            assert!(server.lock().lines(id, "build").is_empty(), "{}", case.name);
        } else {
            assert_eq!(server.lock().lines(id, "build"), ["+ echo hello", "hello"], "{}", case.name);
        }
    }
    agent.stop().await.unwrap();
}
