//! Harness for LineCheck's end-to-end tests: the real server binary serving the built PWA, and a
//! real headless Chromium (with WebGPU on SwiftShader and a fake camera) driven over WebDriver.
//!
//! `cargo xtask test` builds both and passes their paths in `LINECHECK_SERVER_BIN` and
//! `LINECHECK_DIST`; run alone, the tests fail with a message saying so.

mod camera_video;
pub mod kiosk;
pub mod supervisor;

pub use camera_video::{CameraVideo, FrameTruth, TruthBox, iou};

use anyhow::{Context, bail};
use fantoccini::{
    Client, ClientBuilder, Locator,
    actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction},
    wd::TimeoutConfiguration,
};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long one script run in the page (`eval`, `eval_async`) may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn required_path(var: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run the end-to-end tests through `cargo xtask test`")
    });
    assert!(path.exists(), "{var}={} does not exist", path.display());
    path
}

fn env_or(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into())
}

/// The LineCheck server binary on a free port with its own data directory.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        Self::start_with_data(data_dir)
    }

    /// Starts on a fresh port with an existing data directory (e.g. after a crash).
    pub fn start_with_data(data_dir: tempfile::TempDir) -> anyhow::Result<Self> {
        Self::start_at("127.0.0.1:0", data_dir)
    }

    /// Starts on `addr` (`host:port`) with an existing data directory: a server coming back
    /// where its kiosks' pages were loaded from.
    pub fn start_at(addr: &str, data_dir: tempfile::TempDir) -> anyhow::Result<Self> {
        let mut child = Command::new(required_path("LINECHECK_SERVER_BIN"))
            .args(["--addr", addr, "--static-dir"])
            .arg(required_path("LINECHECK_DIST"))
            .arg("--data-dir")
            .arg(data_dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the server")?;
        // The server prints its URL once it listens.
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                bail!("the server exited before listening: {:?}", child.wait()?);
            };
            if let Some(url) = line?.split("open ").nth(1) {
                break url.trim().to_string();
            }
        };
        // Keep reading: a server writing into a closed pipe would die of it.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self {
            child,
            url,
            data_dir,
        })
    }

    /// Kills the server (SIGKILL) and starts it again on the same address with the same data, so
    /// a page loaded from it reaches the new process as the same origin.
    pub fn crash_and_restart(self) -> anyhow::Result<Self> {
        let addr = self.addr();
        let data_dir = self.kill();
        Self::start_at(&addr, data_dir)
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }

    /// Kills the process as a power cut would (SIGKILL) and waits for it to be gone.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::TempDir::new().expect("tempdir");
        std::mem::replace(&mut self.data_dir, dir)
    }
}

