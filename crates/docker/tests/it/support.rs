//! The harness: the engine, names and labels of one test's own, cleanup by label that checks
//! for leaks, a ceiling for every wait, and a container's output collected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use docker::{ContainerSpec, Engine, OutputFrames, OutputKind};
use futures_util::StreamExt;

/// Built by `scripts/docker-up.sh` with `docker import`: busybox applets, no registry needed.
pub(crate) const BUSYBOX: &str = "gantry-test/busybox:latest";
/// Carried by everything a test makes, with the test's own id as its value.
const LABEL: &str = "io.gantry.docker-it";
/// The longest any one wait on the engine may take before the test fails instead of hanging.
/// Every call here takes well under a second on an idle engine; the shared one may be busy.
pub(crate) const CEILING: Duration = Duration::from_secs(60);

static TEST_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's own corner of a shared engine. Dropping it removes whatever carries its label,
/// so a failing test leaks nothing either.
pub(crate) struct TestResources {
    pub(crate) engine: Engine,
    id: String,
}

impl TestResources {
    pub(crate) async fn new(test: &str) -> TestResources {
        let engine = within("connecting", Engine::connect())
            .await
            .unwrap_or_else(|error| panic!("these tests need a Docker engine ({error}); run scripts/docker-up.sh"));
        let number = TEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        TestResources { engine, id: format!("{}-{}-{number}", test.replace('_', "-"), std::process::id()) }
    }

    /// A name no other test or process uses: `gantry-docker-it-<test>-<pid>-<n>-<what>`.
    pub(crate) fn name(&self, what: &str) -> String {
        format!("gantry-docker-it-{}-{what}", self.id)
    }

    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL.to_owned(), self.id.clone())])
    }

    /// The label filter that finds what this test made.
    pub(crate) fn filter(&self) -> Vec<String> {
        vec![format!("{LABEL}={}", self.id)]
    }

    /// A labelled busybox container running `script` with `sh -c`.
    pub(crate) fn shell(&self, what: &str, script: &str) -> ContainerSpec {
        ContainerSpec {
            name: Some(self.name(what)),
            image: BUSYBOX.to_owned(),
            command: Some(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]),
            labels: self.labels(),
            ..ContainerSpec::default()
        }
    }

    /// Creates and starts `spec` with its output attached first (no byte is lost); returns the
    /// container's id and its output.
    pub(crate) async fn start(&self, spec: ContainerSpec) -> (String, OutputFrames) {
        let container = within("create", self.engine.create_container(spec)).await.expect("create");
        let output = within("attach", self.engine.attach_output(&container)).await.expect("attach");
        within("start", self.engine.start_container(&container)).await.expect("start");
        (container, output)
    }

    /// Runs `spec` to its end: its output and exit code. The container stays (for the caller to inspect or remove).
    pub(crate) async fn run(&self, spec: ContainerSpec) -> (String, Output, i64) {
        let (container, output) = self.start(spec).await;
        let output = collect(output).await;
        let exit_code = within("wait", self.engine.wait_container(&container)).await.expect("wait");
        (container, output, exit_code)
    }

    /// Removes what this test made and checks that nothing carrying its label is left.
    pub(crate) async fn finish(&self) {
        within("cleanup", self.engine.remove_labelled(&self.filter())).await.expect("cleanup");
        let left = within("listing", self.engine.list_labelled(&self.filter())).await.expect("listing");
        assert!(left.is_empty(), "test {} leaked: {left:#?}", self.id);
        let images = remove_labelled_images(&self.filter()[0]);
        assert!(images.is_empty(), "test {} leaked images: {images:?}", self.id);
    }
}

/// Removes every image carrying `label` (`key=value`), intermediate build images included, and
/// returns those still there. The crate lists no images, so the docker CLI does it here. An
/// image that is the parent of another cannot go first: removing the children removes their
/// untagged parents too, so a few rounds remove a whole chain.
pub(crate) fn remove_labelled_images(label: &str) -> Vec<String> {
    let list = || {
        let listed = std::process::Command::new("docker")
            .args(["image", "ls", "--all", "--quiet", "--no-trunc", "--filter", &format!("label={label}")])
            .output()
            .expect("the docker CLI runs");
        String::from_utf8_lossy(&listed.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    for _ in 0..10 {
        let images = list();
        if images.is_empty() {
            break;
        }
        let _ = std::process::Command::new("docker").args(["image", "rm", "--force"]).args(&images).output();
    }
    list()
}

impl Drop for TestResources {
    fn drop(&mut self) {
        // The test's runtime may be gone: clean up on a runtime and connection of our own.
        let filter = self.filter();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let engine = Engine::connect().await?;
                engine.remove_labelled(&filter).await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("cleanup failed: {error}");
        }
        remove_labelled_images(&self.filter()[0]);
    }
}

/// `future`, or a failed test once `CEILING` has passed.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(CEILING, future).await.unwrap_or_else(|_| panic!("{what} did not finish within {CEILING:?}"))
}

/// A container's output, each stream on its own.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Reads `frames` to their end (the container closed its streams), within the ceiling.
pub(crate) async fn collect(mut frames: OutputFrames) -> Output {
    let mut output = Output::default();
    within("reading output", async {
        while let Some(frame) = frames.next().await {
            let frame = frame.expect("an output frame");
            let text = String::from_utf8_lossy(&frame.bytes);
            match frame.kind {
                OutputKind::Stdout => output.stdout.push_str(&text),
                OutputKind::Stderr => output.stderr.push_str(&text),
            }
        }
    })
    .await;
    output
}

/// Reads `frames` until stdout holds `text` (the container got that far), within the ceiling.
pub(crate) async fn read_until(frames: &mut OutputFrames, text: &str) {
    let mut stdout = String::new();
    within(&format!("waiting for {text:?}"), async {
        while !stdout.contains(text) {
            let frame = frames.next().await.unwrap_or_else(|| panic!("the output ended before {text:?}: {stdout:?}"));
            let frame = frame.expect("an output frame");
            if frame.kind == OutputKind::Stdout {
                stdout.push_str(&String::from_utf8_lossy(&frame.bytes));
            }
        }
    })
    .await;
}
