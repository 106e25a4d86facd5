//! `cargo xtask run` and `cargo xtask test`: the two commands README.md opens with.
//!
//! Each installs what is missing (Rust target, trunk, wasm-bindgen, wasm-opt, Debian packages),
//! skips what is already there, and then builds, runs or tests the whole of LineCheck.

mod pwa;
mod test;
mod tools;
mod webbench;

use anyhow::{Context, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

const USAGE: &str = "\
usage:
  cargo xtask run [SERVER FLAGS]   build the PWA and start the server (e.g. --addr 0.0.0.0:8080 --data-dir DIR)
  cargo xtask test                 install test dependencies and run every check and test
  cargo xtask build                build the PWA (release) into frontend/dist
  cargo xtask webbench [FLAGS]     time our engine beside onnxruntime-web in headless Chromium (--help)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test::run_all(),
        Some("build") => tools::ensure(tools::Purpose::Build).and_then(|_| pwa::build().map(drop)),
        Some("webbench") => webbench::run(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(server_args: &[String]) -> anyhow::Result<()> {
    tools::ensure(tools::Purpose::Build)?;
    let dist = pwa::build()?;
    cargo(&["build", "--release", "--package", "linecheck-server"])?;
    let server = target_dir().join("release").join("linecheck-server");
    let mut command = Command::new(&server);
    // In the checkout, the server's default data directory is the checkout's `data/`; flags and
    // LINECHECK_* variables override it as the server documents.
    command
        .current_dir(workspace_root())
        .arg("--static-dir")
        .arg(&dist);
    let status = command
        .args(server_args)
        .status()
        .with_context(|| format!("cannot start {}", server.display()))?;
    if !status.success() {
        bail!("the server exited with {status}");
    }
    Ok(())
}

/// The checkout this xtask runs in. `cargo xtask` (`cargo run`) sets `CARGO_MANIFEST_DIR` at run
/// time as well, and that one wins: the compiled-in path is only a fallback, because worktrees
/// that share a `CARGO_TARGET_DIR` share cargo's fingerprints, so one checkout can run an xtask
/// binary built in another, whose compiled-in path names the other checkout (a webbench
/// "after" run once built and timed the "before" checkout's engine that way, BENCHMARKS.md).
pub fn workspace_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.ends_with("xtask"))
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        manifest_dir
            .parent()
            .expect("xtask lives one level below the workspace root")
            .to_path_buf()
    })
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The cargo that runs xtask, so every step uses the toolchain pinned in rust-toolchain.toml.
pub fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Replaces .cargo/config.toml's wasm rustflags (so SIMD is named again). The linker makes the
/// memory shared and imported (every thread's instance gets the same one, up to 1 GiB) and
/// exports what wasm-bindgen needs to give each thread its own thread-local storage.
const THREADED_WASM_RUSTFLAGS: &[&str] = &[
    "-C target-feature=+atomics,+bulk-memory,+simd128",
    "-C link-arg=--shared-memory",
    "-C link-arg=--import-memory",
    "-C link-arg=--max-memory=1073741824",
    "-C link-arg=--export=__wasm_init_tls",
    "-C link-arg=--export=__tls_size",
    "-C link-arg=--export=__tls_align",
    "-C link-arg=--export=__tls_base",
];

/// Builds `package` (its binary `bin`, else its library) for wasm with threads (atomics and
/// shared memory, so that web workers can run the CPU backend's threads on the module's memory)
/// and returns the `.wasm` file. The standard library must be rebuilt with atomics (`-Z
/// build-std`, allowed on the pinned stable toolchain by RUSTC_BOOTSTRAP, from its rust-src
/// component). Built in a target directory of its own, so that it and the single-threaded build
/// do not rebuild each other.
pub fn build_threaded_wasm(
    package: &str,
    bin: Option<&str>,
    profile: &str,
) -> anyhow::Result<PathBuf> {
    tools::ensure_rust_src()?;
    let target = target_dir().join("wasm-threads");
    let mut command = cargo_command();
    command
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", THREADED_WASM_RUSTFLAGS.join(" "))
        .args([
            "build",
            "-Z",
            "build-std=std,panic_abort",
            "--package",
            package,
        ])
        .args(["--target", "wasm32-unknown-unknown", "--profile", profile]);
    if let Some(bin) = bin {
        command.args(["--bin", bin]);
    }
    check_status(
        &mut command,
        &format!("cargo build of {package} for wasm with threads"),
    )?;
    let artifact = bin.map_or_else(|| package.replace('-', "_"), str::to_string);
    Ok(target
        .join("wasm32-unknown-unknown")
        .join(profile)
        .join(format!("{artifact}.wasm")))
}

pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    check_status(
        cargo_command().args(args),
        &format!("cargo {}", args.join(" ")),
    )
}

pub fn check_status(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
