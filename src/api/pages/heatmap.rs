//! The features × windows heatmap, as an HTML table (readable without script or styles): each
//! cell's colour says how close a feature came to its threshold in a window, a dot marks
//! detected drift, and a cell links to its window.

use maud::{html, Markup};

use super::charts::heat;

/// One cell.
pub struct Cell {
    /// How close to the threshold (1 at it); none when not tested.
    pub evidence: Option<f64>,
    /// Drift detected.
    pub detected: bool,
    /// The cell's tooltip.
    pub title: String,
    /// Where a click goes.
    pub href: String,
}

/// A column: the window's index and where its header links.
pub struct Column {
    /// The window's index.
    pub index: u64,
    /// Where the header links.
    pub href: String,
}

/// The table: `rows` are `(feature, cells)` with one cell per column.
pub fn heatmap(columns: &[Column], rows: &[(String, Vec<Cell>)]) -> Markup {
    html! {
        div.legend {
            span { span.swatch style={ "background:" (heat(Some(0.0))) } {} "far from the threshold" }
            span { span.swatch style={ "background:" (heat(Some(0.8))) } {} "near it" }
            span { span.swatch style={ "background:" (heat(Some(1.5))) } {} "● drift detected" }
            span { span.swatch style={ "background:" (heat(None)) } {} "not tested" }
        }
        div.scroll { table.heatmap {
            thead { tr {
                th.feature { "feature \\ window" }
                @for column in columns { th.window { a href=(column.href) { (column.index) } } }
            } }
            tbody { @for (feature, cells) in rows {
                tr data-feature=(feature) {
                    th.feature { (feature) }
                    @for cell in cells {
                        td class=(if cell.detected { "detected" } else { "" }) style={ "background:" (heat(cell.evidence)) } {
                            a href=(cell.href) title=(cell.title) {}
                        }
                    }
                }
            } }
        } }
    }
}
