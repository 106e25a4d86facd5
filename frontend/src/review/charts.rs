//! The review's charts, drawn as SVG from `GET /api/v1/stats`: counts per period as bars, the
//! yield trend as a line, the Pareto of defect classes (bars and cumulative line) and the
//! defect-location heat map. Each chart carries its numbers in `data-` attributes, so a test can
//! read what is drawn.

use super::texts::ReviewTexts;
use protocol::{Heatmap, Stats};
use yew::prelude::*;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
/// Room for the axes' labels: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (44.0, 44.0, 16.0, 48.0);
const TOTAL_COLOUR: &str = "#7a8794";
const FAILED_COLOUR: &str = "#e5484d";
const LINE_COLOUR: &str = "#3b82f6";

fn plot_width() -> f64 {
    WIDTH - MARGIN.0 - MARGIN.1
}

fn plot_height() -> f64 {
    HEIGHT - MARGIN.2 - MARGIN.3
}

/// A y position for `value` on an axis from 0 to `max`.
fn y_of(value: f64, max: f64) -> f64 {
    MARGIN.2 + plot_height() * (1.0 - value / max.max(f64::MIN_POSITIVE))
}

/// A round axis maximum at or above `max`, so the ticks read as whole numbers.
fn nice_max(max: u64) -> u64 {
    let max = max.max(1);
    let step = 10u64.pow((max as f64).log10().floor() as u32);
    max.div_ceil(step) * step
}

/// The left axis with ticks at 0, ½ and the maximum, labelled by `label`.
fn left_axis(max: f64, label: impl Fn(f64) -> String) -> Html {
    html! {
        <g class="axis">
            <line x1={MARGIN.0.to_string()} x2={MARGIN.0.to_string()} y1={MARGIN.2.to_string()}
                y2={(MARGIN.2 + plot_height()).to_string()} stroke="currentColor" />
            <line x1={MARGIN.0.to_string()} x2={(WIDTH - MARGIN.1).to_string()}
                y1={(MARGIN.2 + plot_height()).to_string()} y2={(MARGIN.2 + plot_height()).to_string()} stroke="currentColor" />
            { for [0.0, 0.5, 1.0].map(|f| html! {
                <text x={(MARGIN.0 - 4.0).to_string()} y={(y_of(max * f, max) + 4.0).to_string()}
                    text-anchor="end" font-size="11" fill="currentColor">{ label(max * f) }</text>
            }) }
        </g>
    }
}

/// Category labels under the x axis, thinned so they do not overlap.
fn x_labels(labels: &[String], slot: f64) -> Html {
    let every = (labels.len() as f64 * 60.0 / plot_width()).ceil().max(1.0) as usize;
    html! {
        <g class="x-labels">
            { for labels.iter().enumerate().filter(|(i, _)| i % every == 0).map(|(i, label)| html! {
                <text x={(MARGIN.0 + slot * (i as f64 + 0.5)).to_string()} y={(HEIGHT - MARGIN.3 + 14.0).to_string()}
                    text-anchor="middle" font-size="11" fill="currentColor">{ label }</text>
            }) }
        </g>
    }
}

fn legend(entries: &[(&'static str, &'static str)]) -> Html {
    html! {
        <g class="legend">
            { for entries.iter().enumerate().map(|(i, (colour, name))| {
                let x = MARGIN.0 + 150.0 * i as f64;
                html! {
                    <g>
                        <rect x={x.to_string()} y={(HEIGHT - 16.0).to_string()} width="10" height="10" fill={*colour} />
                        <text x={(x + 14.0).to_string()} y={(HEIGHT - 7.0).to_string()} font-size="11" fill="currentColor">{ *name }</text>
                    </g>
                }
            }) }
        </g>
    }
}

fn chart(id: &'static str, title: &str, data: Vec<(&'static str, String)>, body: Html) -> Html {
    let mut svg = html! {
        <svg {id} class="chart" viewBox={format!("0 0 {WIDTH} {HEIGHT}")} role="img" aria-label={title.to_string()}>
            { body }
        </svg>
    };
    if let Html::VTag(tag) = &mut svg {
        for (name, value) in data {
            std::rc::Rc::make_mut(tag).add_attribute(name, value);
        }
    }
    html! { <figure class="chart-box"><figcaption>{ title }</figcaption>{ svg }</figure> }
}

