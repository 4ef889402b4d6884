//! Charts drawn on the server as inline SVG (no script, no network): a feature's two
//! distributions side by side, a signal over windows against its threshold, a bar series,
//! and the colour of a heatmap cell.

use maud::{html, Markup};

use super::layout::num;
use super::view::Histogram;

/// Width of a distribution chart's slot, pixels.
const SLOT: f64 = 34.0;
/// Plot height of the small charts, pixels.
const PLOT: f64 = 120.0;

/// A feature's reference and current distributions as paired bars, each slot's share of its
/// side. Numeric slots are labelled by their edges, categorical ones by their labels.
pub fn distribution(histogram: &Histogram) -> Markup {
    let slots = histogram.reference.len().min(histogram.current.len());
    let labels = slot_labels(histogram, slots);
    let total = |counts: &[u64]| counts.iter().sum::<u64>().max(1) as f64;
    let (reference_total, current_total) = (total(&histogram.reference), total(&histogram.current));
    let shares: Vec<(f64, f64)> = (0..slots)
        .map(|i| {
            (
                histogram.reference[i] as f64 / reference_total,
                histogram.current[i] as f64 / current_total,
            )
        })
        .collect();
    let top = shares.iter().fold(0.01_f64, |m, (r, c)| m.max(*r).max(*c));
    let label_room = 64.0;
    let width = 44.0 + SLOT * slots as f64;
    let height = 14.0 + PLOT + label_room;
    let y = |share: f64| 10.0 + PLOT * (1.0 - share / top);
    html! {
        svg.chart.distribution viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) role="img"
            aria-label="reference and current distributions" {
            line.axis x1="40" y1=(10.0 + PLOT) x2=(width) y2=(10.0 + PLOT) {}
            text.tick x="36" y=(y(top) + 4.0) text-anchor="end" { (percent0(top)) }
            text.tick x="36" y=(10.0 + PLOT) text-anchor="end" { "0" }
            @for (i, (reference, current)) in shares.iter().enumerate() {
                @let x = 44.0 + SLOT * i as f64;
                rect.reference x=(x + 2.0) y=(y(*reference)) width=(SLOT / 2.0 - 3.0) height=(10.0 + PLOT - y(*reference)) {
                    title { (labels[i]) ": reference " (percent1(*reference)) " (" (histogram.reference[i]) ")" }
                }
                rect.current x=(x + SLOT / 2.0) y=(y(*current)) width=(SLOT / 2.0 - 3.0) height=(10.0 + PLOT - y(*current)) {
                    title { (labels[i]) ": current " (percent1(*current)) " (" (histogram.current[i]) ")" }
                }
                text.tick transform={ "translate(" (x + SLOT / 2.0 + 3.0) "," (PLOT + 20.0) ") rotate(-40)" } text-anchor="end" { (clip(&labels[i])) }
            }
        }
    }
}

/// Each slot's label: categorical labels, or the numeric slot's upper edge (`<e0`, …, `>eN`).
fn slot_labels(histogram: &Histogram, slots: usize) -> Vec<String> {
    if let Some(labels) = &histogram.labels {
        return (0..slots)
            .map(|i| labels.get(i).cloned().unwrap_or_default())
            .collect();
    }
    let edges = histogram.edges.as_deref().unwrap_or(&[]);
    (0..slots)
        .map(|i| match i {
            0 => format!("<{}", edges.first().map_or_else(String::new, |e| num(*e))),
            i if i + 1 == slots => {
                format!(">{}", edges.last().map_or_else(String::new, |e| num(*e)))
            }
            i => format!("≤{}", edges.get(i).map_or_else(String::new, |e| num(*e))),
        })
        .collect()
}

fn clip(label: &str) -> String {
    if label.chars().count() > 12 {
        format!("{}…", label.chars().take(11).collect::<String>())
    } else {
        label.to_string()
    }
}