/// Enrolls `station` in the database of `data_dir` with the server's own CLI
/// (`linecheck-server enroll-station`) and returns the token it prints.
pub fn enroll_station(data_dir: &std::path::Path, station: &str) -> anyhow::Result<String> {
    let output = Command::new(required_path("LINECHECK_SERVER_BIN"))
        .args(["enroll-station", "--station", station, "--data-dir"])
        .arg(data_dir)
        .output()
        .context("running enroll-station")?;
    if !output.status.success() {
        bail!(
            "enroll-station failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium flags that work headless on a machine with no GPU and no internet (shared/TOOLCHAIN.md).
fn chromium_args(profile: &std::path::Path, camera_video: Option<&std::path::Path>) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--enable-unsafe-webgpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--window-size=1280,800",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .chain(camera_video.map(|v| format!("--use-file-for-fake-video-capture={}", v.display())))
    .collect()
}

/// A headless Chromium with its own profile, driven through chromedriver.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Browser {
    /// A browser whose camera shows Chromium's built-in test pattern.
    pub async fn start() -> anyhow::Result<Self> {
        Self::launch(None, tempfile::tempdir()?).await
    }

    /// A browser whose camera plays `video` (y4m) in a loop.
    pub async fn start_with_camera(video: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Self::launch(video, tempfile::tempdir()?).await
    }

    /// Starts on an existing profile: the same browser coming back after `crash`.
    pub async fn start_with_profile(profile: tempfile::TempDir) -> anyhow::Result<Self> {
        Self::launch(None, profile).await
    }

    async fn launch(
        video: Option<&std::path::Path>,
        profile: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut driver = Command::new(env_or("CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can take Chromium down with it.
            .process_group(0)
            .spawn()
            .context("starting chromedriver (apt-get install chromium-driver)")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = driver.kill();
                bail!("chromedriver did not listen on port {port} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": env_or("CHROMIUM", "/usr/lib/chromium/chromium"),
                "args": chromium_args(profile.path(), video),
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("starting Chromium through chromedriver")?;
        // A script may wait on the server: a model upload is validated by running the model once
        // on the CPU, which in the tests' debug build took 12.6 s on this 2-core machine and
        // passed WebDriver's default 30 s under load. The tests' own deadlines bound every wait.
        client
            .update_timeouts(TimeoutConfiguration::new(Some(SCRIPT_TIMEOUT), None, None))
            .await
            .context("setting the WebDriver script timeout")?;
        Ok(Self {
            client,
            driver,
            profile,
        })
    }

    /// Runs `script` (a function body that returns a value) in the page.
    pub async fn eval(&self, script: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Runs an async function body in the page and returns what it resolves to.
    pub async fn eval_async(&self, body: &str) -> anyhow::Result<Value> {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async () => {{ {body} }})().then(done, (e) => done({{ error: String(e) }}));"
        );
        Ok(self.client.execute_async(&script, vec![]).await?)
    }

    /// Waits until `selector`'s `data-state` is no longer one of `transient`, and returns it.
    pub async fn settled_state(
        &self,
        selector: &str,
        transient: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let script = format!(
            "const el = document.querySelector({selector:?});
             return el ? el.dataset.state : null;"
        );
        loop {
            let state = self.eval(&script).await?;
            if let Some(state) = state.as_str()
                && !transient.contains(&state)
            {
                return Ok(state.to_string());
            }
            if Instant::now() > deadline {
                bail!("{selector} still in state {state} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matches `selector` (CSS), as pages render asynchronously.
    pub async fn wait_for(&self, selector: &str, timeout: Duration) -> anyhow::Result<()> {
        self.client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(selector))
            .await?;
        Ok(())
    }

    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        self.client
            .find(Locator::Css(selector))
            .await?
            .click()
            .await?;
        Ok(())
    }

    pub async fn text(&self, selector: &str) -> anyhow::Result<String> {
        Ok(self
            .client
            .find(Locator::Css(selector))
            .await?
            .text()
            .await?)
    }

    /// Replaces the content of an input as a user would: select all, type.
    pub async fn type_into(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let input = self.client.find(Locator::Css(selector)).await?;
        // Select all and delete, as a user does. WebDriver's clear() fires no `input` event, so
        // a controlled input re-rendered before the typing (by any state change, such as a
        // camera frame) got its old value back and the text was appended to it.
        input.send_keys("\u{E009}a\u{E000}\u{E003}").await?;
        input.send_keys(text).await?;
        Ok(())
    }

    /// Presses the mouse button at `from` and moves to `to` in a few steps (viewport CSS pixels),
    /// as real input through WebDriver: the page sees pointer events. The button stays down until
    /// `release_mouse`.
    pub async fn press_and_drag(&self, from: (i64, i64), to: (i64, i64)) -> anyhow::Result<()> {
        const STEPS: i64 = 4;
        let mut mouse =
            MouseActions::new("mouse".into())
                .then(move_to(from))
                .then(PointerAction::Down {
                    button: MOUSE_BUTTON_LEFT,
                });
        for step in 1..=STEPS {
            mouse = mouse.then(move_to((
                from.0 + (to.0 - from.0) * step / STEPS,
                from.1 + (to.1 - from.1) * step / STEPS,
            )));
        }
        self.client.perform_actions(mouse).await?;
        Ok(())
    }

    /// Lets go of the mouse button `press_and_drag` pressed, where the pointer is.
    pub async fn release_mouse(&self) -> anyhow::Result<()> {
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
        self.client.perform_actions(mouse).await?;
        Ok(())
    }

    pub async fn value(&self, selector: &str) -> anyhow::Result<String> {
        let script = format!("return document.querySelector({selector:?}).value;");
        Ok(self
            .eval(&script)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Kills the browser and chromedriver (SIGKILL), as a crash or a tablet running out of battery
    /// would, and returns the profile with everything the page stored.
    pub fn crash(mut self) -> tempfile::TempDir {
        self.kill_process_group();
        let profile = tempfile::TempDir::new().expect("tempdir");
        std::mem::replace(&mut self.profile, profile)
    }

    fn kill_process_group(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Until every process is gone, Chromium's profile lock still names a live process.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && Command::new("kill")
                .args(["-s", "0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends the WebDriver session cleanly; Drop then stops chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

/// A pointer move to `(x, y)` in viewport CSS pixels.
fn move_to((x, y): (i64, i64)) -> PointerAction {
    PointerAction::MoveTo {
        duration: Some(Duration::from_millis(30)),
        x: x as f64,
        y: y as f64,
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Kills chromedriver and the Chromium it started, even when a test panicked.
        self.kill_process_group();
    }
}