/// Inspections (grey) and failed ones (red) side by side per period.
fn period_bars(
    id: &'static str,
    title: &str,
    t: &ReviewTexts,
    rows: &[(String, u64, u64)],
) -> Html {
    let max = nice_max(rows.iter().map(|r| r.1).max().unwrap_or(0)) as f64;
    let slot = plot_width() / rows.len().max(1) as f64;
    let bar = slot * 0.4;
    let bars = rows.iter().enumerate().map(|(i, (period, total, failed))| {
        let x = MARGIN.0 + slot * i as f64 + slot * 0.1;
        let rect = |x: f64, value: u64, colour: &str, class: &'static str| {
            let y = y_of(value as f64, max);
            html! {
                <rect {class} x={x.to_string()} y={y.to_string()} width={bar.to_string()}
                    height={(MARGIN.2 + plot_height() - y).to_string()} fill={colour.to_string()}>
                    <title>{ format!("{period}: {value}") }</title>
                </rect>
            }
        };
        html! {
            <g class="period" data-period={period.clone()}>
                { rect(x, *total, TOTAL_COLOUR, "total") }
                { rect(x + bar, *failed, FAILED_COLOUR, "failed") }
            </g>
        }
    });
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart(
        id,
        title,
        vec![
            ("data-periods", rows.len().to_string()),
            (
                "data-inspections",
                rows.iter().map(|r| r.1).sum::<u64>().to_string(),
            ),
            (
                "data-failed",
                rows.iter().map(|r| r.2).sum::<u64>().to_string(),
            ),
        ],
        html! {
            <>
                { left_axis(max, |v| format!("{v:.0}")) }
                { for bars }
                { x_labels(&labels, slot) }
                { legend(&[(TOTAL_COLOUR, t.inspections), (FAILED_COLOUR, t.failed)]) }
            </>
        },
    )
}