fn percent0(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn percent1(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// One point of a signal: the window, the value the policy read and its threshold.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// The window's index.
    pub window: u64,
    /// The value read, if any.
    pub value: Option<f64>,
    /// The threshold it was compared with, if any.
    pub threshold: Option<f64>,
    /// The policy triggered on this window.
    pub triggered: bool,
    /// The reading was a hit.
    pub hit: bool,
}

/// The smallest value a log axis shows.
const FLOOR: f64 = 1e-16;

/// A signal over windows: its values (a line, hits as dots), its threshold (dashed) and the
/// windows where the policy triggered (red bars). p-values go on a log axis.
pub fn signal(points: &[Point], log: bool) -> Markup {
    let width = 360.0;
    let (left, right) = (44.0, 8.0);
    let values: Vec<f64> = points
        .iter()
        .flat_map(|p| [p.value, p.threshold])
        .flatten()
        .filter(|v| v.is_finite())
        .map(|v| if log { v.max(FLOOR).log10() } else { v })
        .collect();
    let (mut low, mut high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    if values.is_empty() {
        (low, high) = (0.0, 1.0);
    }
    if high - low < 1e-12 {
        (low, high) = (low - 0.5, high + 0.5);
    }
    let (first, last) = match (points.first(), points.last()) {
        (Some(f), Some(l)) => (
            f.window as f64,
            (l.window as f64).max(f.window as f64 + 1.0),
        ),
        _ => (0.0, 1.0),
    };
    let x = |w: u64| left + (width - left - right) * (w as f64 - first) / (last - first);
    let y = |v: f64| {
        let v = if log { v.max(FLOOR).log10() } else { v };
        8.0 + PLOT * (high - v) / (high - low)
    };
    let line = |pick: fn(&Point) -> Option<f64>| -> String {
        points
            .iter()
            .filter_map(|p| {
                pick(p)
                    .filter(|v| v.is_finite())
                    .map(|v| format!("{:.1},{:.1}", x(p.window), y(v)))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let label = |v: f64| match log {
        true if v.round() == 0.0 => "1".to_string(),
        true => format!("1e{v:.0}"),
        false => num(v),
    };
    html! {
        svg.chart.signal viewBox={ "0 0 " (width) " " (PLOT + 30.0) } width=(width) height=(PLOT + 30.0) role="img" aria-label="signal over windows" {
            @for p in points.iter().filter(|p| p.triggered) {
                rect.trigger x=(x(p.window) - 2.0) y="8" width="4" height=(PLOT) { title { "triggered in window " (p.window) } }
            }
            line.axis x1=(left) y1=(8.0 + PLOT) x2=(width - right) y2=(8.0 + PLOT) {}
            text.tick x=(left - 4.0) y="14" text-anchor="end" { (label(high)) }
            text.tick x=(left - 4.0) y=(8.0 + PLOT) text-anchor="end" { (label(low)) }
            text.tick x=(left) y=(PLOT + 24.0) { "window " (first as u64) }
            text.tick x=(width - right) y=(PLOT + 24.0) text-anchor="end" { "window " (last as u64) }
            polyline.threshold points=(line(|p| p.threshold)) {}
            polyline.value points=(line(|p| p.value)) {}
            @for p in points {
                @if let Some(v) = p.value.filter(|v| v.is_finite()) {
                    circle class=(if p.hit { "hit" } else { "miss" }) cx=(format!("{:.1}", x(p.window))) cy=(format!("{:.1}", y(v))) r=(if p.hit { 3.5 } else { 2.0 }) {
                        title { "window " (p.window) ": " (num(v)) @if let Some(t) = p.threshold { " (threshold " (num(t)) ")" } }
                    }
                }
            }
        }
    }
}

/// A bar per window, e.g. records per second; `marked` bars are drawn as alarms.
pub fn bars(values: &[(u64, f64, bool)], unit: &str) -> Markup {
    let width = 640.0;
    let height = 60.0;
    let top = values
        .iter()
        .fold(0.0_f64, |m, (_, v, _)| m.max(*v))
        .max(1e-9);
    let step = ((width - 60.0) / values.len().max(1) as f64).min(18.0);
    let (first, last) = (values.first().map(|v| v.0), values.last().map(|v| v.0));
    html! {
        svg.chart.bars viewBox={ "0 0 " (width) " " (height + 24.0) } width=(width) height=(height + 24.0) role="img" aria-label=(unit) {
            text.tick x="56" y="12" text-anchor="end" { (num(top)) }
            text.tick x="56" y=(8.0 + height) text-anchor="end" { "0" }
            @if let (Some(first), Some(last)) = (first, last) {
                text.tick x="60" y=(height + 22.0) { "window " (first) }
                text.tick x=(60.0 + step * values.len() as f64) y=(height + 22.0) text-anchor="end" { "window " (last) }
            }
            @for (i, (window, value, marked)) in values.iter().enumerate() {
                @let h = height * value / top;
                rect class=(if *marked { "bar marked" } else { "bar" }) x=(60.0 + step * i as f64) y=(8.0 + height - h) width=((step - 1.0).max(1.0)) height=(h) {
                    title { "window " (window) ": " (num(*value)) " " (unit) }
                }
            }
        }
    }
}

/// A heatmap cell's background for an evidence ratio (1 at the threshold): pale below it,
/// warming towards it, red past it.
pub fn heat(evidence: Option<f64>) -> String {
    let Some(e) = evidence else {
        return "#f1f1f4".into();
    };
    if e >= 1.0 {
        let depth = ((e - 1.0) / 4.0).min(1.0);
        let (r, g, b) = mix((230, 85, 70), (160, 20, 30), depth);
        return format!("rgb({r},{g},{b})");
    }
    let (r, g, b) = mix((238, 242, 248), (250, 190, 90), e.clamp(0.0, 1.0).powf(1.5));
    format!("rgb({r},{g},{b})")
}

fn mix(a: (u8, u8, u8), b: (u8, u8, u8), t: f64) -> (u8, u8, u8) {
    let channel = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round() as u8;
    (channel(a.0, b.0), channel(a.1, b.1), channel(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_slots_are_labelled_by_their_edges() {
        let histogram = Histogram {
            edges: Some(vec![1.0, 2.0, 3.0]),
            labels: None,
            reference: vec![0, 5, 5, 0],
            current: vec![1, 2, 3, 4],
        };
        assert_eq!(slot_labels(&histogram, 4), ["<1", "≤2", "≤3", ">3"]);
        let svg = distribution(&histogram).into_string();
        assert_eq!(svg.matches("<rect class=\"current\"").count(), 4);
        assert!(svg.contains("&gt;3: current 40.0% (4)"), "{svg}");
    }

    #[test]
    fn heat_warms_towards_the_threshold_and_turns_red_past_it() {
        assert_eq!(heat(Some(0.0)), "rgb(238,242,248)");
        assert_eq!(heat(Some(1.0)), "rgb(230,85,70)");
        assert_eq!(heat(None), "#f1f1f4");
    }
}
