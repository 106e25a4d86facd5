//! `cargo xtask test`: every check and test of the project, ending in one summary line.

use crate::{cargo, cargo_command, check_status, pwa, target_dir, tools, workspace_root};
use anyhow::{Context, bail};
use std::{
    ffi::OsStr,
    io::{BufRead, BufReader},
    process::Stdio,
};

const CHROMIUM: &str = "/usr/lib/chromium/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

#[derive(Default)]
struct Report {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl Report {
    /// A check that passes or fails as a whole (formatting, lints, a build).
    fn step<T>(&mut self, name: &str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(value) => {
                self.passed += 1;
                println!("xtask: {name}: ok");
                Some(value)
            }
            Err(e) => {
                self.failed += 1;
                self.failures.push(format!("{name}: {e:#}"));
                println!("xtask: {name}: FAILED: {e:#}");
                None
            }
        }
    }

    /// A cargo test run: each test counts; a run that failed without any failing test (a
    /// compile error, a crash) counts as one failure.
    fn tests(&mut self, name: &str, result: anyhow::Result<TestCounts>) {
        match result {
            Ok(counts) => {
                self.passed += counts.passed;
                self.failed += counts.failed;
                if !counts.success {
                    self.failures
                        .push(format!("{name}: {} failed", counts.failed.max(1)));
                    self.failed += u64::from(counts.failed == 0);
                }
            }
            Err(e) => {
                self.step::<()>(name, Err(e));
            }
        }
    }
}

#[derive(Debug, Default, PartialEq)]
struct TestCounts {
    passed: u64,
    failed: u64,
    success: bool,
}

