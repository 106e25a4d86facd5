//! The kiosk's own recent inspections: what this station recorded, with snapshots and boxes,
//! filtered by verdict and defect class, readable with no network.

use crate::{
    Shared,
    i18n::Texts,
    overlay::{self, SnapshotView},
    records::{self, StoredInspection, SyncState},
    storage,
};
use idb::Database;
use protocol::{Correction, Verdict, apply_corrections};
use web_sys::HtmlSelectElement;
use yew::prelude::*;

/// How many of the newest records the screen reads.
const SHOWN: u32 = 200;

#[derive(Properties, PartialEq)]
pub struct HistoryProps {
    pub texts: &'static Texts,
    pub db: Option<Shared<Database>>,
    /// Changes whenever a record was added, so the list reloads.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Opened {
    index: usize,
    image_url: Option<String>,
    error: Option<String>,
}

#[function_component(History)]
pub fn history(props: &HistoryProps) -> Html {
    let t = props.texts;
    let items = use_state(|| None::<Result<Vec<StoredInspection>, String>>);
    let corrections = use_state(Vec::<Correction>::new);
    let verdict_filter = use_state(|| None::<Verdict>);
    let class_filter = use_state(|| None::<String>);
    let opened = use_state(|| None::<Opened>);

    {
        let (items, corrections) = (items.clone(), corrections.clone());
        use_effect_with((props.db.clone(), props.generation), move |(db, _)| {
            if let Some(db) = db.clone() {
                wasm_bindgen_futures::spawn_local(async move {
                    corrections.set(storage::corrections(&db.0).await.unwrap_or_default());
                    items.set(Some(records::recent_inspections(&db.0, SHOWN).await));
                });
            }
        });
    }
    // The object URL of an opened snapshot is released when another opens or the screen closes.
    {
        let url = opened.as_ref().and_then(|o| o.image_url.clone());
        use_effect_with(url, |url| {
            let url = url.clone();
            move || {
                if let Some(url) = url {
                    let _ = web_sys::Url::revoke_object_url(&url);
                }
            }
        });
    }

    let list = match &*items {
        None => return html! { <main><p class="pending">{ t.loading }</p></main> },
        Some(Err(e)) => return html! { <main><p class="error">{ e }</p></main> },
        Some(Ok(list)) => list,
    };
    let mut classes: Vec<String> = list
        .iter()
        .flat_map(|s| s.record.detections.iter().map(|d| d.label.clone()))
        .collect();
    classes.sort();
    classes.dedup();
    let shown: Vec<(usize, &StoredInspection)> = list
        .iter()
        .enumerate()
        .filter(|(_, s)| verdict_filter.is_none_or(|v| s.record.verdict == v))
        .filter(|(_, s)| {
            class_filter
                .as_ref()
                .is_none_or(|c| s.record.detections.iter().any(|d| &d.label == c))
        })
        .collect();

    let on_verdict = {
        let verdict_filter = verdict_filter.clone();
        Callback::from(move |e: Event| {
            verdict_filter.set(
                match e
                    .target_unchecked_into::<HtmlSelectElement>()
                    .value()
                    .as_str()
                {
                    "pass" => Some(Verdict::Pass),
                    "fail" => Some(Verdict::Fail),
                    _ => None,
                },
            )
        })
    };
    let on_class = {
        let class_filter = class_filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            class_filter.set((!value.is_empty()).then_some(value))
        })
    };
    let open = |index: usize| {
        let (opened, db) = (opened.clone(), props.db.clone());
        let snapshot = list[index].record.snapshot.clone();
        Callback::from(move |_| {
            let (opened, db, snapshot) = (opened.clone(), db.clone(), snapshot.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let jpeg = match (db, snapshot) {
                    (Some(db), Some(snapshot)) => {
                        records::snapshot_jpeg(&db.0, &snapshot.sha256).await
                    }
                    _ => Ok(None),
                };
                opened.set(Some(
                    match jpeg.and_then(|j| j.map(|j| overlay::object_url(&j)).transpose()) {
                        Ok(image_url) => Opened {
                            index,
                            image_url,
                            error: None,
                        },
                        Err(e) => Opened {
                            index,
                            image_url: None,
                            error: Some(e),
                        },
                    },
                ));
            });
        })
    };

    let row = |(index, stored): (usize, &StoredInspection)| {
        let r = &stored.record;
        let (verdict_class, verdict_text) = match r.verdict {
            Verdict::Pass => ("verdict-badge pass", t.pass),
            Verdict::Fail => ("verdict-badge fail", t.fail),
        };
        let sync_text = match &stored.sync {
            SyncState::Pending => t.sync_pending.to_string(),
            SyncState::Synced { .. } => t.sync_done.to_string(),
            SyncState::Rejected { reason } => format!("{}: {reason}", t.sync_rejected),
        };
        let labels: Vec<String> = r
            .detections
            .iter()
            .map(|d| format!("{} {:.0}%", d.label, d.score * 100.0))
            .collect();
        let detail = opened.as_ref().filter(|o| o.index == index).map(|o| {
            let thresholds = overlay::thresholds_of(r);
            let corrected = apply_corrections(
                r.detections.len(),
                corrections.iter().filter(|c| c.inspection_id == r.id).map(|c| &c.action),
            );
            html! {
                <div class="history-detail">
                    if let Some(url) = &o.image_url {
                        <SnapshotView url={url.clone()} detections={r.detections.clone()} {thresholds} {corrected} />
                    }
                    if let Some(e) = &o.error { <p class="error">{ e }</p> }
                    <p>{ format!("{:?} · {} {} · {}", r.decision, r.model.id, r.model.version, r.operator) }</p>
                    <ul class="corrections">
                        { for corrections.iter().filter(|c| c.inspection_id == r.id).map(|c| html! {
                            <li class="correction">{ format!("{} {}: {}", c.corrected_at.format("%Y-%m-%d %H:%M"), c.supervisor, t.review.correction(&c.action, &r.detections)) }</li>
                        }) }
                    </ul>
                </div>
            }
        });
        html! {
            <li class="history-item" data-verdict={format!("{:?}", r.verdict).to_lowercase()} onclick={open(index)}>
                <span class="when">{ r.local_time.format("%Y-%m-%d %H:%M:%S").to_string() }</span>
                <span class={verdict_class}>{ verdict_text }</span>
                <span>{ if r.part_serial.is_empty() { "–".to_string() } else { r.part_serial.clone() } }</span>
                <span>{ r.lot.clone() }</span>
                <span class="labels">{ labels.join(", ") }</span>
                <span class="sync">{ sync_text }</span>
                { for detail }
            </li>
        }
    };

    html! {
        <main class="history">
            <section>
                <div class="filters">
                    <label for="history-verdict">{ t.verdict }</label>
                    <select id="history-verdict" onchange={on_verdict}>
                        <option value="" selected={verdict_filter.is_none()}>{ t.all }</option>
                        <option value="pass" selected={*verdict_filter == Some(Verdict::Pass)}>{ t.pass }</option>
                        <option value="fail" selected={*verdict_filter == Some(Verdict::Fail)}>{ t.fail }</option>
                    </select>
                    <label for="history-class">{ t.defect_class }</label>
                    <select id="history-class" onchange={on_class}>
                        <option value="" selected={class_filter.is_none()}>{ t.all }</option>
                        { for classes.iter().map(|c| html! {
                            <option value={c.clone()} selected={class_filter.as_ref() == Some(c)}>{ c }</option>
                        }) }
                    </select>
                </div>
                if shown.is_empty() {
                    <p>{ t.no_inspections }</p>
                } else {
                    <ul id="history-list" data-count={shown.len().to_string()}>{ for shown.into_iter().map(row) }</ul>
                }
            </section>
        </main>
    }
}
