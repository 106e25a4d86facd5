//! Installs what LineCheck needs to build and test, and skips what is already installed.

use crate::{cargo_command, check_status, workspace_root};
use anyhow::{Context, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

const TRUNK_VERSION: &str = "0.22.1";
const BINARYEN_VERSION: &str = "132.0.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Build and run: Rust, trunk, wasm-bindgen, wasm-opt.
    Build,
    /// Also a browser, its driver and a software Vulkan driver for GPU tests.
    Test,
}

/// Debian packages the test suite needs: Chromium with its WebDriver, lavapipe (CPU Vulkan),
/// llvmpipe through EGL (an OpenGL adapter without shader-f16, for the f16 refusal), and
/// PostgreSQL, which the server's tests start throwaway instances of.
const TEST_PACKAGES: &[&str] = &[
    "chromium",
    "chromium-driver",
    "mesa-vulkan-drivers",
    "libegl-mesa0",
    "libgl1-mesa-dri",
    "postgresql",
];
/// Needed to build at all: a C compiler (SQLite) and npm (wasm-opt).
const BUILD_PACKAGES: &[(&str, &str)] = &[("cc", "build-essential"), ("npm", "npm")];

pub fn ensure(purpose: Purpose) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = BUILD_PACKAGES
        .iter()
        .filter(|(program, _)| which(program).is_none())
        .map(|&(_, package)| package)
        .collect();
    if purpose == Purpose::Test {
        missing.extend(TEST_PACKAGES.iter().filter(|p| !dpkg_installed(p)));
    }
    install_debian_packages(&missing)?;
    ensure_trunk()?;
    ensure_wasm_tools()
}

/// wasm-bindgen and wasm-opt, for wasm built without trunk (the bench page's engine).
pub fn ensure_wasm_tools() -> anyhow::Result<()> {
    ensure_wasm_bindgen()?;
    ensure_wasm_opt()
}

/// wasm-bindgen (`--target web`, an ES module `out_name.js` beside `out_name_bg.wasm` in `out`)
/// then wasm-opt with `opt_args`, on a wasm built without trunk.
pub fn bind_for_web(
    wasm: &Path,
    out: &Path,
    out_name: &str,
    opt_args: &[&str],
) -> anyhow::Result<()> {
    check_status(
        Command::new(cargo_bin("wasm-bindgen"))
            .args(["--target", "web", "--no-typescript", "--out-name", out_name])
            .arg("--out-dir")
            .arg(out)
            .arg(wasm),
        "wasm-bindgen",
    )?;
    let bound = out.join(format!("{out_name}_bg.wasm"));
    check_status(
        Command::new(wasm_opt())
            .args(opt_args)
            .arg(&bound)
            .arg("-o")
            .arg(&bound),
        "wasm-opt",
    )
}

/// The pinned toolchain's standard library sources, which the threaded wasm build compiles
/// (rust-toolchain.toml names the component; an older rustup may not have added it).
pub fn ensure_rust_src() -> anyhow::Result<()> {
    let sysroot = Command::new("rustc")
        .current_dir(workspace_root())
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib/src/rust/library/std").is_dir() {
        return Ok(());
    }
    println!("xtask: installing the rust-src component (for the threaded wasm build)");
    check_status(
        Command::new("rustup")
            .current_dir(workspace_root())
            .args(["component", "add", "rust-src"]),
        "rustup component add rust-src",
    )
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn install_debian_packages(packages: &[&str]) -> anyhow::Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    if !is_root() {
        bail!(
            "missing Debian packages: {list}; install them with `sudo apt-get install -y {list}`"
        );
    }
    println!("xtask: installing Debian packages: {list}");
    check_status(
        Command::new("apt-get").arg("update").arg("-qq"),
        "apt-get update",
    )?;
    check_status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {list}"),
    )
}

/// First line of `program --version`, or None when it is not installed.
fn version_of(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

pub fn cargo_bin(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| home().join(".cargo/bin").join(name))
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Tools installed from npm live here, outside the clone, so every clone reuses them.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"))
        .join("linecheck-tools")
}

