//! `gantry exec` against the floor: a shell script of plain `docker run --rm` calls sharing one
//! volume, side by side on the same engine, alternating. Also: a step that prints 1 GiB, for
//! Gantry's peak memory and throughput.
//!
//! Needs a running Docker engine and the test image (`scripts/docker-up.sh`), and a release
//! build of the binary (`cargo build --release -p cli`).

// A benchmark that cannot set up stops loudly, like a test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "gantry-test/busybox:latest";
const STEPS: usize = 10;

fn gantry_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/gantry");
    assert!(path.exists(), "build the binary first: cargo build --release -p cli");
    path
}

fn pipeline(fan_out: bool) -> String {
    let mut text = String::from("skip_clone: true\nsteps:\n");
    for index in 0..STEPS {
        let depends = if fan_out { "    depends_on: []\n" } else { "" };
        text.push_str(&format!("  step-{index}:\n    image: {IMAGE}\n{depends}    commands:\n      - echo step {index} >> log.txt\n"));
    }
    text
}

fn floor_script(fan_out: bool) -> String {
    let mut script = String::from("set -e\nvolume=$(docker volume create)\n");
    for index in 0..STEPS {
        let background = if fan_out { " &" } else { "" };
        script.push_str(&format!(
            "docker run --rm -v \"$volume\":/workspace -w /workspace {IMAGE} sh -c 'echo step {index} >> log.txt' >/dev/null{background}\n"
        ));
    }
    if fan_out {
        script.push_str("wait\n");
    }
    script.push_str("docker volume rm \"$volume\" >/dev/null\n");
    script
}

fn time(mut command: Command) -> Duration {
    let started = Instant::now();
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status().expect("run");
    assert!(status.success(), "{command:?} failed");
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn compare(name: &str, fan_out: bool, rounds: usize) {
    let dir = tempfile_dir(name);
    std::fs::write(dir.join(".woodpecker.yml"), pipeline(fan_out)).unwrap();
    let script = floor_script(fan_out);
    let gantry = gantry_binary();
    let run_gantry = || {
        let mut command = Command::new(&gantry);
        command.args(["exec", "--parallel", &STEPS.to_string()]).current_dir(&dir).env("CI", "true");
        time(command)
    };
    let run_floor = || {
        let mut command = Command::new("sh");
        command.args(["-c", &script]);
        time(command)
    };
    // Warm up both (image cache, binary pages).
    run_gantry();
    run_floor();
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            floor.push(run_floor());
            ours.push(run_gantry());
        } else {
            ours.push(run_gantry());
            floor.push(run_floor());
        }
    }
    let (ours, floor) = (median(ours), median(floor));
    println!(
        "{name:<24} floor (docker run --rm) {:>7.0} ms | gantry exec {:>7.0} ms | ratio {:.2}x",
        floor.as_secs_f64() * 1e3,
        ours.as_secs_f64() * 1e3,
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gantry-bench-{}-{}", name.replace(' ', "-"), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Peak resident memory of finished children, in KiB (Linux reports kilobytes).
fn children_peak_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).map_or(0, |usage| usage.max_rss())
}

fn large_output() {
    const BYTES: u64 = 1 << 30;
    let dir = tempfile_dir("large output");
    let pipeline = format!(
        "skip_clone: true\nsteps:\n  print:\n    image: {IMAGE}\n    commands:\n      - yes 'a line of output that is a typical length for a build log, more or less' | head -c {BYTES}\n"
    );
    std::fs::write(dir.join(".woodpecker.yml"), pipeline).unwrap();
    let started = Instant::now();
    let status = Command::new(gantry_binary())
        .args(["exec"])
        .current_dir(&dir)
        .env("CI", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run gantry");
    let elapsed = started.elapsed();
    assert!(status.success(), "the 1 GiB step failed");
    println!(
        "step printing 1 GiB       {:>7.1} s  | {:>6.0} MB/s through gantry (masking, line splitting, plain output to /dev/null) | gantry peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        BYTES as f64 / 1e6 / elapsed.as_secs_f64(),
        children_peak_rss_kib() as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(7);
    // First, while gantry is the only child that has run: its peak memory is then the children's.
    if std::env::var_os("BENCH_SKIP_LARGE").is_none() {
        large_output();
    }
    println!("gantry exec against a script of `docker run --rm` calls sharing one volume; medians of {rounds} alternating rounds");
    compare("10 sequential steps", false, rounds);
    compare("10-way fan-out", true, rounds);
}
