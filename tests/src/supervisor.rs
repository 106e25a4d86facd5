//! A supervisor's side of the end-to-end tests: an account made with the server's own command,
//! and calls to the API made from the page, so they carry the page's session cookie.

use crate::{Browser, Server};
use serde_json::Value;

/// The password of every supervisor the tests create.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates the supervisor account with the server's own command.
pub fn add_supervisor(server: &Server, name: &str) -> anyhow::Result<()> {
    let status =
        std::process::Command::new(std::env::var_os("LINECHECK_SERVER_BIN").expect("set by xtask"))
            .args(["add-supervisor", name, "--data-dir"])
            .arg(server.data_dir.path())
            .env("LINECHECK_SUPERVISOR_PASSWORD", PASSWORD)
            .status()?;
    anyhow::ensure!(status.success(), "add-supervisor failed: {status}");
    Ok(())
}

/// Runs `body` (async JS returning a value) in the page; fails on `{error}`.
pub async fn page(browser: &Browser, body: &str) -> anyhow::Result<Value> {
    let value = browser.eval_async(body).await?;
    if let Some(error) = value.get("error") {
        anyhow::bail!("{error}");
    }
    Ok(value)
}
