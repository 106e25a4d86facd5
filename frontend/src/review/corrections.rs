//! A supervisor's corrections of one inspection's detections, from its opened snapshot: confirm
//! it, delete it (not a defect) or relabel it as another class seen in the history. Each is sent
//! at once (`POST /api/v1/inspections/{id}/corrections`) and listed as the server recorded it.

use super::{api::call, texts::ReviewTexts};
use crate::history::correction_text;
use protocol::{Correction, CorrectionAction, InspectionRecord};
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct CorrectionsProps {
    pub texts: &'static ReviewTexts,
    pub record: InspectionRecord,
    /// Classes a detection may be relabelled as: `(class_id, label)`.
    pub classes: Vec<(u32, String)>,
}

#[function_component(Corrections)]
pub fn corrections(props: &CorrectionsProps) -> Html {
    let t = props.texts;
    let made = use_state(Vec::<Correction>::new);
    let problem = use_state(|| None::<String>);
    let send = {
        let (made, problem, id) = (made.clone(), problem.clone(), props.record.id);
        move |action: CorrectionAction| {
            let (made, problem) = (made.clone(), problem.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let url = format!("api/v1/inspections/{id}/corrections");
                match call::<Correction>("POST", &url, Some(&action)).await {
                    Ok(correction) => {
                        let mut next = (*made).clone();
                        next.push(correction);
                        made.set(next);
                        problem.set(None);
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
            <ul class="corrections">
                { for made.iter().map(|c| html! {
                    <li class="correction">{ format!("{} {}: {}", c.corrected_at.format("%Y-%m-%d %H:%M"), c.supervisor, correction_text(&c.action, detections)) }</li>
                }) }
            </ul>
        </div>
    }
}
