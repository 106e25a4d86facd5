//! Running the engine's command line tools from tests, as a user runs them.

use std::process::Command;

/// Runs `command` with a runtime folder for Mesa; whether it succeeded, its stdout and stderr.
pub fn run(command: &mut Command) -> (bool, String, String) {
    let output = command
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}
