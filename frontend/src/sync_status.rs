//! The sync indicator: what the sync loop last found, shown wherever `<SyncStatus />` is placed.
//!
//! The loop (`sync.rs`) publishes a [`SyncReport`]; every mounted indicator re-renders with it.
//! Tests read `#sync-status` (`data-state`, `data-pending`), `#sync-rejected` and `#storage-status`.

use crate::i18n::Texts;
use chrono::{DateTime, Local, Utc};
use std::cell::RefCell;
use yew::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPhase {
    /// Not run yet since the page loaded.
    #[default]
    Starting,
    /// The outbox is empty.
    Synced,
    /// Records wait and the last attempt did not fail (it is about to send, or is sending).
    Pending,
    /// The server could not be reached; the loop retries with backoff.
    Offline,
    /// The server answered with an error (see `last_error`); the loop retries with backoff.
    Error,
    /// No station token in setup: records are kept and nothing is sent.
    NoToken,
}

impl SyncPhase {
    pub fn name(self) -> &'static str {
        match self {
            SyncPhase::Starting => "starting",
            SyncPhase::Synced => "synced",
            SyncPhase::Pending => "pending",
            SyncPhase::Offline => "offline",
            SyncPhase::Error => "error",
            SyncPhase::NoToken => "no-token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncReport {
    pub phase: SyncPhase,
    /// Inspections in the outbox.
    pub pending: u32,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Records the server refused for good since the page loaded (kept on the tablet, marked in
    /// the history), and the last reason; unlike `last_error`, a later success does not clear it.
    pub rejected: Option<(u32, String)>,
    /// A storage notice for the operator (pruning, full, not persistent), if any.
    pub storage: Option<String>,
}

thread_local! {
    static REPORT: RefCell<SyncReport> = RefCell::new(SyncReport::default());
    static LISTENERS: RefCell<Vec<(u64, Callback<SyncReport>)>> = const { RefCell::new(Vec::new()) };
    static NEXT_LISTENER: RefCell<u64> = const { RefCell::new(0) };
}

pub fn current() -> SyncReport {
    REPORT.with(|r| r.borrow().clone())
}

/// Changes the published report and tells every mounted indicator.
pub fn update(change: impl FnOnce(&mut SyncReport)) {
    let report = REPORT.with(|r| {
        let mut report = r.borrow_mut();
        change(&mut report);
        report.clone()
    });
    let listeners: Vec<_> = LISTENERS.with(|l| l.borrow().iter().map(|(_, c)| c.clone()).collect());
    for listener in listeners {
        listener.emit(report.clone());
    }
}

fn subscribe(callback: Callback<SyncReport>) -> u64 {
    let id = NEXT_LISTENER.with(|n| {
        let mut n = n.borrow_mut();
        *n += 1;
        *n
    });
    LISTENERS.with(|l| l.borrow_mut().push((id, callback)));
    id
}

fn unsubscribe(id: u64) {
    LISTENERS.with(|l| l.borrow_mut().retain(|(listener, _)| *listener != id));
}

fn local_time(time: DateTime<Utc>) -> String {
    time.with_timezone(&Local).format("%H:%M:%S").to_string()
}

/// Pending count, last successful sync, last error, and the storage notice.
#[derive(Properties, PartialEq)]
pub struct SyncStatusProps {
    pub texts: &'static Texts,
}

#[function_component(SyncStatus)]
pub fn sync_status(props: &SyncStatusProps) -> Html {
    let report = use_state(current);
    {
        let report = report.clone();
        use_effect_with((), move |_| {
            let id = subscribe(Callback::from(move |next| report.set(next)));
            move || unsubscribe(id)
        });
    }
    let t = props.texts;
    let count = |text: &str| text.replace("{n}", &report.pending.to_string());
    let (class, headline) = match report.phase {
        SyncPhase::Starting => ("pending", t.sync_checking.to_string()),
        SyncPhase::Synced => ("ok", t.sync_all_on_server.to_string()),
        SyncPhase::Pending => ("pending", count(t.sync_sending)),
        SyncPhase::Offline => ("pending", count(t.sync_offline)),
        SyncPhase::Error => ("error", count(t.sync_not_synced)),
        SyncPhase::NoToken => ("error", count(t.sync_no_token)),
    };
    let last_success = match report.last_success {
        Some(at) => format!("{} {}", t.sync_last, local_time(at)),
        None => t.sync_never.to_string(),
    };
    html! {
        <div id="sync-status" class={class} data-state={report.phase.name()}
            data-pending={report.pending.to_string()}>
            <strong>{ headline }</strong>
            <span class="sync-last">{ last_success }</span>
            if let Some(error) = &report.last_error {
                <span id="sync-error" class="error">{ error.clone() }</span>
            }
            if let Some((count, reason)) = &report.rejected {
                <span id="sync-rejected" class="error" data-rejected={count.to_string()}>{
                    format!("{} {reason}", t.sync_refused.replace("{n}", &count.to_string()))
                }</span>
            }
            if let Some(storage) = &report.storage {
                <span id="storage-status" class="error">{ storage.clone() }</span>
            }
        </div>
    }
}
