//! Engines of a test's own: a Docker engine and a PostgreSQL cluster that a fault test may stop
//! and start while the shared ones, which other tests use at the same time, run on untouched.
//!
//! Each is a guard: dropping it (a test that ends, or panics) stops what it started and removes
//! its folder, whatever state the test left it in.

use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) use nix::sys::signal::{Signal, kill};
pub(crate) use nix::unistd::Pid;

/// The process id of `process`, for signals.
pub(crate) fn pid_of(process: &Child) -> Pid {
    Pid::from_raw(i32::try_from(process.id()).expect("process ids fit in an i32"))
}

/// How long an engine or a cluster gets to answer after it was started.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a stopped process gets to exit before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// A `dockerd` of the test's own, beside the shared engine.
///
/// Everything that engine keeps is in one temporary folder: its data (`--data-root`, on the
/// `vfs` driver: plain copies, no overlay mounts), its state and its containerd (`--exec-root`),
/// its pid file, its socket and its log. It runs in a network namespace of its
/// own, made for it and kept for its life: its default bridge, its networks and their subnets
/// are invisible to the shared engine, whatever they are called. (Sharing the host's namespace
/// does not work: `--bridge=none`, the way to keep a second engine off the shared engine's
/// `docker0`, makes dockerd delete the interface named `docker0` at start, the shared engine's.)
/// Its socket is a path, reachable from every namespace.
///
/// `kill` and `stop` take it down as a crash or a shutdown would; `restart` starts it again on
/// the same folders and in the same namespace, with the containers, networks and volumes it had.
pub(crate) struct PrivateDockerd {
    dir: tempfile::TempDir,
    process: Option<Child>,
    /// The engine's network namespace, held open between a stop and a restart.
    network_namespace: Option<std::fs::File>,
}

impl PrivateDockerd {
    /// Starts a private engine and waits until it answers. Panics, with its log, when it does
    /// not answer within a minute.
    pub(crate) fn start() -> PrivateDockerd {
        let dir = tempfile::Builder::new().prefix("gantry-dockerd-").tempdir().unwrap();
        // An empty configuration file: the shared engine's /etc/docker/daemon.json (hosts, data
        // root, pools) must not reach this one.
        std::fs::write(dir.path().join("daemon.json"), "{}\n").unwrap();
        let mut engine = PrivateDockerd { dir, process: None, network_namespace: None };
        engine.launch().unwrap_or_else(|problem| panic!("{problem}"));
        engine
    }