/// Directories to put first on PATH for trunk, so it finds the tools installed here.
pub fn tool_path() -> anyhow::Result<std::ffi::OsString> {
    let dirs = [
        tools_dir().join("node_modules/.bin"),
        home().join(".cargo/bin"),
    ];
    let existing = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(dirs.into_iter().chain(std::env::split_paths(&existing)))
        .context("building PATH")
}

fn ensure_trunk() -> anyhow::Result<()> {
    let wanted = format!("trunk {TRUNK_VERSION}");
    if version_of(&cargo_bin("trunk")).as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    println!("xtask: installing {wanted} (about 10 minutes on 2 cores, once)");
    check_status(
        cargo_command().args(["install", "--locked", "trunk", "--version", TRUNK_VERSION]),
        "cargo install trunk",
    )
}

/// The wasm-bindgen CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock, and
/// Trunk.toml must name the same one (trunk would otherwise try to download it).
pub fn wasm_bindgen_version() -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock"))
        .context("reading Cargo.lock")?;
    let locked = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"wasm-bindgen\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .and_then(|v| v.strip_suffix('"'))
        .context("Cargo.lock has no wasm-bindgen package")?
        .to_string();
    let trunk_toml = std::fs::read_to_string(workspace_root().join("Trunk.toml"))
        .context("reading Trunk.toml")?;
    let configured = format!("wasm_bindgen = \"{locked}\"");
    if !trunk_toml.lines().any(|l| l.trim() == configured) {
        bail!("Trunk.toml must say `{configured}` to match Cargo.lock");
    }
    Ok(locked)
}

fn ensure_wasm_bindgen() -> anyhow::Result<()> {
    let version = wasm_bindgen_version()?;
    let wanted = format!("wasm-bindgen {version}");
    if version_of(&cargo_bin("wasm-bindgen")).as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    println!("xtask: installing wasm-bindgen-cli {version} (about 4 minutes, once)");
    // Not --locked: its lockfile pins a crate version the registry no longer serves.
    check_status(
        cargo_command().args(["install", "wasm-bindgen-cli", "--version", &version]),
        "cargo install wasm-bindgen-cli",
    )
}

/// A virtualenv with numpy and OpenCV for the model's data generator and its tests; a venv keeps
/// clear of Debian's externally managed system Python.
pub fn ensure_python() -> anyhow::Result<PathBuf> {
    let venv = tools_dir().join("python");
    let python = venv.join("bin/python3");
    if !python.is_file() {
        println!("xtask: creating a Python virtualenv in {}", venv.display());
        let created = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        if !created.is_ok_and(|s| s.success()) {
            install_debian_packages(&["python3", "python3-venv"])?;
            check_status(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                "python3 -m venv",
            )?;
        }
    }
    let ready = Command::new(&python)
        .args(["-c", "import numpy, cv2"])
        .output();
    if !ready.is_ok_and(|o| o.status.success()) {
        println!("xtask: installing numpy and opencv-python-headless from PyPI");
        check_status(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "-q",
                "numpy",
                "opencv-python-headless",
            ]),
            "pip install numpy opencv-python-headless",
        )?;
    }
    Ok(python)
}

/// wasm-opt from npm `binaryen`, as `ensure_wasm_opt` installs it.
pub fn wasm_opt() -> PathBuf {
    tools_dir().join("node_modules/.bin/wasm-opt")
}

fn ensure_wasm_opt() -> anyhow::Result<()> {
    let dir = tools_dir();
    let wasm_opt = wasm_opt();
    let major = BINARYEN_VERSION
        .split('.')
        .next()
        .unwrap_or(BINARYEN_VERSION);
    if version_of(&wasm_opt).is_some_and(|v| v.contains(&format!("(version_{major})"))) {
        return Ok(());
    }
    println!("xtask: installing wasm-opt from npm binaryen@{BINARYEN_VERSION}");
    std::fs::create_dir_all(&dir)?;
    check_status(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(format!("binaryen@{BINARYEN_VERSION}")),
        "npm install binaryen",
    )
}
