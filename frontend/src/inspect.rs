//! The operator's screen: live boxes over the camera, then for each part an automatic verdict,
//! the operator's decision, and a record that is in IndexedDB before the screen says "saved".

use crate::{
    Shared, barcode,
    i18n::{REASON_CODES, Texts},
    live::{AnalyzedFrame, FrameView, LiveLoop},
    overlay::{self, BoxOverlay},
    records, sound,
    storage::StationSettings,
    sync,
};
use chrono::{DateTime, FixedOffset, Local, Utc};
use idb::Database;
use protocol::{
    Detection, InspectionRecord, ModelRef, OperatorDecision, Outcome, Verdict, verdict_for,
};
use wasm_bindgen::{JsCast, prelude::*};
use web_sys::{HtmlInputElement, HtmlVideoElement, KeyboardEvent};
use yew::prelude::*;

/// Parts, NOK and unsure since the shift started: kept by the app, counted from stored records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShiftCounters {
    pub parts: u32,
    pub nok: u32,
    pub unsure: u32,
}

impl ShiftCounters {
    pub fn add(&mut self, outcome: Outcome) {
        self.parts += 1;
        match outcome {
            Outcome::Ok => {}
            Outcome::Nok => self.nok += 1,
            Outcome::Unsure => self.unsure += 1,
        }
    }

    /// OK parts over decided parts; `None` before the first decided part.
    pub fn yield_percent(&self) -> Option<f64> {
        let decided = self.parts - self.unsure;
        (decided > 0).then(|| f64::from(decided - self.nok) * 100.0 / f64::from(decided))
    }
}

/// A part under review: the frozen frame, its boxes and the automatic verdict.
#[derive(Debug, Clone, PartialEq)]
struct Review {
    jpeg: Vec<u8>,
    image_url: String,
    width: u32,
    height: u32,
    detections: Vec<Detection>,
    verdict: Verdict,
    inspected_at: DateTime<Utc>,
    local_time: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq)]
enum SaveState {
    Idle,
    Saving,
    Saved(Outcome),
    Failed(String),
}

/// Which override is waiting for its reason code.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Override {
    Ok,
    Nok,
}

#[derive(Properties, PartialEq)]
pub struct InspectProps {
    pub texts: &'static Texts,
    pub settings: StationSettings,
    pub db: Option<Shared<Database>>,
    pub live: Shared<LiveLoop>,
    /// The camera's `<video>` while it runs; a new element after each reconnection.
    pub camera: Option<HtmlVideoElement>,
    /// The model that judges, once the detector is ready.
    pub model: Option<ModelRef>,
    pub frame: Option<FrameView>,
    /// Camera or detector trouble, shown instead of the live view's boxes.
    pub problem: Option<String>,
    pub counters: ShiftCounters,
    pub on_saved: Callback<Outcome>,
    pub on_new_shift: Callback<()>,
}

fn thresholds_of(settings: &StationSettings, detections: &[Detection]) -> Vec<f32> {
    detections
        .iter()
        .map(|d| settings.threshold_of(d.class_id))
        .collect()
}