    /// The address to give `DOCKER_HOST` or `docker -H`.
    pub(crate) fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Runs the docker CLI against this engine.
    pub(crate) fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").args(["-H", &self.host()]).args(args).output().expect("the docker CLI runs")
    }

    /// Copies `image` from the shared engine into this one (nothing is ever pulled).
    pub(crate) fn load_image(&self, image: &str) {
        let mut save = Command::new("docker").args(["save", image]).stdout(Stdio::piped()).spawn().expect("docker save runs");
        let load = Command::new("docker")
            .args(["-H", &self.host(), "load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load runs");
        assert!(save.wait().unwrap().success(), "docker save {image} failed");
        assert!(load.status.success(), "docker load of {image} failed: {}", String::from_utf8_lossy(&load.stderr));
    }

    /// Kills the engine (SIGKILL) as a crash would: its containers go on running in their shims
    /// without it until it starts again, and clients lose their connections at once.
    pub(crate) fn kill(&mut self) {
        self.signal_and_reap(Signal::SIGKILL);
    }

    /// Stops the engine (SIGTERM) as a shutdown does: it closes its API at once, then stops its
    /// containers and exits.
    pub(crate) fn stop(&mut self) {
        self.signal_and_reap(Signal::SIGTERM);
    }

    /// Starts the engine again on the same folders and waits until it answers.
    pub(crate) fn restart(&mut self) {
        assert!(self.process.is_none(), "the private engine still runs");
        self.launch().unwrap_or_else(|problem| panic!("{problem}"));
    }

    /// The end of the engine's log, for failure messages.
    pub(crate) fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts dockerd and waits until it answers; the problem, with its log, when it does not.
    fn launch(&mut self) -> Result<(), String> {
        let path = |name: &str| self.dir.path().join(name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(path("dockerd.log")).unwrap();
        // The pid file of a killed engine names a process that is gone (or, reused, another one).
        let _ = std::fs::remove_file(path("dockerd.pid"));
        // So may that of the containerd it ran, which dies with it: until the machine's init
        // reaps it, its process id still answers, and dockerd would wait for that containerd
        // instead of starting its own.
        let containerd_pid = path("exec/containerd/containerd.pid");
        if let Ok(text) = std::fs::read_to_string(&containerd_pid)
            && !text.trim().parse().is_ok_and(|pid: u32| process_runs_below(pid, self.dir.path()))
        {
            let _ = std::fs::remove_file(&containerd_pid);
        }
        // The network namespace is made by `unshare` on the first start and entered again by
        // `nsenter` (through the descriptor this process holds) on a restart; `setpriv` has the
        // engine stopped should the test process die without dropping the guard. The tools are
        // util-linux's, so the test needs no `unsafe` of its own.
        let mut command = Command::new("setpriv");
        command.args(["--pdeathsig", "TERM", "--"]);
        match &self.network_namespace {
            Some(namespace) => {
                command.arg("nsenter").arg(format!("--net=/proc/{}/fd/{}", std::process::id(), namespace.as_raw_fd()));
            }
            None => {
                command.args(["unshare", "--net"]);
            }
        }
        command
            .args(["--", "dockerd", "--config-file"])
            .arg(path("daemon.json"))
            .arg("--data-root")
            .arg(path("data"))
            .arg("--exec-root")
            .arg(path("exec"))
            .arg("--pidfile")
            .arg(path("dockerd.pid"))
            .arg("--host")
            .arg(self.host())
            // Nothing leaves its namespace: it needs no rules to route containers out.
            .args(["--storage-driver", "vfs", "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut process = command.spawn().map_err(|error| format!("dockerd does not run (scripts/docker-up.sh installs it): {error}"))?;
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if self.docker(&["version", "--format", "{{.Server.Version}}"]).status.success() {
                // Read once the engine answers: by then `unshare` has made the namespace and
                // the process is dockerd in it.
                if self.network_namespace.is_none() {
                    let namespace = std::fs::File::open(format!("/proc/{}/ns/net", process.id()))
                        .map_err(|error| format!("cannot hold the private engine's network namespace: {error}"))?;
                    let ours = std::fs::metadata("/proc/self/ns/net").map_err(|error| error.to_string())?;
                    if namespace.metadata().map_err(|error| error.to_string())?.ino() == ours.ino() {
                        wait_or_kill(&mut process, Duration::ZERO);
                        return Err("the private dockerd runs in the host's network namespace".into());
                    }
                    self.network_namespace = Some(namespace);
                }
                self.process = Some(process);
                return Ok(());
            }
            if let Ok(Some(status)) = process.try_wait() {
                return Err(format!("the private dockerd exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                wait_or_kill(&mut process, Duration::ZERO);
                return Err(format!("the private dockerd did not answer within {START_LIMIT:?}:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal_and_reap(&mut self, signal: Signal) {
        let Some(mut process) = self.process.take() else { return };
        let _ = kill(pid_of(&process), signal);
        wait_or_kill(&mut process, STOP_LIMIT);
        // Its socket file stays behind: clients then get "connection refused", as from an
        // engine that went away.
    }

    /// Removes every container, network and volume the engine holds: all of them are the test's.
    fn remove_everything(&self) {
        let ids = |args: &[&str]| -> Vec<String> {
            String::from_utf8_lossy(&self.docker(args).stdout).split_whitespace().map(str::to_owned).collect()
        };
        let containers = ids(&["ps", "-aq"]);
        if !containers.is_empty() {
            self.docker(&[&["rm", "-f", "-v"], containers.iter().map(String::as_str).collect::<Vec<_>>().as_slice()].concat());
        }
        let networks = ids(&["network", "ls", "-q", "--filter", "type=custom"]);
        if !networks.is_empty() {
            self.docker(&[&["network", "rm"], networks.iter().map(String::as_str).collect::<Vec<_>>().as_slice()].concat());
        }
        let volumes = ids(&["volume", "ls", "-q"]);
        if !volumes.is_empty() {
            self.docker(&[&["volume", "rm", "-f"], volumes.iter().map(String::as_str).collect::<Vec<_>>().as_slice()].concat());
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        // An engine the test left down is started once more, so that it kills and removes the
        // containers its shims still run; then everything goes, then the engine.
        if self.process.is_none()
            && let Err(problem) = self.launch()
        {
            eprintln!("the private dockerd did not start again for its cleanup: {problem}");
        }
        if self.process.is_some() {
            self.remove_everything();
            self.stop();
        }
        // What may outlive the engine: its containerd or shims (killed by process id), and its
        // bind mount of the data folder.
        for pid in processes_mentioning(self.dir.path()) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        unmount_below(self.dir.path());
    }
}

/// The index of the host's network interface `name`, if there is one: a test that starts a
/// private engine checks that the shared engine's `docker0` is still the same interface.
pub(crate) fn host_interface_index(name: &str) -> Option<u32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex")).ok()?.trim().parse().ok()
}

/// A PostgreSQL cluster of the test's own, beside the shared one: made with `initdb` in a
/// temporary folder, listening on a free port on 127.0.0.1 only (its socket in that folder),
/// run as the `postgres` user when the test runs as root (PostgreSQL refuses root). `stop` and
/// `start_again` restart it; dropping it stops it and removes its folder.
pub(crate) struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

/// The superuser `initdb` makes; it signs in without a password (only the test reaches the
/// cluster: its port is on 127.0.0.1, its socket in a private folder).
const POSTGRES_USER: &str = "gantry";

impl PrivatePostgres {
    /// A new running cluster; `None` when the PostgreSQL variants of the tests are skipped
    /// (`GANTRY_TEST_SKIP_POSTGRES=1`).
    pub(crate) fn start() -> Option<PrivatePostgres> {
        if std::env::var("GANTRY_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
            return None;
        }
        let bin = postgres_bin_dir().expect("PostgreSQL's initdb is installed (scripts/postgres-up.sh installs it)");
        let dir = tempfile::Builder::new().prefix("gantry-postgres-").tempdir().unwrap();
        if let Some((uid, gid)) = run_as_postgres() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let cluster = PrivatePostgres { dir, bin, port: crate::e2e::free_port(), running: false };
        let data = cluster.data();
        let output = cluster.run(
            "initdb",
            &["--pgdata", &data, "--username", POSTGRES_USER, "--auth", "trust", "--encoding", "UTF8", "--no-sync", "--no-instructions"],
        );
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let mut cluster = cluster;
        cluster.start_again();
        Some(cluster)
    }

    /// The URL of `database` on this cluster.
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://{POSTGRES_USER}@127.0.0.1:{}/{database}", self.port)
    }

    pub(crate) fn create_database(&self, name: &str) {
        let output = Command::new("psql")
            .args([self.url("postgres").as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("psql runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    /// Stops the cluster: `fast` (sessions ended, a clean shutdown) or `immediate` (as a crash:
    /// recovery from the write-ahead log at the next start).
    pub(crate) fn stop(&mut self, mode: &str) {
        let data = self.data();
        let output = self.run("pg_ctl", &["--pgdata", &data, "--mode", mode, "--wait", "stop"]);
        assert!(output.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&output.stderr));
        self.running = false;
    }

    /// Starts the cluster (again, on the same data and port) and waits until it takes sessions.
    pub(crate) fn start_again(&mut self) {
        let (data, log) = (self.data(), self.dir.path().join("postgres.log").display().to_string());
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let timeout = START_LIMIT.as_secs().to_string();
        let output =
            self.run("pg_ctl", &["--pgdata", &data, "--log", &log, "--options", &options, "--wait", "--timeout", &timeout, "start"]);
        assert!(
            output.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's programs, as the `postgres` user when this process is root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if run_as_postgres().is_some() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // A folder the postgres user may enter: the test's own may be private to root.
        command.args(args).current_dir(self.dir.path()).stdin(Stdio::null()).output().expect("PostgreSQL's programs run")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let _ = self.run("pg_ctl", &["--pgdata", &data, "--mode", "immediate", "--wait", "stop"]);
        }
    }
}

/// The `bin` folder of the newest PostgreSQL under /usr/lib/postgresql (Debian), else the one
/// holding `initdb` on the PATH.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join("initdb").exists())
}

/// The `postgres` user's ids when this process is root (PostgreSQL will not run as root).
fn run_as_postgres() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres").ok().flatten();
    let user = user.expect("the test runs as root and there is no `postgres` user to run PostgreSQL as");
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// Waits up to `limit` for `process` to exit, then kills it.
fn wait_or_kill(process: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !matches!(process.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = process.kill();
    let _ = process.wait();
}

/// Whether process `pid` runs (is not a zombie) with a command line naming something under `dir`.
fn process_runs_below(pid: u32, dir: &Path) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !matches!(state, None | Some("Z" | "X")) && String::from_utf8_lossy(&command_line).contains(&dir.display().to_string())
}

/// Processes whose command line names something under `dir`.
fn processes_mentioning(dir: &Path) -> Vec<Pid> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = Pid::from_raw(entry.file_name().to_str()?.parse().ok()?);
            let command_line = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&command_line).contains(&needle).then_some(pid)
        })
        .filter(|pid| *pid != Pid::this())
        .collect()
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_below(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> =
        mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).filter(|point| Path::new(point).starts_with(dir)).collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
    }
}
