//! The `bench` tool runs end to end on the miniature detector, on both backends. A smoke test of
//! the tool, never of its numbers. The ONNX Runtime peer is left out (`--no-peer`): CI does not
//! install onnxruntime; without its Python the tool must say how to run without it.

mod cli;

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String, String) {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/detector/mini_detector.onnx"
    );
    cli::run(
        Command::new(env!("CARGO_BIN_EXE_bench"))
            .args([
                "--model",
                model,
                "--runs",
                "2",
                "--warmup",
                "1",
                "--threads",
                "1",
            ])
            .args(args),
    )
}

/// The rows of the timing table: the `| ` lines after its header and rule.
fn rows(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("| runtime |"))
        .skip(2)
        .take_while(|l| l.starts_with("| "))
        .collect()
}

#[test]
fn prints_a_row_for_the_gpu_with_its_memory_and_a_profile() {
    let (ok, stdout, stderr) = bench(&["--profile", "--no-peer"]);
    assert!(ok, "{stderr}");
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 1, "{stdout}");
    // lavapipe, a software adapter, runs its own choice of kernels: whole layers.
    assert!(
        rows[0].starts_with("| ours, GPU (tiled, whole) |"),
        "{stdout}"
    );
    assert!(rows[0].ends_with(" MB |"), "activation memory: {stdout}");
    assert!(stdout.contains("cold start: parse + fold"), "{stdout}");
    assert!(
        stdout.contains("| conv_gemm.wgsl "),
        "the profile names the kernels: {stdout}"
    );
}

#[test]
fn a_peer_that_cannot_start_is_a_clear_error() {
    let (ok, _, stderr) = bench(&["--python", "/nonexistent/python3"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/python3"), "{stderr}");
    assert!(stderr.contains("--no-peer skips it"), "{stderr}");
}

#[test]
fn the_cpu_backend_alone_and_bad_arguments_fail_clearly() {
    let (ok, stdout, stderr) = bench(&["--backend", "cpu", "--no-peer"]);
    assert!(ok, "{stderr}");
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 1, "{stdout}");
    assert!(
        rows[0].starts_with("| ours, CPU | 1 threads | f32 |"),
        "{stdout}"
    );

    let (ok, _, stderr) = bench(&["--tiling", "9", "--no-peer"]);
    assert!(!ok);
    assert!(
        stderr.contains("--tiling 9: there are 2 tilings"),
        "{stderr}"
    );
}
