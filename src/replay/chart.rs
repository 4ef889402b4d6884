//! `replay --chart`: every policy's signals over the replayed windows, as one SVG.
//!
//! One panel per policy and signal, titled `policy: subject metric`. A panel holds the values
//! that policy read, that policy's own threshold (dashed), and red marks only at the windows
//! where that policy triggered, with a legend. p-values and scores are drawn on a log axis
//! clamped at [`P_VALUE_FLOOR`]: a p-value of 0 (a float underflow, not a certainty) is drawn at
//! the floor, labelled `≤ 1e-16 (floor)`. Values that are not finite are left out; a signal
//! without a single finite value (a feature missing from the data) gets a panel that says so.
//! The drawing's size depends on the number of windows and signals only, never on the values.

use std::path::Path;

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Replay;
use crate::policy::SignalReading;

/// The lowest value a log panel shows; smaller ones (0 included) are drawn on it.
pub const P_VALUE_FLOOR: f64 = 1e-16;

/// Height of one panel, pixels.
const PANEL_HEIGHT: u32 = 240;
/// Width of the chart, pixels.
const WIDTH: u32 = 960;

/// One policy's signal over the replay.
struct Panel {
    title: String,
    log: bool,
    values: Vec<(f64, f64)>,
    thresholds: Vec<(f64, f64)>,
    triggers: Vec<(f64, f64)>,
}

impl Panel {
    fn new(policy: &str, reading: &SignalReading) -> Panel {
        Panel {
            title: format!("{policy}: {} {}", reading.subject, reading.metric),
            log: reading.metric.contains("p_value") || reading.metric == "score",
            values: Vec::new(),
            thresholds: Vec::new(),
            triggers: Vec::new(),
        }
    }

    /// Adds one window's reading.
    fn add(&mut self, window: f64, reading: &SignalReading, triggered: bool) {
        let shown = |value: Option<f64>| {
            let value = value.filter(|v| v.is_finite())?;
            Some(if self.log {
                value.max(P_VALUE_FLOOR)
            } else {
                value
            })
        };
        if let Some(value) = shown(reading.value) {
            self.values.push((window, value));
            if triggered {
                self.triggers.push((window, value));
            }
        }
        if let Some(threshold) = shown(reading.threshold) {
            self.thresholds.push((window, threshold));
        }
    }

    /// The lowest and highest value or threshold drawn.
    fn extent(&self) -> (f64, f64) {
        self.values
            .iter()
            .chain(&self.thresholds)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), (_, y)| {
                (low.min(*y), high.max(*y))
            })
    }
}

/// The panels, in the order their signals first appear.
fn panels(replay: &Replay) -> Vec<Panel> {
    let decisions = replay.windows.iter().flat_map(|w| &w.decisions);
    crate::policy::series::series(decisions)
        .into_iter()
        .map(|series| {
            let mut panel = Panel::new(series.policy, series.readings[0].1);
            for (window, reading, triggered) in series.readings {
                panel.add(window as f64, reading, triggered);
            }
            panel
        })
        .collect()
}

