//! Engines of a test's own: a Docker engine and a PostgreSQL cluster that a fault test may stop
//! and start while the shared ones, which other tests use at the same time, run on untouched.
//!
//! Each is a guard: dropping it (a test that ends, or panics) stops what it started and removes
//! its folder, whatever state the test left it in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
pub struct PrivateDockerd {
    dir: tempfile::TempDir,
    process: Option<Child>,
    /// The engine's network namespace, held open between a stop and a restart.
    network_namespace: Option<std::fs::File>,
}

impl PrivateDockerd {
    /// Starts a private engine and waits until it answers. Panics, with its log, when it does
    /// not answer within a minute.
    pub fn start() -> PrivateDockerd {
        let dir = tempfile::Builder::new().prefix("gantry-dockerd-").tempdir().unwrap();
        // An empty configuration file: the shared engine's /etc/docker/daemon.json (hosts, data
        // root, pools) must not reach this one.
        std::fs::write(dir.path().join("daemon.json"), "{}\n").unwrap();
        let mut engine = PrivateDockerd { dir, process: None, network_namespace: None };
        engine.launch().unwrap_or_else(|problem| panic!("{problem}"));
        engine
    }

    /// The address to give `DOCKER_HOST` or `docker -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Runs the docker CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").args(["-H", &self.host()]).args(args).output().expect("the docker CLI runs")
    }

    /// Copies `image` from the shared engine into this one (nothing is ever pulled).
    pub fn load_image(&self, image: &str) {
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
    pub fn kill(&mut self) {
        self.signal_and_reap(libc::SIGKILL);
    }

    /// Stops the engine (SIGTERM) as a shutdown does: it closes its API at once, then stops its
    /// containers and exits.
    pub fn stop(&mut self) {
        self.signal_and_reap(libc::SIGTERM);
    }

    /// Starts the engine again on the same folders and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "the private engine still runs");
        self.launch().unwrap_or_else(|problem| panic!("{problem}"));
    }

    /// The end of the engine's log, for failure messages.
    pub fn log(&self) -> String {
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
        let mut command = Command::new("dockerd");
        command
            .arg("--config-file")
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
        let namespace = self.network_namespace.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        unsafe {
            use std::os::unix::process::CommandExt as _;
            command.pre_exec(move || {
                match namespace {
                    Some(namespace) => {
                        if libc::setns(namespace, libc::CLONE_NEWNET) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    None => {
                        if libc::unshare(libc::CLONE_NEWNET) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        bring_loopback_up()?;
                    }
                }
                // Should the test process die without dropping the guard, the engine goes too.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut process = command.spawn().map_err(|error| format!("dockerd does not run (scripts/docker-up.sh installs it): {error}"))?;
        if self.network_namespace.is_none() {
            let namespace = std::fs::File::open(format!("/proc/{}/ns/net", process.id()));
            self.network_namespace =
                Some(namespace.map_err(|error| format!("cannot hold the private engine's network namespace: {error}"))?);
        }
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if self.docker(&["version", "--format", "{{.Server.Version}}"]).status.success() {
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

    fn signal_and_reap(&mut self, signal: libc::c_int) {
        let Some(mut process) = self.process.take() else { return };
        unsafe { libc::kill(process.id() as libc::pid_t, signal) };
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
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unmount_below(self.dir.path());
    }
}

/// Brings up `lo` in this process's network namespace (a new one has it down). Only system
/// calls: it runs between fork and exec.
unsafe fn bring_loopback_up() -> std::io::Result<()> {
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        let mut result = libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request);
        if result == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(socket, libc::SIOCSIFFLAGS, &request);
        }
        let error = std::io::Error::last_os_error();
        libc::close(socket);
        if result == 0 { Ok(()) } else { Err(error) }
    }
}

/// The index of the host's network interface `name`, if there is one: a test that starts a
/// private engine checks that the shared engine's `docker0` is still the same interface.
pub fn host_interface_index(name: &str) -> Option<u32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex")).ok()?.trim().parse().ok()
}

/// A PostgreSQL cluster of the test's own, beside the shared one: made with `initdb` in a
/// temporary folder, listening on a free port on 127.0.0.1 only (its socket in that folder),
/// run as the `postgres` user when the test runs as root (PostgreSQL refuses root). `stop` and
/// `start_again` restart it; dropping it stops it and removes its folder.
pub struct PrivatePostgres {
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
    pub fn start() -> Option<PrivatePostgres> {
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
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{POSTGRES_USER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn create_database(&self, name: &str) {
        let output = Command::new("psql")
            .args([self.url("postgres").as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("psql runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    /// Stops the cluster: `fast` (sessions ended, a clean shutdown) or `immediate` (as a crash:
    /// recovery from the write-ahead log at the next start).
    pub fn stop(&mut self, mode: &str) {
        let data = self.data();
        let output = self.run("pg_ctl", &["--pgdata", &data, "--mode", mode, "--wait", "stop"]);
        assert!(output.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&output.stderr));
        self.running = false;
    }

    /// Starts the cluster (again, on the same data and port) and waits until it takes sessions.
    pub fn start_again(&mut self) {
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
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!entry.is_null(), "the test runs as root and there is no `postgres` user to run PostgreSQL as");
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
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
fn processes_mentioning(dir: &Path) -> Vec<libc::pid_t> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let command_line = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&command_line).contains(&needle).then_some(pid)
        })
        .filter(|pid| *pid != std::process::id() as libc::pid_t)
        .collect()
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_below(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> =
        mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).filter(|point| Path::new(point).starts_with(dir)).collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let point = std::ffi::CString::new(point).unwrap();
        unsafe { libc::umount2(point.as_ptr(), libc::MNT_DETACH) };
    }
}
