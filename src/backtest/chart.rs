//! `backtest --chart`: accuracy over time per policy set, with its retrains marked, as SVG; the
//! picture policies are tuned by. One line per set, in a colour of its own, from window to
//! window, earlier sets wider so that sets on the same line all show; a triangle on a set's
//! line at each window that triggered one of its runs. The
//! vertical axis spans the accuracies drawn, with some room; the drawing's size is fixed.

use plotters::prelude::*;

use super::report::{Backtest, SetResult};

/// Width and height of the chart, pixels.
const SIZE: (u32, u32) = (960, 420);

/// Colours of the sets, in order (never, every-window, then the sets given).
const PALETTE: [RGBColor; 8] = [
    RGBColor(120, 120, 120),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
];

/// Points of a chart: (window, accuracy).
type Points = Vec<(f64, f64)>;

/// A set's line: (window, accuracy) for windows with labelled records; and its retrains.
fn line(set: &SetResult) -> (Points, Points) {
    let points: Vec<(f64, f64)> = (set.windows.iter())
        .filter_map(|w| Some((w.index as f64, w.performance.accuracy?)))
        .collect();
    let marks = (set.runs.iter())
        .filter_map(|run| {
            points
                .iter()
                .find(|(x, _)| *x == run.window as f64)
                .copied()
        })
        .collect();
    (points, marks)
}

/// The chart of `backtest` as an SVG document.
pub fn chart(backtest: &Backtest) -> Result<String, String> {
    let lines: Vec<_> = backtest.sets.iter().map(line).collect();
    let (low, high) = (lines.iter().flat_map(|(points, _)| points))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, y)| {
            (lo.min(*y), hi.max(*y))
        });
    if !low.is_finite() {
        return Err("no window has labelled records: nothing to chart".into());
    }
    let pad = ((high - low) * 0.08).max(0.01);
    let x_max = (backtest.sets.iter())
        .filter_map(|s| s.windows.last())
        .map(|w| w.index as f64 + 0.5)
        .fold(0.5, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let failed = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
        root.fill(&WHITE).map_err(failed)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Accuracy per window: model {}", backtest.model),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..x_max, (low - pad).max(0.0)..(high + pad).min(1.0))
            .map_err(failed)?;
        chart
            .configure_mesh()
            .x_desc("window")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("accuracy")
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .draw()
            .map_err(failed)?;
        let count = backtest.sets.len() as u32;
        for (i, (set, (points, marks))) in backtest.sets.iter().zip(&lines).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // Earlier sets are drawn wider, so a set that follows another exactly still shows
            // beneath it.
            let width = 2 + 2 * (count - 1 - i as u32);
            let plural = if set.retrains == 1 { "" } else { "s" };
            let label = format!("{} ({} retrain{plural})", set.name, set.retrains);
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(width),
                ))
                .map_err(failed)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            let triangles = marks
                .iter()
                .map(|p| TriangleMarker::new(*p, 7, color.filled()));
            chart.draw_series(triangles).map_err(failed)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(failed)?;
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::report::{BacktestRun, BacktestWindow};

    fn window(index: u64, correct: u64) -> BacktestWindow {
        let accuracy = correct as f64 / 100.0;
        let performance = crate::pipeline::report::Performance {
            labelled: 100,
            correct,
            accuracy: Some(accuracy),
            error_rate: Some(1.0 - accuracy),
            numeric_labelled: 0,
            mae: None,
            rmse: None,
        };
        BacktestWindow {
            index,
            records: 100,
            start: None,
            end: None,
            scored_by: vec!["initial".into()],
            performance,
            drifted: Vec::new(),
            drifted_since_retrain: None,
            decisions: Vec::new(),
        }
    }

    fn set(name: &str, accuracies: &[u64], retrained_at: &[u64]) -> SetResult {
        let mut set = SetResult::new(name.into(), Vec::new());
        set.windows = (0..).zip(accuracies).map(|(i, c)| window(i, *c)).collect();
        set.runs = (retrained_at.iter())
            .map(|w| BacktestRun {
                id: format!("run-{w}"),
                policy: "p".into(),
                window: *w,
                status: "succeeded".into(),
                error: None,
                triggered_ms: 0,
                applied_ms: 0,
                promoted: true,
                baseline: None,
            })
            .collect();
        set.total();
        set
    }

    fn backtest(sets: Vec<SetResult>) -> Backtest {
        Backtest {
            stream: "s".into(),
            model: "m".into(),
            input: "in.jsonl".into(),
            run_time_seconds: None,
            sets,
        }
    }

    #[test]
    fn a_line_per_set_with_a_mark_per_retrain() {
        let chart = chart(&backtest(vec![
            set("never", &[90, 60, 60], &[]),
            set("drift", &[90, 60, 88], &[1]),
        ]))
        .unwrap();
        assert!(chart.contains("never (0 retrains)"), "{chart}");
        assert!(chart.contains("drift (1 retrain)"), "{chart}");
        // Each set's colour: its line and its legend key; the marks are filled triangles.
        for (colour, marks) in [("#787878", 0), ("#1F77B4", 1)] {
            let stroked = format!("stroke=\"{colour}\"");
            assert_eq!(chart.matches(&stroked).count(), 2, "{colour}: {chart}");
            let filled = format!("<polygon opacity=\"1\" fill=\"{colour}\"");
            assert_eq!(chart.matches(&filled).count(), marks, "{colour}: {chart}");
        }
    }

    #[test]
    fn without_labels_there_is_nothing_to_chart() {
        let mut unlabelled = set("never", &[90], &[]);
        unlabelled.windows[0].performance.accuracy = None;
        assert!(chart(&backtest(vec![unlabelled])).is_err());
    }
}
