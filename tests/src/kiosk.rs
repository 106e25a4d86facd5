//! Steps an operator takes in the kiosk, shared by the end-to-end tests.

use crate::Browser;
use fantoccini::Locator;
use std::time::Duration;

pub const LOAD: Duration = Duration::from_secs(30);
/// Downloading the default model, SwiftShader compiling every kernel on 2 cores, and measuring
/// one frame on each backend.
pub const DETECTOR_READY: Duration = Duration::from_secs(300);

/// Goes to `url` and waits for the app shell to render.
pub async fn show_app_shell(browser: &Browser, url: &str) -> anyhow::Result<()> {
    browser.client.goto(url).await?;
    browser
        .client
        .wait()
        .at_most(LOAD)
        .for_element(Locator::Css("#app-shell"))
        .await?;
    Ok(())
}

/// Opens one of the kiosk's screens: `"inspect"`, `"history"` or `"setup"`.
pub async fn open_screen(browser: &Browser, screen: &str) -> anyhow::Result<()> {
    browser.click(&format!("#nav-{screen}")).await
}

/// Waits until the station settings have been read from IndexedDB (on the setup screen).
pub async fn wait_until_settings_loaded(browser: &Browser) -> anyhow::Result<()> {
    open_screen(browser, "setup").await?;
    let state = browser
        .settled_state("#save-status", &["loading"], LOAD)
        .await?;
    assert_eq!(state, "idle", "{}", browser.text("#save-status").await?);
    Ok(())
}

/// Fills in and saves the station setup, and waits for IndexedDB to confirm it.
pub async fn save_station(
    browser: &Browser,
    station: &str,
    line: &str,
    operator: &str,
) -> anyhow::Result<()> {
    wait_until_settings_loaded(browser).await?;
    browser.type_into("#station", station).await?;
    browser.type_into("#line", line).await?;
    browser.type_into("#operator", operator).await?;
    browser.click("#save-station").await?;
    let state = browser
        .settled_state("#save-status", &["idle", "saving"], LOAD)
        .await?;
    assert_eq!(state, "saved", "{}", browser.text("#save-status").await?);
    Ok(())
}

/// Waits until the detector has loaded and measured its backends; returns the backend line.
pub async fn wait_until_detector_ready(browser: &Browser) -> anyhow::Result<String> {
    open_screen(browser, "setup").await?;
    let state = browser
        .settled_state("#model-status", &["loading"], DETECTOR_READY)
        .await?;
    let text = browser.text("#model-status").await?;
    assert_eq!(state, "ready", "{text}");
    browser.text("#gpu-status").await
}
