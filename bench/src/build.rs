//! An image build step against `docker build && docker push` from a shell: the same context and
//! Dockerfile, pushed to the same local registry, side by side on the same engine, alternating.
//! Cold (no layer cache: `no_cache` / `--no-cache`) and warm (everything cached, layers already
//! in the registry).
//!
//! Needs a running engine, the test image and the open test registry on 127.0.0.1:5000
//! (`scripts/setup.sh`), and a release build of the binary (`cargo build --release -p cli`).

// A benchmark that cannot set up stops loudly, like a test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "gantry-test/busybox:latest";
const REGISTRY: &str = "127.0.0.1:5000";
/// Files the context holds besides the Dockerfile, and the bytes of each.
const CONTEXT_FILES: usize = 200;
const FILE_BYTES: usize = 16 * 1024;

fn gantry_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/gantry");
    assert!(path.exists(), "build the binary first: cargo build --release -p cli");
    path
}

/// A Dockerfile with what real ones have: a layer made by `RUN` (8 MiB, different every cold
/// build), the application copied in, a `RUN` over it.
fn dockerfile() -> String {
    format!(
        "FROM {IMAGE}\nRUN head -c 8388608 /dev/urandom > /blob\nCOPY app /app\nRUN ls /app | wc -l > /app-count\nCMD [\"cat\", \"/app-count\"]\n"
    )
}

/// The context is a git repository with one commit, as in CI: the images' `created` label is the
/// commit's time, so the warm case is a rebuild of the same commit.
fn commit(dir: &Path) {
    for args in
        [&["init", "-q"][..], &["add", "-A"], &["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "context"]]
    {
        let status = Command::new("git").args(args).current_dir(dir).status().unwrap();
        assert!(status.success(), "git {args:?}");
    }
}

fn write_context(dir: &Path) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile()).unwrap();
    for index in 0..CONTEXT_FILES {
        let line = format!("file {index}: some application source text\n");
        let text: String = line.repeat(FILE_BYTES / line.len() + 1);
        std::fs::write(dir.join("app").join(format!("source-{index}.txt")), &text[..FILE_BYTES]).unwrap();
    }
}

fn pipeline(no_cache: bool) -> String {
    format!("steps:\n  image:\n    build:\n      image: {REGISTRY}/bench/gantry\n      tags: [latest]\n      no_cache: {no_cache}\n")
}

fn baseline_script(no_cache: bool) -> String {
    let flag = if no_cache { " --no-cache" } else { "" };
    format!(
        "set -e\ndocker build{flag} -q -t {REGISTRY}/bench/shell:latest . >/dev/null\ndocker push -q {REGISTRY}/bench/shell:latest >/dev/null\n"
    )
}

/// How long `command` took, and its standard output.
fn time(mut command: Command) -> (Duration, String) {
    let started = Instant::now();
    let output = command.stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("run");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (started.elapsed(), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The build step's own duration, from `gantry exec --output json`'s `step_finished` event.
fn step_duration(events: &str) -> Duration {
    events
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "step_finished" && event["step"] == "image")
        .and_then(|event| event["duration_ms"].as_u64())
        .map(Duration::from_millis)
        .expect("the build step's end")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn compare(name: &str, no_cache: bool, rounds: usize) {
    let dir = std::env::temp_dir().join(format!("gantry-bench-build-{}-{}", name, std::process::id()));
    write_context(&dir);
    std::fs::write(dir.join(".woodpecker.yml"), pipeline(no_cache)).unwrap();
    commit(&dir);
    let script = baseline_script(no_cache);
    let gantry = gantry_binary();
    let run_gantry = || {
        let mut command = Command::new(&gantry);
        command.args(["exec", "--output", "json"]).current_dir(&dir).env("CI", "true");
        let (whole, events) = time(command);
        (whole, step_duration(&events))
    };
    let run_baseline = || {
        let mut command = Command::new("sh");
        command.args(["-c", &script]).current_dir(&dir);
        time(command).0
    };
    // Warm up both: binary pages, and for the warm case the cache and the registry's layers.
    run_gantry();
    run_baseline();
    let (mut whole, mut step, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    let mut run_ours = || {
        let (run, build) = run_gantry();
        whole.push(run);
        step.push(build);
    };
    for round in 0..rounds {
        if round % 2 == 0 {
            baseline.push(run_baseline());
            run_ours();
        } else {
            run_ours();
            baseline.push(run_baseline());
        }
    }
    let (whole, step, baseline) = (median(whole), median(step), median(baseline));
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    println!(
        "{name:<5} docker build && docker push {:>6.0} ms | gantry build step {:>6.0} ms ({:.2}x) | whole gantry exec {:>6.0} ms ({:.2}x)",
        ms(baseline),
        ms(step),
        ms(step) / ms(baseline),
        ms(whole),
        ms(whole) / ms(baseline)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(7);
    println!(
        "build and push of one context ({CONTEXT_FILES} files of {} KiB, an 8 MiB RUN layer) to {REGISTRY}; medians of {rounds} alternating rounds",
        FILE_BYTES / 1024
    );
    compare("cold", true, rounds);
    compare("warm", false, rounds);
    for image in ["bench/gantry:latest", "bench/shell:latest"] {
        let _ = Command::new("docker").args(["rmi", &format!("{REGISTRY}/{image}")]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}