/// Draws every policy signal of `replay` into an SVG file at `path`.
pub fn chart(replay: &Replay, path: &Path) -> Result<(), String> {
    let panels = panels(replay);
    if panels.is_empty() {
        return Err("no policy read any signal: nothing to chart".to_string());
    }
    let height = PANEL_HEIGHT.saturating_mul(panels.len() as u32);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_max = replay.windows.last().map_or(1.0, |w| w.index as f64 + 1.0);
    for (panel, area) in panels.iter().zip(root.split_evenly((panels.len(), 1))) {
        draw_panel(&area, panel, x_max)?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    x_max: f64,
) -> Result<(), String> {
    if panel.values.is_empty() {
        return draw_empty(area, panel);
    }
    let (low, high) = panel.extent();
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(70);
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    if panel.log {
        // A decade of room below the lowest value; values on the floor sit on the axis.
        let bottom = (low / 10.0).max(P_VALUE_FLOOR / 3.0);
        let mut chart = builder
            .build_cartesian_2d(0f64..x_max, (bottom..high * 10.0).log_scale())
            .map_err(failed)?;
        chart
            .configure_mesh()
            .x_desc("window")
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .draw()
            .map_err(failed)?;
        if low <= P_VALUE_FLOOR {
            // The axis labels decades it chooses itself; the floor is said where it is.
            let label = Text::new(
                format!("≤ {P_VALUE_FLOOR:.0e} (floor)"),
                (0.0, P_VALUE_FLOOR),
                ("sans-serif", 12)
                    .into_font()
                    .color(&BLACK.mix(0.7))
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            );
            chart.draw_series(std::iter::once(label)).map_err(failed)?;
        }
        draw_series(&mut chart, panel)
    } else {
        let pad = ((high - low).abs() * 0.1).max(high.abs() * 0.05).max(1e-9);
        let mut chart = builder
            .build_cartesian_2d(0f64..x_max, (low - pad)..(high + pad))
            .map_err(failed)?;
        chart
            .configure_mesh()
            .x_desc("window")
            .draw()
            .map_err(failed)?;
        draw_series(&mut chart, panel)
    }
}

/// A signal that had no value in any window: its title and why nothing is drawn.
fn draw_empty<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (width, height) = area.dim_in_pixel();
    let centre = |y: u32| (width as i32 / 2, y as i32);
    let style = |size: u32, color: RGBAColor| {
        ("sans-serif", size)
            .into_font()
            .color(&color)
            .pos(Pos::new(HPos::Center, VPos::Center))
    };
    let title = style(16, BLACK.to_rgba());
    area.draw(&Text::new(panel.title.clone(), centre(16), title))
        .map_err(failed)?;
    let note = "no value in any window (is the feature missing from the data?)";
    area.draw(&Text::new(
        note,
        centre(height / 2),
        style(13, BLACK.mix(0.6)),
    ))
    .map_err(failed)
}

/// The value line, the threshold, the trigger marks and the legend.
fn draw_series<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    panel: &Panel,
) -> Result<(), String> {
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    chart
        .draw_series(LineSeries::new(panel.values.iter().copied(), &BLUE))
        .map_err(failed)?
        .label("value")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if !panel.thresholds.is_empty() {
        chart
            .draw_series(DashedLineSeries::new(
                panel.thresholds.iter().copied(),
                6,
                4,
                BLACK.into(),
            ))
            .map_err(failed)?
            .label("threshold")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    if !panel.triggers.is_empty() {
        chart
            .draw_series(
                panel
                    .triggers
                    .iter()
                    .map(|p| Circle::new(*p, 5, RED.filled())),
            )
            .map_err(failed)?
            .label("triggered")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(metric: &str, value: Option<f64>, threshold: Option<f64>) -> SignalReading {
        SignalReading {
            subject: "amount".into(),
            metric: metric.into(),
            value,
            threshold,
            hit: false,
            text: String::new(),
        }
    }

    #[test]
    fn zero_p_values_sit_on_the_floor_and_non_finite_values_are_left_out() {
        let mut panel = Panel::new("p", &reading("ks.p_value", None, None));
        panel.add(0.0, &reading("ks.p_value", Some(0.0), Some(0.01)), true);
        panel.add(1.0, &reading("ks.p_value", Some(f64::NAN), None), false);
        panel.add(
            2.0,
            &reading("ks.p_value", None, Some(f64::INFINITY)),
            false,
        );
        assert_eq!(panel.values, [(0.0, P_VALUE_FLOOR)]);
        assert_eq!(panel.triggers, [(0.0, P_VALUE_FLOOR)]);
        assert_eq!(panel.thresholds, [(0.0, 0.01)]);
        assert_eq!(panel.extent(), (P_VALUE_FLOOR, 0.01));
    }
}
