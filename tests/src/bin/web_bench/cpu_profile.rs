//! Where a runtime's CPU time goes in the browser: Chromium's sampling profiler (the DevTools
//! protocol, through chromedriver's `goog/cdp/execute`) around inferences run on the page's own
//! thread, summed by function.

use anyhow::{Context, bail};
use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use linecheck_e2e::Browser;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// One DevTools protocol command for the page's target.
#[derive(Debug)]
struct Cdp {
    command: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({ "cmd": self.command, "params": self.params });
        (Method::POST, Some(body.to_string()))
    }
}

async fn cdp(browser: &Browser, command: &'static str, params: Value) -> anyhow::Result<Value> {
    browser
        .client
        .issue_cmd(Cdp { command, params })
        .await
        .with_context(|| format!("DevTools protocol {command}"))
}

/// Waits until `window.profiling.state` leaves `from`.
async fn wait_while(browser: &Browser, from: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let profiling = browser.eval("return window.profiling;").await?;
        match profiling["state"].as_str() {
            Some(state) if state == from => {}
            Some("failed") => bail!("profiling failed: {}", profiling["error"]),
            _ => return Ok(()),
        }
        anyhow::ensure!(Instant::now() < deadline, "still {from} after 10 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rust symbol hashes (`::h0123456789abcdef`) and crate disambiguators (`[0123456789abcdef]`)
/// only make the names longer.
fn readable(name: &str) -> String {
    let name = match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    };
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        match after.get(1..18) {
            Some(inner)
                if inner.ends_with(']') && inner[..16].chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                rest = &after[18..];
            }
            _ => {
                out.push('[');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Profiles `runs` inferences of `config` on `model` and returns (function, share of samples),
/// largest first, idle time left out.
pub async fn profile(
    browser: &Browser,
    plan: &Value,
    model: &Value,
    config: Value,
    runs: usize,
) -> anyhow::Result<Vec<(String, f64)>> {
    browser
        .eval(&format!(
            "return window.prepareProfile({plan}, {model}, {config});"
        ))
        .await?;
    wait_while(browser, "loading").await?;
    cdp(browser, "Profiler.enable", json!({})).await?;
    cdp(
        browser,
        "Profiler.setSamplingInterval",
        json!({ "interval": 100 }),
    )
    .await?;
    cdp(browser, "Profiler.start", json!({})).await?;
    browser
        .eval(&format!("return window.runProfile({runs});"))
        .await?;
    wait_while(browser, "running").await?;
    let stopped = cdp(browser, "Profiler.stop", json!({})).await?;
    cdp(browser, "Profiler.disable", json!({})).await?;

    let profile = &stopped["profile"];
    let names: HashMap<u64, String> = profile["nodes"]
        .as_array()
        .context("the profile has no nodes")?
        .iter()
        .filter_map(|node| {
            let frame = &node["callFrame"];
            let name = frame["functionName"].as_str().filter(|n| !n.is_empty());
            let name = name.map_or_else(
                || format!("(anonymous) {}", frame["url"].as_str().unwrap_or("")),
                readable,
            );
            Some((node["id"].as_u64()?, name))
        })
        .collect();
    let mut samples: HashMap<&str, u64> = HashMap::new();
    for id in profile["samples"].as_array().into_iter().flatten() {
        if let Some(name) = id.as_u64().and_then(|id| names.get(&id)) {
            *samples.entry(name.as_str()).or_default() += 1;
        }
    }
    samples.remove("(idle)");
    let total: u64 = samples.values().sum();
    anyhow::ensure!(total > 0, "the profile holds no samples");
    let mut shares: Vec<(String, f64)> = samples
        .into_iter()
        .map(|(name, n)| (name.to_string(), n as f64 / total as f64))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(shares)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_and_disambiguators_are_left_out_of_names() {
        assert_eq!(
            super::readable(
                "vision_engine[eba94b18650744be]::cpu::conv::conv2d_then::h0123456789abcdef"
            ),
            "vision_engine::cpu::conv::conv2d_then"
        );
        assert_eq!(
            super::readable("wasm-function[2570]"),
            "wasm-function[2570]"
        );
    }
}