/// Adds up libtest's `test result: ok. 3 passed; 1 failed; ...` lines.
fn count_line(line: &str, counts: &mut TestCounts) {
    let Some(rest) = line.strip_prefix("test result: ") else {
        return;
    };
    let number_before = |word: &str| {
        rest.split(';')
            .find_map(|part| part.trim().strip_suffix(word))
            .and_then(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    counts.passed += number_before(" passed");
    counts.failed += number_before(" failed");
}

fn run_cargo_tests(args: &[&str], env: &[(&str, &OsStr)]) -> anyhow::Result<TestCounts> {
    let mut command = cargo_command();
    command.args(args).stdout(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().context("cannot run cargo test")?;
    let mut counts = TestCounts::default();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        count_line(&line, &mut counts);
    }
    counts.success = child.wait()?.success();
    Ok(counts)
}

/// The model's Python tests (synthetic image and video generators), counted like cargo's.
fn python_tests() -> anyhow::Result<TestCounts> {
    let python = tools::ensure_python()?;
    let output = std::process::Command::new(python)
        .args(["-m", "unittest", "synth.test_synth", "synth.test_video"])
        .current_dir(workspace_root().join("models"))
        .output()
        .context("cannot run the Python tests")?;
    let report = String::from_utf8_lossy(&output.stderr);
    print!("{report}");
    let (ran, failed) = unittest_counts(&report);
    Ok(TestCounts {
        passed: ran.saturating_sub(failed),
        failed,
        success: output.status.success(),
    })
}

/// The conveyor video the browser tests' fake camera plays, with its ground truth beside it
/// (`parts.json`); generated from its seed, never committed. Each part stands still for 2.5 s,
/// as at a station: long enough for three analysed frames even on a loaded 2-core machine,
/// where the CPU backend takes up to 0.7 s a frame.
fn camera_video() -> anyhow::Result<std::path::PathBuf> {
    let video = target_dir().join("camera/parts.y4m");
    check_status(
        std::process::Command::new(tools::ensure_python()?)
            .args([
                "-m",
                "synth.video",
                "--seed",
                "1",
                "--still",
                "2.5",
                "--out",
            ])
            .arg(&video)
            .current_dir(workspace_root().join("models")),
        "generating the camera video",
    )?;
    Ok(video)
}

/// Tests run and failed in unittest's report: "Ran 6 tests in 6.2s", then "OK" or
/// "FAILED (failures=1, errors=2)".
fn unittest_counts(report: &str) -> (u64, u64) {
    let ran = report
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let failed = report
        .lines()
        .filter_map(|l| l.strip_prefix("FAILED ("))
        .flat_map(|l| l.trim_end_matches(')').split(", "))
        .filter_map(|part| part.split('=').nth(1)?.parse::<u64>().ok())
        .sum();
    (ran, failed)
}

fn gpu_environment() -> anyhow::Result<()> {
    // Mesa warns on every device creation without a runtime dir; any private folder will do.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("linecheck-xdg-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        // SAFETY: set before any thread is spawned; xtask is single-threaded.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", dir) };
    }
    Ok(())
}

/// Tests compiled to wasm32 and run in headless Chromium: wasm-bindgen-test-runner drives it
/// through chromedriver with the flags in the package's `webdriver.json` (WebGPU on SwiftShader
/// where the package needs it).
fn wasm_browser_tests(target: &[&str]) -> anyhow::Result<TestCounts> {
    let args = [&["test", "--target", "wasm32-unknown-unknown"], target].concat();
    run_cargo_tests(
        &args,
        &[
            (
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                OsStr::new("wasm-bindgen-test-runner"),
            ),
            ("CHROMEDRIVER", OsStr::new(CHROMEDRIVER)),
            ("WASM_BINDGEN_TEST_TIMEOUT", OsStr::new("300")),
        ],
    )
}

/// The browser bench page (`cargo xtask webbench`) is a benchmark, never run here; this only
/// keeps it building: its engine module lints clean for wasm32 and its scripts parse.
fn webbench_page_checks() -> anyhow::Result<()> {
    cargo(&[
        "clippy",
        "--package",
        "linecheck-webbench",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ])?;
    for script in ["bench.mjs", "worker.mjs", "runtimes.mjs", "cpu-thread.mjs"] {
        check_status(
            std::process::Command::new("node")
                .arg("--check")
                .arg(workspace_root().join("webbench/page").join(script)),
            &format!("node --check webbench/page/{script}"),
        )?;
    }
    Ok(())
}

pub fn run_all() -> anyhow::Result<()> {
    tools::ensure(tools::Purpose::Test)?;
    gpu_environment()?;
    let mut report = Report::default();

    report.step("cargo fmt --check", cargo(&["fmt", "--all", "--check"]));
    report.step(
        "clippy (native)",
        cargo(&[
            "clippy",
            "--workspace",
            "--exclude",
            "linecheck-frontend",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    report.step(
        "clippy (wasm32)",
        cargo(&[
            "clippy",
            "--package",
            "linecheck-frontend",
            "--package",
            "vision-engine",
            "--target",
            "wasm32-unknown-unknown",
            "--lib",
            "--bins",
            "--test",
            "browser",
            "--",
            "-D",
            "warnings",
        ]),
    );
    report.step(
        "clippy (wasm32, kiosk browser tests)",
        cargo(&[
            "clippy",
            "--package",
            "linecheck-frontend",
            "--target",
            "wasm32-unknown-unknown",
            "--tests",
            "--",
            "-D",
            "warnings",
        ]),
    );
    report.step(
        "web bench page (wasm32 clippy, JavaScript syntax)",
        webbench_page_checks(),
    );
    report.tests(
        "workspace tests",
        run_cargo_tests(
            &[
                "test",
                "--workspace",
                "--exclude",
                "linecheck-frontend",
                "--exclude",
                "linecheck-e2e",
            ],
            &[],
        ),
    );

    report.tests(
        "engine in the browser (wasm32, WebGPU)",
        wasm_browser_tests(&["--package", "vision-engine", "--test", "browser"]),
    );
    report.tests(
        "kiosk storage in the browser (wasm32, IndexedDB)",
        wasm_browser_tests(&["--package", "linecheck-frontend", "--lib"]),
    );

    report.tests("model data generator (Python)", python_tests());

    let dist = report.step("PWA build (trunk, wasm32, release)", pwa::build());
    let server = report.step(
        "server build",
        cargo(&["build", "--package", "linecheck-server"])
            .map(|_| target_dir().join("debug/linecheck-server")),
    );
    let camera_video = report.step("fake camera video (models/synth/video.py)", camera_video());
    match (dist, server, camera_video) {
        (Some(dist), Some(server), Some(camera_video)) => report.tests(
            "browser tests",
            run_cargo_tests(
                &[
                    "test",
                    "--package",
                    "linecheck-e2e",
                    "--",
                    "--test-threads=1",
                ],
                &[
                    ("LINECHECK_DIST", dist.as_os_str()),
                    ("LINECHECK_SERVER_BIN", server.as_os_str()),
                    ("LINECHECK_CAMERA_VIDEO", camera_video.as_os_str()),
                    ("CHROMIUM", OsStr::new(CHROMIUM)),
                    ("CHROMEDRIVER", OsStr::new(CHROMEDRIVER)),
                ],
            ),
        ),
        _ => report
            .step::<()>(
                "browser tests",
                Err(anyhow::anyhow!(
                    "not run: the PWA, the server or the camera video was not built"
                )),
            )
            .unwrap_or_default(),
    }

    println!();
    for failure in &report.failures {
        println!("xtask: FAILED {failure}");
    }
    println!(
        "summary: {} passed, {} failed",
        report.passed, report.failed
    );
    if report.failed > 0 {
        bail!(
            "{} checks or tests failed (run from {})",
            report.failed,
            workspace_root().display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unittest_reports_are_counted() {
        assert_eq!(
            unittest_counts("......\n-----\nRan 6 tests in 6.200s\n\nOK\n"),
            (6, 0)
        );
        let failed = "Ran 6 tests in 1.0s\n\nFAILED (failures=1, errors=2)\n";
        assert_eq!(unittest_counts(failed), (6, 3));
    }

    #[test]
    fn libtest_result_lines_are_added_up() {
        let mut counts = TestCounts::default();
        for line in [
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.07s",
            "running 2 tests",
            "test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 2 filtered out; finished in 0.1s",
        ] {
            count_line(line, &mut counts);
        }
        assert_eq!((counts.passed, counts.failed), (7, 1));
    }
}
