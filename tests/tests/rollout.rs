//! A supervisor's model and thresholds reach a kiosk: a real server with a supervisor account,
//! the supervisor's calls made from the browser (session cookie), the kiosk pulling its
//! assignment, downloading the model and switching to it.

use linecheck_e2e::{
    Browser, Server,
    kiosk::{LOAD, open_screen, save_station, show_app_shell, wait_until_detector_ready},
};
use serde_json::Value;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

/// Creates the supervisor account with the server's own command.
fn add_supervisor(server: &Server, name: &str) -> anyhow::Result<()> {
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
async fn page(browser: &Browser, body: &str) -> anyhow::Result<Value> {
    let value = browser.eval_async(body).await?;
    if let Some(error) = value.get("error") {
        anyhow::bail!("{error}");
    }
    Ok(value)
}

#[tokio::test]
async fn a_model_and_thresholds_assigned_to_a_station_reach_its_kiosk() -> anyhow::Result<()> {
    let server = Server::start()?;
    add_supervisor(&server, "boss")?;
    let browser = Browser::start().await?;
    show_app_shell(&browser, &server.url).await?;
    save_station(&browser, "ST-05", "Line 2", "Ida").await?;
    wait_until_detector_ready(&browser).await?;
    let before = browser.text("#model-status").await?;
    assert!(before.contains("linecheck-defects-320-fp16"), "{before}");

    // The supervisor logs in, enrolls the station, uploads a model and assigns it with
    // thresholds (the same network, renamed, so the kiosk's switch is visible).
    let token = page(
        &browser,
        &format!(
            "const json = (r) => r.ok ? r.json() : r.text().then((t) => {{ throw new Error(r.status + ' ' + t); }});
             await fetch('api/v1/session', {{ method: 'POST', headers: {{ 'content-type': 'application/json' }},
                 body: JSON.stringify({{ name: 'boss', password: {PASSWORD:?} }}) }}).then(json);
             const enrolled = await fetch('api/v1/stations', {{ method: 'POST',
                 headers: {{ 'content-type': 'application/json' }}, body: JSON.stringify({{ station: 'ST-05' }}) }}).then(json);
             const onnx = await (await fetch('linecheck-defects-320-fp16.onnx')).arrayBuffer();
             const model = await fetch('api/v1/models?name=line2-defects&version=7', {{ method: 'POST',
                 headers: {{ 'content-type': 'application/octet-stream' }}, body: onnx }}).then(json);
             await fetch('api/v1/stations/ST-05/assignment', {{ method: 'PUT', headers: {{ 'content-type': 'application/json' }},
                 body: JSON.stringify({{ model_id: model.id, default_threshold: 0.4,
                     thresholds: [{{ class_id: 2, threshold: 0.6 }}] }}) }}).then(json);
             return enrolled.token;"
        ),
    )
    .await?;
    let token = token.as_str().expect("a token").to_string();

    // The operator enters the token; the next sync pass pulls the assignment.
    browser.type_into("#station-token", &token).await?;
    browser.click("#save-station").await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        open_screen(&browser, "setup").await?;
        let status = browser.text("#model-status").await.unwrap_or_default();
        if status.contains("line2-defects 7") && !status.contains("Loading") {
            break status;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the assignment never arrived: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let state = browser
        .settled_state("#model-status", &["loading"], LOAD)
        .await?;
    assert_eq!(state, "ready", "{status}");
    assert_eq!(browser.value("#default-threshold").await?, "40");
    assert_eq!(browser.value("#threshold-crack").await?, "60");
    assert_eq!(browser.value("#threshold-dent").await?, "40");

    // Offline, the kiosk restarts with the assigned model from its own cache.
    let url = server.url.clone();
    let _data = server.kill();
    show_app_shell(&browser, &url).await?;
    let restarted = wait_until_detector_ready(&browser).await;
    let model = browser.text("#model-status").await?;
    restarted?;
    assert!(model.contains("line2-defects 7"), "{model}");
    browser.close().await
}