fn polyline(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn yield_trend(t: &ReviewTexts, stats: &Stats) -> Html {
    let days = &stats.yield_per_day;
    let slot = plot_width() / days.len().max(1) as f64;
    let points: Vec<(f64, f64)> = days
        .iter()
        .enumerate()
        .map(|(i, d)| (MARGIN.0 + slot * (i as f64 + 0.5), y_of(d.yield_ratio, 1.0)))
        .collect();
    let labels: Vec<String> = days.iter().map(|d| d.date.clone()).collect();
    chart(
        "chart-yield",
        t.yield_trend,
        vec![
            ("data-days", days.len().to_string()),
            (
                "data-yields",
                days.iter()
                    .map(|d| format!("{:.3}", d.yield_ratio))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ],
        html! {
            <>
                { left_axis(1.0, |v| format!("{:.0}%", v * 100.0)) }
                <polyline points={polyline(&points)} fill="none" stroke={LINE_COLOUR} stroke-width="2" />
                { for points.iter().zip(days).map(|((x, y), d)| html! {
                    <circle cx={x.to_string()} cy={y.to_string()} r="3.5" fill={LINE_COLOUR}>
                        <title>{ format!("{}: {:.1}% ({}/{})", d.date, d.yield_ratio * 100.0, d.passed, d.inspections) }</title>
                    </circle>
                }) }
                { x_labels(&labels, slot) }
            </>
        },
    )
}

fn pareto(t: &ReviewTexts, stats: &Stats) -> Html {
    let classes = &stats.pareto;
    let max = nice_max(classes.iter().map(|c| c.detections).max().unwrap_or(0)) as f64;
    let slot = plot_width() / classes.len().max(1) as f64;
    let points: Vec<(f64, f64)> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                MARGIN.0 + slot * (i as f64 + 0.5),
                y_of(c.cumulative_share, 1.0),
            )
        })
        .collect();
    let labels: Vec<String> = classes.iter().map(|c| c.label.clone()).collect();
    let right = WIDTH - MARGIN.1;
    chart(
        "chart-pareto",
        t.pareto,
        vec![
            ("data-classes", labels.join(" ")),
            (
                "data-detections",
                classes
                    .iter()
                    .map(|c| c.detections.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ],
        html! {
            <>
                { left_axis(max, |v| format!("{v:.0}")) }
                { for [0.0, 0.5, 1.0].map(|f| html! {
                    <text x={(right + 4.0).to_string()} y={(y_of(f, 1.0) + 4.0).to_string()}
                        font-size="11" fill={LINE_COLOUR}>{ format!("{:.0}%", f * 100.0) }</text>
                }) }
                { for classes.iter().enumerate().map(|(i, c)| {
                    let y = y_of(c.detections as f64, max);
                    html! {
                        <rect class="class-bar" data-label={c.label.clone()} x={(MARGIN.0 + slot * i as f64 + slot * 0.15).to_string()}
                            y={y.to_string()} width={(slot * 0.7).to_string()}
                            height={(MARGIN.2 + plot_height() - y).to_string()} fill={FAILED_COLOUR}>
                            <title>{ format!("{}: {}", c.label, c.detections) }</title>
                        </rect>
                    }
                }) }
                <polyline class="cumulative" points={polyline(&points)} fill="none" stroke={LINE_COLOUR} stroke-width="2" />
                { for points.iter().map(|(x, y)| html! { <circle cx={x.to_string()} cy={y.to_string()} r="3" fill={LINE_COLOUR} /> }) }
                { x_labels(&labels, slot) }
                { legend(&[(FAILED_COLOUR, t.detections), (LINE_COLOUR, t.cumulative)]) }
            </>
        },
    )
}

/// The part's frame as a square of cells, each as red as its share of the busiest cell.
fn heatmap(t: &ReviewTexts, map: &Heatmap) -> Html {
    let bins = map.bins.max(1) as usize;
    let busiest = map.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let side = plot_height() + MARGIN.3 - 8.0;
    let cell = side / bins as f64;
    let left = (WIDTH - side) / 2.0;
    chart(
        "chart-heatmap",
        t.heatmap,
        vec![
            ("data-bins", bins.to_string()),
            ("data-total", map.counts.iter().sum::<u64>().to_string()),
        ],
        html! {
            <>
                <rect x={left.to_string()} y={MARGIN.2.to_string()} width={side.to_string()} height={side.to_string()}
                    fill="none" stroke="currentColor" />
                { for map.counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| html! {
                    <rect class="cell" x={(left + cell * (i % bins) as f64).to_string()}
                        y={(MARGIN.2 + cell * (i / bins) as f64).to_string()}
                        width={cell.to_string()} height={cell.to_string()} fill={FAILED_COLOUR}
                        fill-opacity={format!("{:.2}", 0.15 + 0.85 * n as f64 / busiest)}>
                        <title>{ n }</title>
                    </rect>
                }) }
            </>
        },
    )
}

#[derive(Properties, PartialEq)]
pub struct ChartsProps {
    pub texts: &'static ReviewTexts,
    pub stats: Stats,
    /// The filters' query the statistics answer, shown as `data-query`.
    pub query: String,
}

#[function_component(Charts)]
pub fn charts(props: &ChartsProps) -> Html {
    let (t, stats) = (props.texts, &props.stats);
    if stats.per_hour.is_empty() {
        return html! { <p id="review-charts" data-query={props.query.clone()}>{ t.no_data }</p> };
    }
    let hours: Vec<(String, u64, u64)> = stats
        .per_hour
        .iter()
        // `2026-11-24T08` reads as `24. 08h`.
        .map(|p| (hour_label(&p.period), p.inspections, p.failed))
        .collect();
    let shifts: Vec<(String, u64, u64)> = stats
        .per_shift
        .iter()
        .map(|s| {
            (
                format!("{} {}", s.date.get(5..).unwrap_or(&s.date), s.shift),
                s.inspections,
                s.failed,
            )
        })
        .collect();
    html! {
        <section id="review-charts" class="charts" data-query={props.query.clone()}>
            { period_bars("chart-per-hour", t.per_hour, t, &hours) }
            { period_bars("chart-per-shift", t.per_shift, t, &shifts) }
            { yield_trend(t, stats) }
            { pareto(t, stats) }
            { heatmap(t, &stats.heatmap) }
        </section>
    }
}

fn hour_label(period: &str) -> String {
    match period.split_once('T') {
        Some((date, hour)) => format!("{} {hour}h", date.get(5..).unwrap_or(date)),
        None => period.to_string(),
    }
}
