//! Process metrics in the names every Prometheus dashboard knows (`process_*`), plus
//! `driftgate_build_info`. Read from `/proc/self` at scrape time; on systems without `/proc`
//! only the build info is rendered.

use std::fmt::Write;

use super::BUILD_INFO;

/// Appends the build info and the process families to a text exposition.
pub fn render(out: &mut String) {
    let _ = writeln!(out, "# HELP {BUILD_INFO} Always 1; the version is a label.");
    let _ = writeln!(out, "# TYPE {BUILD_INFO} gauge");
    let _ = writeln!(
        out,
        "{BUILD_INFO}{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(cpu) = cpu_seconds() {
        gauge(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time, seconds.",
            cpu,
        );
    }
    if let Some(rss) = resident_bytes() {
        gauge(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory, bytes.",
            rss,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let open = entries.count() as f64;
        gauge(
            out,
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            open,
        );
    }
}

fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// utime + stime from `/proc/self/stat` (fields 14 and 15, after the parenthesised name).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then_some(ticks / per_second as f64)
}

/// Resident pages from `/proc/self/statm`, in bytes.
fn resident_bytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then_some(pages * page as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_14_build_info_and_process_metrics() {
        let mut out = String::new();
        super::render(&mut out);
        assert!(out.contains(&format!(
            "driftgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            let line = out
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {out}"));
            let value: f64 = line[name.len()..].parse().unwrap();
            // CPU time counts in clock ticks: a young test process may not have one yet.
            let least = if name.starts_with("process_cpu") {
                0.0
            } else {
                1.0
            };
            assert!(value >= least, "{line}");
        }
    }
}
