//! Builds the kiosk PWA with trunk and writes the service worker's precache list.

use crate::{build_threaded_wasm, cargo, check_status, tools, workspace_root};
use anyhow::{Context, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Builds `frontend/dist` in release mode with no network, and returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    // trunk's offline mode passes --offline to cargo: every crate must already be downloaded.
    cargo(&["fetch"])?;
    check_status(
        Command::new("trunk")
            .current_dir(workspace_root())
            .args(["build", "--release"])
            .env("PATH", tools::tool_path()?)
            .env("TRUNK_OFFLINE", "true")
            .env("TRUNK_SKIP_VERSION_CHECK", "true"),
        "trunk build",
    )?;
    let dist = workspace_root().join("frontend/dist");
    add_threaded_detection_worker(&dist)?;
    write_precache(&dist)?;
    Ok(dist)
}

/// The detection worker built again with threads, for cross-origin-isolated pages (the kiosk
/// picks it by `crossOriginIsolated`, `detection::client`): trunk builds each binary once with
/// the same flags, so this one is built and bound here, optimised as trunk optimises the other
/// (wasm-opt -O3), beside its module loader from `public/`.
fn add_threaded_detection_worker(dist: &Path) -> anyhow::Result<()> {
    let wasm = build_threaded_wasm(
        "linecheck-frontend",
        Some("detection-worker"),
        "wasm-release",
    )?;
    tools::bind_for_web(&wasm, dist, "detection-worker-threads", &["-O3"])?;
    let loader = "detection-worker-threads_loader.js";
    std::fs::copy(
        workspace_root().join("public").join(loader),
        dist.join(loader),
    )
    .with_context(|| format!("copying public/{loader}"))?;
    Ok(())
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, base, out)?;
        } else {
            let relative = path.strip_prefix(base).expect("walked from base");
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// FNV-1a: a version tag that changes whenever any byte of the build does. Not for security.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fills in the two marked lines of `sw.js`: the build's version and every file to cache at install.
fn write_precache(dist: &Path) -> anyhow::Result<()> {
    let sw_path = dist.join("sw.js");
    let template = std::fs::read_to_string(&sw_path).context("the build has no sw.js")?;
    let mut files = Vec::new();
    files_under(dist, dist, &mut files)?;
    // trunk's lock file and other dot files are not part of the app.
    files.retain(|f| f != "sw.js" && !f.split('/').any(|part| part.starts_with('.')));
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        hash = fnv1a(hash, file.as_bytes());
        hash = fnv1a(hash, &std::fs::read(dist.join(file))?);
    }
    let list = files
        .iter()
        .map(|f| format!("\"./{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sw = replace_line(
        &template,
        "const BUILD_VERSION = ",
        &format!("const BUILD_VERSION = \"{hash:016x}\";"),
    )?;
    let sw = replace_line(
        &sw,
        "const PRECACHE = ",
        &format!("const PRECACHE = [{list}];"),
    )?;
    std::fs::write(&sw_path, sw)?;
    println!(
        "xtask: service worker caches {} files, build {hash:016x}",
        files.len()
    );
    Ok(())
}

fn replace_line(text: &str, prefix: &str, replacement: &str) -> anyhow::Result<String> {
    let matches = text.lines().filter(|l| l.starts_with(prefix)).count();
    if matches != 1 {
        bail!("sw.js must have exactly one line starting with `{prefix}` (found {matches})");
    }
    Ok(text
        .lines()
        .map(|l| {
            if l.starts_with(prefix) {
                replacement
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_lines_are_replaced_and_a_missing_marker_is_an_error() {
        let sw = "a\nconst PRECACHE = [];\nb\n";
        assert_eq!(
            replace_line(sw, "const PRECACHE = ", "const PRECACHE = [\"./x\"];").unwrap(),
            "a\nconst PRECACHE = [\"./x\"];\nb\n"
        );
        assert!(replace_line("a\n", "const PRECACHE = ", "x").is_err());
    }

    #[test]
    fn the_version_changes_with_any_byte() {
        let base = fnv1a(0xcbf2_9ce4_8422_2325, b"index.html<html>");
        assert_ne!(base, fnv1a(0xcbf2_9ce4_8422_2325, b"index.html<htmL>"));
    }
}
