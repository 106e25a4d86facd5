//! Steps an operator takes in the kiosk, shared by the end-to-end tests.

use crate::{Browser, Server};
use anyhow::Context;
use serde_json::Value;
use std::time::Duration;

pub const LOAD: Duration = Duration::from_secs(30);
/// Downloading the default model, SwiftShader compiling every kernel on 2 cores, and measuring
/// one frame on each backend.
pub const DETECTOR_READY: Duration = Duration::from_secs(300);

/// Goes to `url` and waits for the app shell to render.
pub async fn show_app_shell(browser: &Browser, url: &str) -> anyhow::Result<()> {
    browser.client.goto(url).await?;
    browser.wait_for("#app-shell", LOAD).await
}

/// A fresh browser showing the kiosk that `server` serves.
pub async fn open_kiosk(server: &Server) -> anyhow::Result<Browser> {
    let browser = Browser::start().await?;
    show_app_shell(&browser, &server.url).await?;
    Ok(browser)
}

/// Opens one of the kiosk's screens: `"inspect"`, `"history"` or `"setup"`, and waits until its
/// tab is the active one (a click that lands elsewhere fails here, not minutes later).
pub async fn open_screen(browser: &Browser, screen: &str) -> anyhow::Result<()> {
    let tab = format!("#nav-{screen}");
    browser.click(&tab).await?;
    browser
        .wait_for(&format!("{tab}.active"), LOAD)
        .await
        .with_context(|| format!("{tab} was clicked but is not the active tab"))
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
    save_setup(
        browser,
        &[
            ("#station", station),
            ("#line", line),
            ("#operator", operator),
        ],
    )
    .await
}

/// Fills in setup fields (`(selector, text)` pairs), saves them, and waits for IndexedDB to
/// confirm; the setup may have been saved before.
pub async fn save_setup(browser: &Browser, fields: &[(&str, &str)]) -> anyhow::Result<()> {
    open_screen(browser, "setup").await?;
    let state = browser
        .settled_state("#save-status", &["loading"], LOAD)
        .await?;
    let text = browser.text("#save-status").await?;
    assert!(["idle", "saved"].contains(&state.as_str()), "{text}");
    for (selector, text) in fields {
        browser.type_into(selector, text).await?;
    }
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

/// Every inspection row in the kiosk's IndexedDB, with its snapshot as base64.
pub async fn stored_inspections(browser: &Browser) -> anyhow::Result<Vec<Value>> {
    let rows = browser
        .eval_async(
            "const db = await new Promise((ok, fail) => {
                 const r = indexedDB.open('linecheck'); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error);
             });
             const all = (store) => new Promise((ok, fail) => {
                 const r = db.transaction(store).objectStore(store).getAll(); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error);
             });
             const get = (store, key) => new Promise((ok, fail) => {
                 const r = db.transaction(store).objectStore(store).get(key); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error);
             });
             const rows = await all('inspections');
             for (const row of rows) {
                 const sha = row.record.snapshot && row.record.snapshot.sha256;
                 const bytes = sha ? await get('snapshots', sha) : null;
                 row.jpeg = bytes ? btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join('')) : null;
             }
             db.close();
             return rows;",
        )
        .await?;
    match rows {
        Value::Array(rows) => Ok(rows),
        other => anyhow::bail!("reading IndexedDB: {other}"),
    }
}

/// One part through the station: serial typed, Inspect, the decision button, stored.
pub async fn inspect_part(
    browser: &Browser,
    serial: &str,
    decision: &str,
) -> anyhow::Result<String> {
    browser.type_into("#part-serial", serial).await?;
    browser.click("#inspect").await?;
    browser.wait_for("#verdict", LOAD).await?;
    let verdict = browser
        .eval("return document.querySelector('#verdict').dataset.verdict;")
        .await?;
    browser.click(decision).await?;
    let state = browser
        .settled_state("#inspection-status", &["idle", "saving"], LOAD)
        .await?;
    assert_eq!(
        state,
        "saved",
        "{}",
        browser.text("#inspection-status").await?
    );
    Ok(verdict.as_str().unwrap_or_default().to_string())
}
