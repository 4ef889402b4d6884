//! The page shell every page shares (head, navigation, footer) and the small formatting
//! helpers the pages use for numbers, times and statuses.

use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The dashboard's stylesheet.
pub const STYLE: &str = include_str!("assets/dashboard.css");
/// The script that refreshes live pages in place.
pub const LIVE: &str = include_str!("assets/live.js");

/// How the page gets its stylesheet and script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assets {
    /// Linked from the service's `/assets/` (the dashboard).
    Linked,
    /// Written into the page (a report file that must open offline).
    Inline,
}

/// A whole page: `title`, a breadcrumb trail of `(label, href)`, and the body. A `live` page
/// refreshes its `#live` part every few seconds.
pub fn page(
    title: &str,
    trail: &[(&str, String)],
    live: bool,
    assets: Assets,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · driftgate" }
                @match assets {
                    Assets::Linked => link rel="stylesheet" href="/assets/dashboard.css";,
                    Assets::Inline => style { (PreEscaped(STYLE)) },
                }
            }
            body data-live=[live.then_some("5")] {
                header.top {
                    @if assets == Assets::Linked {
                        a.brand href="/" { "driftgate" }
                        nav { a href="/" { "Overview" } a href="/alerts" { "Alerts" } a href="/api/v1/openapi.json" { "API" } }
                    } @else {
                        span.brand { "driftgate" }
                    }
                }
                main {
                    @if !trail.is_empty() {
                        p.trail {
                            @for (label, href) in trail { a href=(href) { (label) } " › " }
                            (title)
                        }
                    }
                    h1 { (title) }
                    div #live { (body) }
                }
                @if live && assets == Assets::Linked {
                    script src="/assets/live.js" {}
                }
            }
        }
    }
}

/// A number for people: up to four significant digits, scientific when very small or large.
pub fn num(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    if value == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&magnitude) {
        format!("{value:.2e}")
    } else {
        let digits = (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
        let text = format!("{value:.digits$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    }
}

/// An optional number, or a dash.
pub fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), num)
}

/// A share as a percentage.
pub fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

/// An epoch-millisecond time as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// An RFC 3339 time as [`time_ms`] shows it; other text as it is.
pub fn time_text(text: &str) -> String {
    super::view::epoch_ms(text).map_or_else(|| text.to_string(), time_ms)
}

/// A duration between two epoch-millisecond times, e.g. `1.2 s` or `3 min 4 s`.
pub fn duration_ms(from: i64, to: i64) -> String {
    let ms = (to - from).max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// A status word in a coloured pill; the colour follows the word's class (`ok`, `bad`, …).
pub fn pill(word: &str) -> Markup {
    let class = match word {
        "succeeded" | "delivered" | "ran" | "ok" | "not_triggered" | "none" => "ok",
        "failed" | "dead" | "drift" | "triggered" | "cancelled" => "bad",
        "running" | "queued" | "pending" | "cancelling" => "busy",
        "cached" | "skipped" | "unaffected" => "quiet",
        _ => "warn",
    };
    html! { span class={ "pill " (class) } { (word) } }
}

/// A short form of a long id (a baseline's hash): its first 12 characters.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A path segment, percent-encoded.
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(0.053912), "0.05391");
        assert_eq!(num(1234.5678), "1235");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(1.2e-9), "1.20e-9");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
