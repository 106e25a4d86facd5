//! A supervisor's corrections of one inspection's detections, from its opened snapshot: confirm
//! it, delete it (not a defect) or relabel it as another class of the model. Each is sent at once
//! (`POST /api/v1/inspections/{id}/corrections`) and handed to the evidence view as the server
//! recorded it.

use super::{
    api::{Failure, call},
    texts::ReviewTexts,
};
use protocol::{Correction, CorrectionAction, InspectionRecord};
use uuid::Uuid;
use yew::prelude::*;

/// Stores one correction of the inspection `id`; the correction as the server recorded it.
pub async fn send_correction(id: Uuid, action: &CorrectionAction) -> Result<Correction, Failure> {
    call(
        "POST",
        &format!("api/v1/inspections/{id}/corrections"),
        Some(action),
    )
    .await
}

#[derive(Properties, PartialEq)]
pub struct CorrectionsProps {
    pub texts: &'static ReviewTexts,
    pub record: InspectionRecord,
    /// Classes a detection may be relabelled as: `(class_id, label)`.
    pub classes: Vec<(u32, String)>,
    /// Each correction the server stored.
    pub on_made: Callback<Correction>,
}

#[function_component(Corrections)]
pub fn corrections(props: &CorrectionsProps) -> Html {
    let t = props.texts;
    let problem = use_state(|| None::<String>);
    let send = {
        let (problem, id, on_made) = (problem.clone(), props.record.id, props.on_made.clone());
        move |action: CorrectionAction| {
            let (problem, on_made) = (problem.clone(), on_made.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match send_correction(id, &action).await {
                    Ok(correction) => {
                        problem.set(None);
                        on_made.emit(correction);
                    }
                    Err(e) => problem.set(Some(e.to_string())),
                }
            });
        }
    };
    let detections = &props.record.detections;
    html! {
        <div class="corrections-form">
            <ul class="review-detections">
                { for detections.iter().enumerate().map(|(i, d)| {
                    let detection = i as u32;
                    let on = |action: CorrectionAction| {
                        let send = send.clone();
                        Callback::from(move |_: MouseEvent| send(action.clone()))
                    };
                    let on_relabel = {
                        let (send, classes) = (send.clone(), props.classes.clone());
                        Callback::from(move |e: Event| {
                            let picked = e.target_unchecked_into::<web_sys::HtmlSelectElement>().value();
                            if let Some((class_id, label)) = classes.iter().find(|(_, l)| *l == picked) {
                                send(CorrectionAction::Relabel { detection, class_id: *class_id, label: label.clone() });
                            }
                        })
                    };
                    html! {
                        <li class="review-detection" data-index={i.to_string()}>
                            <span>{ format!("{} {:.0}%", d.label, d.score * 100.0) }</span>
                            <button class="correct-confirm quiet" onclick={on(CorrectionAction::Confirm { detection })}>{ t.confirm_detection }</button>
                            <button class="correct-delete quiet" onclick={on(CorrectionAction::Delete { detection })}>{ t.delete_detection }</button>
                            <select class="correct-relabel" onchange={on_relabel} aria-label={t.relabel_as}>
                                <option value="" selected=true>{ t.relabel_as }</option>
                                { for props.classes.iter().filter(|(_, l)| *l != d.label).map(|(_, l)| html! {
                                    <option value={l.clone()}>{ l }</option>
                                }) }
                            </select>
                        </li>
                    }
                }) }
            </ul>
            if let Some(problem) = &*problem { <p class="error">{ problem }</p> }
        </div>
    }
}