#[function_component(Inspect)]
pub fn inspect(props: &InspectProps) -> Html {
    let t = props.texts;
    let serial = use_state(String::new);
    let lot = use_state(String::new);
    let review = use_state(|| None::<Review>);
    let save_state = use_state(|| SaveState::Idle);
    let reason_for = use_state(|| None::<Override>);
    let camera_box = use_node_ref();

    // The camera's <video> lives as long as the page; this screen only shows it.
    {
        let camera_box = camera_box.clone();
        let showing_live = review.is_none();
        use_effect_with(
            (showing_live, props.camera.clone()),
            move |(showing_live, camera)| {
                if let (true, Some(container), Some(video)) =
                    (*showing_live, camera_box.cast::<web_sys::Element>(), camera)
                {
                    let _ = container.prepend_with_node_1(video);
                }
            },
        );
    }

    let ready = props.settings.is_complete() && props.model.is_some() && props.db.is_some();
    let on_inspect = {
        let (live, review, save_state, reason_for) = (
            props.live.clone(),
            review.clone(),
            save_state.clone(),
            reason_for.clone(),
        );
        let settings = props.settings.clone();
        Callback::from(move |()| {
            if !ready || review.is_some() || *save_state == SaveState::Saving {
                return;
            }
            let (review, save_state, reason_for) =
                (review.clone(), save_state.clone(), reason_for.clone());
            let (settings, live) = (settings.clone(), live.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let Some(analyzed) = next_analyzed_frame(&live.0).await else {
                    save_state.set(SaveState::Failed(
                        settings.language.texts().waiting_for_frame.into(),
                    ));
                    return;
                };
                let jpeg = overlay::jpeg_of(&analyzed.frame).await;
                let (width, height) = (analyzed.frame.width(), analyzed.frame.height());
                analyzed.frame.close();
                let frozen = jpeg.and_then(|jpeg| {
                    let image_url = overlay::object_url(&jpeg)?;
                    let verdict = verdict_for(
                        &analyzed.detections,
                        &settings.thresholds,
                        settings.default_threshold,
                    );
                    Ok(Review {
                        jpeg,
                        image_url,
                        width,
                        height,
                        detections: analyzed.detections,
                        verdict,
                        inspected_at: Utc::now(),
                        local_time: Local::now().fixed_offset(),
                    })
                });
                match frozen {
                    Ok(frozen) => {
                        if frozen.verdict == Verdict::Fail {
                            sound::fail_cue();
                        }
                        review.set(Some(frozen));
                        save_state.set(SaveState::Idle);
                        reason_for.set(None);
                    }
                    Err(e) => save_state.set(SaveState::Failed(e)),
                }
            });
        })
    };

    let close_review = {
        let review = review.clone();
        let reason_for = reason_for.clone();
        Callback::from(move |()| {
            if let Some(r) = &*review {
                let _ = web_sys::Url::revoke_object_url(&r.image_url);
            }
            review.set(None);
            reason_for.set(None);
        })
    };

    let on_decide = {
        let (review, save_state, serial, lot) = (
            review.clone(),
            save_state.clone(),
            serial.clone(),
            lot.clone(),
        );
        let settings = props.settings.clone();
        let (db, model, on_saved, close_review) = (
            props.db.clone(),
            props.model.clone(),
            props.on_saved.clone(),
            close_review.clone(),
        );
        Callback::from(move |decision: OperatorDecision| {
            let (Some(current), Some(db), Some(model)) = (&*review, db.clone(), model.clone())
            else {
                return;
            };
            if *save_state == SaveState::Saving {
                return;
            }
            let record = InspectionRecord {
                id: records::new_record_id(),
                // These two are filled in by `records::save_inspection`, in its transaction.
                device_id: uuid::Uuid::nil(),
                sequence: 0,
                inspected_at: current.inspected_at,
                local_time: current.local_time,
                station: settings.station.trim().to_string(),
                line: settings.line.trim().to_string(),
                operator: settings.operator.trim().to_string(),
                part_serial: serial.trim().to_string(),
                lot: lot.trim().to_string(),
                model,
                default_threshold: settings.default_threshold,
                thresholds: settings.thresholds.clone(),
                detections: current.detections.clone(),
                verdict: current.verdict,
                decision,
                snapshot: None,
            };
            let outcome = record.decision.outcome(record.verdict);
            let jpeg = current.jpeg.clone();
            let (save_state, serial, on_saved, close_review) = (
                save_state.clone(),
                serial.clone(),
                on_saved.clone(),
                close_review.clone(),
            );
            save_state.set(SaveState::Saving);
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = record.validate() {
                    save_state.set(SaveState::Failed(e.to_string()));
                    return;
                }
                match records::save_inspection(&db.0, record, jpeg).await {
                    Ok(_) => {
                        save_state.set(SaveState::Saved(outcome));
                        serial.set(String::new());
                        close_review.emit(());
                        on_saved.emit(outcome);
                        sync::wake();
                    }
                    Err(e) => save_state.set(SaveState::Failed(e)),
                }
            });
        })
    };

    let choose_reason = {
        let (reason_for, on_decide) = (reason_for.clone(), on_decide.clone());
        Callback::from(move |index: usize| {
            // Stored in English whatever the operator reads, so reports group them across stations.
            let reason = crate::i18n::ENGLISH.reasons[index].to_string();
            match *reason_for {
                Some(Override::Ok) => on_decide.emit(OperatorDecision::OverriddenOk { reason }),
                Some(Override::Nok) => on_decide.emit(OperatorDecision::OverriddenNok { reason }),
                None => {}
            }
        })
    };

    // Keyboard shortcuts, read through a ref so the one document listener sees this render.
    let on_key = {
        let (review, reason_for) = (review.clone(), reason_for.clone());
        let (on_inspect, on_decide, choose_reason, close_review) = (
            on_inspect.clone(),
            on_decide.clone(),
            choose_reason.clone(),
            close_review.clone(),
        );
        move |event: KeyboardEvent| {
            let typing = event
                .target()
                .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
                .is_some();
            let key = event.key();
            let handled = match (&*review, *reason_for, key.as_str()) {
                (None, _, "Enter") if typing => {
                    on_inspect.emit(());
                    true
                }
                (None, _, " ") if !typing => {
                    on_inspect.emit(());
                    true
                }
                (Some(_), Some(_), digit) if digit.len() == 1 => {
                    match digit.parse::<usize>() {
                        Ok(n) if (1..=REASON_CODES).contains(&n) => choose_reason.emit(n - 1),
                        _ => {}
                    }
                    true
                }
                (Some(_), _, "Escape") => {
                    close_review.emit(());
                    true
                }
                (Some(_), None, "Enter" | "c" | "C") => {
                    on_decide.emit(OperatorDecision::Confirmed);
                    true
                }
                (Some(_), None, "o" | "O") => {
                    reason_for.set(Some(Override::Ok));
                    true
                }
                (Some(_), None, "n" | "N") => {
                    reason_for.set(Some(Override::Nok));
                    true
                }
                (Some(_), None, "u" | "U") => {
                    on_decide.emit(OperatorDecision::Unsure);
                    true
                }
                _ => false,
            };
            if handled {
                event.prevent_default();
            }
        }
    };
    let key_handler = use_mut_ref(|| None::<Box<dyn Fn(KeyboardEvent)>>);
    *key_handler.borrow_mut() = Some(Box::new(on_key));
    use_effect_with((), {
        let key_handler = key_handler.clone();
        move |_| {
            let listener = Closure::<dyn Fn(KeyboardEvent)>::new(move |e: KeyboardEvent| {
                if let Some(handler) = &*key_handler.borrow() {
                    handler(e);
                }
            });
            let document = web_sys::window().and_then(|w| w.document());
            if let Some(d) = &document {
                let _ = d
                    .add_event_listener_with_callback("keydown", listener.as_ref().unchecked_ref());
            }
            move || {
                if let Some(d) = document {
                    let _ = d.remove_event_listener_with_callback(
                        "keydown",
                        listener.as_ref().unchecked_ref(),
                    );
                }
            }
        }
    });

    let on_scan = {
        let (serial, live, save_state) = (serial.clone(), props.live.clone(), save_state.clone());
        let texts = t;
        Callback::from(move |_| {
            let Some(video) = live.0.video() else { return };
            let (serial, save_state) = (serial.clone(), save_state.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match barcode::scan(&video).await {
                    Ok(Some(code)) => serial.set(code),
                    Ok(None) => save_state.set(SaveState::Failed(texts.no_barcode.into())),
                    Err(e) => save_state.set(SaveState::Failed(e)),
                }
            });
        })
    };

    let text_input = |id: &'static str, label: &'static str, state: &UseStateHandle<String>| {
        let value = (**state).clone();
        let state = state.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            state.set(e.target_unchecked_into::<HtmlInputElement>().value());
        });
        html! {
            <label class="field">
                <span>{ label }</span>
                <input {id} {value} {oninput} autocomplete="off" disabled={review.is_some()} />
            </label>
        }
    };

    let picture = match (&*review, &props.frame) {
        (Some(r), _) => html! {
            <div class="picture frozen" style={format!("aspect-ratio: {} / {}", r.width, r.height)}>
                <img id="snapshot" src={r.image_url.clone()} alt="" />
                <BoxOverlay detections={r.detections.clone()} width={r.width} height={r.height}
                    thresholds={thresholds_of(&props.settings, &r.detections)} />
            </div>
        },
        (None, frame) => html! {
            <div class="picture live" ref={camera_box.clone()}
                style={frame.as_ref().map(|f| format!("aspect-ratio: {} / {}", f.width, f.height))}>
                if let Some(f) = frame {
                    <BoxOverlay detections={f.detections.clone()} width={f.width} height={f.height}
                        thresholds={thresholds_of(&props.settings, &f.detections)} />
                }
            </div>
        },
    };

    let verdict_banner = review.as_ref().map(|r| {
        let (class, text) = match r.verdict {
            Verdict::Pass => ("verdict pass", t.pass),
            Verdict::Fail => ("verdict fail", t.fail),
        };
        let labels: Vec<String> = r
            .detections
            .iter()
            .filter(|d| d.score >= props.settings.threshold_of(d.class_id))
            .map(|d| format!("{} {:.0}%", d.label, d.score * 100.0))
            .collect();
        html! {
            <div id="verdict" class={class} data-verdict={format!("{:?}", r.verdict).to_lowercase()}>
                <strong>{ text }</strong>
                <span>{ if labels.is_empty() { t.no_defects.to_string() } else { labels.join(", ") } }</span>
            </div>
        }
    });

    let decisions = match (&*review, *reason_for) {
        (None, _) => html! {
            <button id="inspect" class="primary big" disabled={!ready || props.frame.is_none()}
                onclick={on_inspect.reform(|_| ())}>{ t.inspect }</button>
        },
        (Some(_), None) => {
            let decide = |d: OperatorDecision| on_decide.reform(move |_| d.clone());
            let ask = |o: Override| {
                let reason_for = reason_for.clone();
                Callback::from(move |_| reason_for.set(Some(o)))
            };
            html! {
                <div class="decisions">
                    <button id="confirm" class="primary big" onclick={decide(OperatorDecision::Confirmed)}>{ t.confirm }</button>
                    <button id="override-ok" class="ok-button" onclick={ask(Override::Ok)}>{ t.override_ok }</button>
                    <button id="override-nok" class="nok-button" onclick={ask(Override::Nok)}>{ t.override_nok }</button>
                    <button id="unsure" onclick={decide(OperatorDecision::Unsure)}>{ t.unsure }</button>
                    <button id="cancel" class="quiet" onclick={close_review.reform(|_| ())}>{ t.cancel }</button>
                </div>
            }
        }
        (Some(_), Some(_)) => html! {
            <div class="decisions reasons">
                <span>{ t.reason }</span>
                { for t.reasons.iter().enumerate().map(|(i, reason)| html! {
                    <button class="reason" data-reason={i.to_string()}
                        onclick={choose_reason.reform(move |_| i)}>{ format!("{} {reason}", i + 1) }</button>
                }) }
                <button class="quiet" onclick={{ let r = reason_for.clone(); Callback::from(move |_| r.set(None)) }}>{ t.cancel }</button>
            </div>
        },
    };

    let save_line = match &*save_state {
        SaveState::Idle => html! {},
        SaveState::Saving => html! { <span class="pending">{ t.saving }</span> },
        SaveState::Saved(outcome) => html! {
            <span class="ok">{ format!("{} ({})", t.saved, outcome_text(t, *outcome)) }</span>
        },
        SaveState::Failed(e) => {
            html! { <span class="error">{ format!("{}: {e}", t.not_saved) }</span> }
        }
    };
    let c = props.counters;
    html! {
        <section class="inspect">
            <div class="counters" id="counters" data-parts={c.parts.to_string()} data-nok={c.nok.to_string()} data-unsure={c.unsure.to_string()}>
                <span>{ t.parts }<b id="count-parts">{ c.parts }</b></span>
                <span>{ t.fails }<b id="count-nok">{ c.nok }</b></span>
                <span>{ t.held }<b id="count-unsure">{ c.unsure }</b></span>
                <span>{ t.yield_ }<b id="yield">{ c.yield_percent().map_or("–".to_string(), |y| format!("{y:.1} %")) }</b></span>
                <button class="quiet" onclick={props.on_new_shift.reform(|_| ())}>{ t.new_shift }</button>
            </div>
            { picture }
            <div class="controls">
            if let Some(problem) = &props.problem {
                <p class="error" id="live-problem">{ problem }</p>
            }
            if !props.settings.is_complete() {
                <p class="pending">{ t.setup_first }</p>
            }
            { for verdict_banner }
            <div class="part-fields">
                { text_input("part-serial", t.part_serial, &serial) }
                if barcode::available() && review.is_none() {
                    <button id="scan-serial" class="quiet" onclick={on_scan}>{ t.scan }</button>
                }
                { text_input("lot", t.lot, &lot) }
            </div>
            { decisions }
            <p id="inspection-status" data-state={save_state_name(&save_state)}>{ save_line }</p>
            <p class="hint">{ t.shortcuts }</p>
            </div>
        </section>
    }
}

/// The newest analysed frame; right after an inspection took one, the next that arrives.
async fn next_analyzed_frame(live: &LiveLoop) -> Option<AnalyzedFrame> {
    // A software GPU can take seconds per frame.
    for _ in 0..600 {
        if let Some(analyzed) = live.take_latest() {
            return Some(analyzed);
        }
        gloo_timers::future::TimeoutFuture::new(50).await;
    }
    None
}

fn outcome_text(t: &Texts, outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => t.pass,
        Outcome::Nok => t.fail,
        Outcome::Unsure => t.unsure,
    }
}

fn save_state_name(state: &SaveState) -> &'static str {
    match state {
        SaveState::Idle => "idle",
        SaveState::Saving => "saving",
        SaveState::Saved(_) => "saved",
        SaveState::Failed(_) => "failed",
    }
}
