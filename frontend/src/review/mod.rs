//! The supervisors' review area: login, the history of every station under filters (paged by
//! the server's keyset cursor), each inspection's evidence and corrections, the charts, the CSV
//! export of what the filters select, models and the audit trail. Everything comes from the server's review API; none
//! of it touches the kiosk's own IndexedDB.

mod api;
mod audit;
mod charts;
mod corrections;
mod evidence;
mod missed_defect;
mod models;
pub mod texts;

use crate::i18n::Texts;
use api::{Failure, Filters, call};
use audit::Audit;
use charts::Charts;
use evidence::Evidence;
use models::Models;
use protocol::{InspectionPage, InspectionRecord, LoginRequest, SessionInfo, Stats, Verdict};
use std::rc::Rc;
use uuid::Uuid;
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Records per history page.
const PAGE_RECORDS: u32 = 50;

#[derive(Debug, Clone, PartialEq)]
enum Session {
    Checking,
    /// Not logged in; why the last attempt failed, if one did.
    LoggedOut(Option<String>),
    LoggedIn(SessionInfo),
}

#[derive(Properties, PartialEq)]
pub struct ReviewProps {
    pub texts: &'static Texts,
}

#[function_component(Review)]
pub fn review(props: &ReviewProps) -> Html {
    let t = props.texts.review;
    let session = use_state(|| Session::Checking);
    let name = use_node_ref();
    let password = use_node_ref();
    {
        let session = session.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                session.set(
                    match call::<SessionInfo>("GET", "api/v1/session", None::<&()>).await {
                        Ok(info) => Session::LoggedIn(info),
                        Err(Failure { status: 401, .. }) => Session::LoggedOut(None),
                        Err(e) => Session::LoggedOut(Some(e.to_string())),
                    },
                );
            });
        });
    }
    let on_login = {
        let (session, name, password) = (session.clone(), name.clone(), password.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let value = |node: &NodeRef| {
                node.cast::<HtmlInputElement>()
                    .map(|i| i.value())
                    .unwrap_or_default()
            };
            let request = LoginRequest {
                name: value(&name).trim().to_string(),
                password: value(&password),
            };
            let session = session.clone();
            wasm_bindgen_futures::spawn_local(async move {
                session.set(
                    match call::<SessionInfo>("POST", "api/v1/session", Some(&request)).await {
                        Ok(info) => Session::LoggedIn(info),
                        Err(e) => Session::LoggedOut(Some(e.to_string())),
                    },
                );
            });
        })
    };
    let on_logout = {
        let session = session.clone();
        Callback::from(move |_| {
            let session = session.clone();
            wasm_bindgen_futures::spawn_local(async move {
                session.set(
                    match call::<serde_json::Value>("DELETE", "api/v1/session", None::<&()>).await {
                        Ok(_) => Session::LoggedOut(None),
                        Err(e) => Session::LoggedOut(Some(e.to_string())),
                    },
                );
            });
        })
    };

    match &*session {
        Session::Checking => html! { <main><p class="pending">{ props.texts.loading }</p></main> },
        Session::LoggedOut(problem) => html! {
            <main class="review">
                <form id="review-login-form" class="login" onsubmit={on_login}>
                    <h2>{ t.title }</h2>
                    <label for="review-name">{ t.name }</label>
                    <input id="review-name" ref={name} autocomplete="username" />
                    <label for="review-password">{ t.password }</label>
                    <input id="review-password" ref={password} type="password" autocomplete="current-password" />
                    <button id="review-login" type="submit">{ t.log_in }</button>
                    if let Some(problem) = problem { <p class="error" id="review-login-error">{ problem }</p> }
                </form>
            </main>
        },
        Session::LoggedIn(info) => html! {
            <main class="review">
                <p class="review-session">
                    <span id="review-supervisor">{ format!("{} {}", t.logged_in_as, info.supervisor) }</span>
                    <button id="review-logout" onclick={on_logout}>{ t.log_out }</button>
                </p>
                <Board texts={props.texts} />
                <Models texts={t} />
                <Audit texts={t} />
            </main>
        },
    }
}

/// What one query selected: the pages read so far and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
struct Loaded {
    query: String,
    records: Vec<InspectionRecord>,
    next_cursor: Option<String>,
}

