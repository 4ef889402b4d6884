//! Numbers and times in decision sentences.

/// Numbers in sentences: four significant digits, scientific when tiny or huge.
pub(super) fn short(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || (1e-3..1e5).contains(&magnitude) {
        let text = format!("{value:.4}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_string()
    } else {
        format!("{value:.2e}")
    }
}

/// Unix milliseconds as an RFC 3339 UTC time, to the second.
pub(super) fn utc(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Milliseconds as "1h 30m", "45s".
pub(crate) fn human(ms: i64) -> String {
    let seconds = (ms.max(0) / 1000) as u64;
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}
