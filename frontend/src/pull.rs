//! What supervisors changed for this station, pulled after each sync pass: thresholds and the
//! assigned model go into the station settings (the app switches models between parts), and
//! corrections of this station's inspections are kept for its history screen.
//!
//! Each page is stored before its cursor, so a crash in between pulls the page again; applying
//! the same settings or the same correction (by id) twice changes nothing.

use crate::{
    storage,
    sync::{Failure, failure_for, fetch},
};
use idb::Database;
use protocol::{PROTOCOL_VERSION, PullResponse};
use std::cell::RefCell;
use yew::Callback;

thread_local! {
    static LISTENERS: RefCell<Vec<Callback<()>>> = const { RefCell::new(Vec::new()) };
}

/// `on_change` runs whenever a pull changed the stored settings or assignment.
pub fn subscribe(on_change: Callback<()>) {
    LISTENERS.with(|l| l.borrow_mut().push(on_change));
}

/// Pulls every page since the stored cursor and applies it.
pub(crate) async fn pull(db: &Database, token: &str) -> Result<(), Failure> {
    let mut changed = false;
    loop {
        let since = storage::pull_cursor(db).await?;
        let url = format!("api/v1/sync/pull?protocol_version={PROTOCOL_VERSION}&since={since}");
        let (status, body) = fetch(
            "GET",
            &url,
            token,
            "application/json",
            &wasm_bindgen::JsValue::UNDEFINED,
        )
        .await?;
        if status != 200 {
            return Err(failure_for(status, &body));
        }
        let page: PullResponse = serde_json::from_str(&body)
            .map_err(|e| Failure::Server(format!("an unreadable pull answer: {e}")))?;
        if let Some(settings) = &page.settings {
            storage::update_station(db, |station| {
                station.default_threshold = settings.default_threshold;
                station.thresholds = settings.thresholds.clone();
            })
            .await?;
            storage::save_assigned_model(db, settings.model.as_ref()).await?;
            changed = true;
        }
        if !page.corrections.is_empty() {
            storage::add_corrections(db, &page.corrections).await?;
            changed = true;
        }
        storage::save_pull_cursor(db, page.cursor).await?;
        if !page.more {
            break;
        }
    }
    if changed {
        LISTENERS.with(|l| l.borrow().iter().for_each(|c| c.emit(())));
    }
    Ok(())
}