fn page_url(query: &str, cursor: Option<&str>) -> String {
    let mut url = format!("api/v1/inspections?limit={PAGE_RECORDS}");
    if !query.is_empty() {
        url.push('&');
        url.push_str(query);
    }
    if let Some(cursor) = cursor {
        url.push_str("&cursor=");
        url.extend(form_urlencoded::byte_serialize(cursor.as_bytes()));
    }
    url
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The filters as the inputs edit them: one field at a time, each edit applied to the latest
/// filters (two edits before a render both count).
#[derive(Debug, Clone, Default, PartialEq)]
struct EditedFilters(Filters);

struct SetFilter(fn(&mut Filters) -> &mut String, String);

impl Reducible for EditedFilters {
    type Action = SetFilter;

    fn reduce(self: Rc<Self>, SetFilter(pick, value): SetFilter) -> Rc<Self> {
        let mut next = (*self).clone();
        *pick(&mut next.0) = value;
        Rc::new(next)
    }
}

#[derive(Properties, PartialEq)]
struct BoardProps {
    texts: &'static Texts,
}

/// The filters, the history table, the charts and the export, all following one set of filters.
#[function_component(Board)]
fn board(props: &BoardProps) -> Html {
    let (texts, t) = (props.texts, props.texts.review);
    let edited = use_reducer(EditedFilters::default);
    let filters = &edited.0;
    let loaded = use_state(|| None::<Result<Loaded, String>>);
    // The statistics and the query they answer.
    let stats = use_state(|| None::<(String, Result<Stats, String>)>);
    let opened = use_state(|| None::<Uuid>);
    // The query whose answers are wanted: an answer to an older one arrives too late to show.
    let current = use_mut_ref(String::new);

    {
        let (loaded, stats, opened, current) = (
            loaded.clone(),
            stats.clone(),
            opened.clone(),
            current.clone(),
        );
        use_effect_with(filters.clone(), move |filters| {
            let query = filters.query();
            *current.borrow_mut() = query.clone();
            opened.set(None);
            wasm_bindgen_futures::spawn_local(async move {
                let page =
                    call::<InspectionPage>("GET", &page_url(&query, None), None::<&()>).await;
                if *current.borrow() != query {
                    return;
                }
                loaded.set(Some(
                    page.map(|p| Loaded {
                        query: query.clone(),
                        records: p.records,
                        next_cursor: p.next_cursor,
                    })
                    .map_err(|e| e.to_string()),
                ));
                let counted =
                    call::<Stats>("GET", &with_query("api/v1/stats", &query), None::<&()>).await;
                if *current.borrow() == query {
                    stats.set(Some((query, counted.map_err(|e| e.to_string()))));
                }
            });
        });
    }

    let on_more = {
        let (loaded, current) = (loaded.clone(), current.clone());
        Callback::from(move |_| {
            let Some(Ok(so_far)) = (*loaded).clone() else {
                return;
            };
            let Some(cursor) = so_far.next_cursor.clone() else {
                return;
            };
            let (loaded, current) = (loaded.clone(), current.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let query = so_far.query;
                let page =
                    call::<InspectionPage>("GET", &page_url(&query, Some(&cursor)), None::<&()>)
                        .await;
                if *current.borrow() != query {
                    return;
                }
                loaded.set(Some(match page {
                    Ok(page) => {
                        let mut records = so_far.records;
                        records.extend(page.records);
                        Ok(Loaded {
                            query,
                            records,
                            next_cursor: page.next_cursor,
                        })
                    }
                    Err(e) => Err(e.to_string()),
                }));
            });
        })
    };

    let field = |id: &'static str,
                 label: &'static str,
                 kind: &'static str,
                 pick: fn(&mut Filters) -> &mut String| {
        let edited = edited.clone();
        let onchange = Callback::from(move |e: Event| {
            edited.dispatch(SetFilter(
                pick,
                e.target_unchecked_into::<HtmlInputElement>().value(),
            ));
        });
        let value = pick(&mut filters.clone()).clone();
        let list = (id == "review-class").then_some("review-classes");
        html! {
            <label class="filter">
                <span>{ label }</span>
                <input {id} type={kind} {value} {onchange} list={list} />
            </label>
        }
    };
    let on_verdict = {
        let edited = edited.clone();
        Callback::from(move |e: Event| {
            let value = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            edited.dispatch(SetFilter(|f| &mut f.verdict, value));
        })
    };
    let known_classes: Vec<String> = match &*stats {
        Some((_, Ok(stats))) => stats.pareto.iter().map(|c| c.label.clone()).collect(),
        _ => vec![],
    };
    let query = filters.query();
    // Every class seen in the loaded history, by id: what a detection may be relabelled as.
    let classes: Vec<(u32, String)> = match &*loaded {
        Some(Ok(loaded)) => {
            let seen: std::collections::BTreeMap<u32, String> = loaded
                .records
                .iter()
                .flat_map(|r| r.detections.iter().map(|d| (d.class_id, d.label.clone())))
                .collect();
            seen.into_iter().collect()
        }
        _ => vec![],
    };

    let row = |r: &InspectionRecord| {
        let id = r.id;
        let onclick = {
            let opened = opened.clone();
            Callback::from(move |_| opened.set(if *opened == Some(id) { None } else { Some(id) }))
        };
        let (verdict_class, verdict_text) = match r.verdict {
            Verdict::Pass => ("verdict-badge pass", texts.pass),
            Verdict::Fail => ("verdict-badge fail", texts.fail),
        };
        let labels: Vec<String> = r
            .detections
            .iter()
            .map(|d| format!("{} {:.0}%", d.label, d.score * 100.0))
            .collect();
        let detail = (*opened == Some(id)).then(|| {
            html! {
                <tr class="review-detail" data-id={id.to_string()}>
                    <td colspan="9">
                        <Evidence texts={t} record={r.clone()} seen_classes={classes.clone()} />
                    </td>
                </tr>
            }
        });
        html! {
            <>
                <tr class="review-row" data-id={id.to_string()} data-verdict={format!("{:?}", r.verdict).to_lowercase()} {onclick}>
                    <td>{ r.local_time.format("%Y-%m-%d %H:%M:%S").to_string() }</td>
                    <td>{ &r.station }</td>
                    <td>{ &r.line }</td>
                    <td>{ &r.operator }</td>
                    <td><span class={verdict_class}>{ verdict_text }</span></td>
                    <td class="labels">{ labels.join(", ") }</td>
                    <td>{ &r.lot }</td>
                    <td>{ if r.part_serial.is_empty() { "–".to_string() } else { r.part_serial.clone() } }</td>
                    <td>{ format!("{} {}", r.model.id, r.model.version) }</td>
                </tr>
                { for detail }
            </>
        }
    };

    html! {
        <>
            <section class="filters review-filters">
                { field("review-from", t.from, "date", |f| &mut f.from) }
                { field("review-to", t.to, "date", |f| &mut f.to) }
                { field("review-line", texts.line, "text", |f| &mut f.line) }
                { field("review-station", texts.station, "text", |f| &mut f.station) }
                { field("review-operator", texts.operator, "text", |f| &mut f.operator) }
                <label class="filter">
                    <span>{ texts.verdict }</span>
                    <select id="review-verdict" onchange={on_verdict}>
                        <option value="" selected={filters.verdict.is_empty()}>{ texts.all }</option>
                        <option value="pass" selected={filters.verdict == "pass"}>{ texts.pass }</option>
                        <option value="fail" selected={filters.verdict == "fail"}>{ texts.fail }</option>
                    </select>
                </label>
                { field("review-class", texts.defect_class, "text", |f| &mut f.class) }
                <datalist id="review-classes">
                    { for known_classes.iter().map(|c| html! { <option value={c.clone()} /> }) }
                </datalist>
                { field("review-lot", texts.lot, "text", |f| &mut f.lot) }
                { field("review-serial", t.serial, "text", |f| &mut f.serial) }
                <a id="review-csv" class="button" href={with_query("api/v1/inspections.csv", &query)}
                    download="linecheck-inspections.csv">{ t.csv }</a>
                <a id="review-training-set" class="button" href={with_query("api/v1/training-set.zip", &query)}
                    download="linecheck-training-set.zip">{ t.training_set }</a>
                if let Some(problem) = filters.problem() { <p class="error">{ problem }</p> }
            </section>
            {
                match &*loaded {
                    None => html! { <p class="pending">{ texts.loading }</p> },
                    Some(Err(e)) => html! { <p class="error" id="review-error">{ e }</p> },
                    Some(Ok(loaded)) if loaded.records.is_empty() => html! {
                        <p id="review-empty">{ texts.no_inspections }</p>
                    },
                    Some(Ok(loaded)) => html! {
                        <section class="review-history">
                            <table id="review-table" data-count={loaded.records.len().to_string()}
                                data-query={loaded.query.clone()}>
                                <thead><tr>
                                    <th>{ t.time }</th><th>{ texts.station }</th><th>{ texts.line }</th>
                                    <th>{ texts.operator }</th><th>{ texts.verdict }</th><th>{ t.detections }</th>
                                    <th>{ texts.lot }</th><th>{ t.serial }</th><th>{ t.model }</th>
                                </tr></thead>
                                <tbody>{ for loaded.records.iter().map(row) }</tbody>
                            </table>
                            <p class="muted">{ format!("{} {}", loaded.records.len(), t.shown_of) }</p>
                            if loaded.next_cursor.is_some() {
                                <button id="review-more" onclick={on_more}>{ t.more }</button>
                            }
                        </section>
                    },
                }
            }
            {
                match &*stats {
                    None => html! {},
                    Some((_, Err(e))) => html! { <p class="error">{ e }</p> },
                    Some((query, Ok(stats))) => html! {
                        <Charts texts={t} stats={stats.clone()} query={query.clone()} />
                    },
                }
            }
        </>
    }
}
