//! Task processes a crashed service left behind.
//!
//! Every attempt runs in its own process group, led by the attempt's process; its pid and its
//! start time (clock ticks since boot, from `/proc`) are recorded in the store right after it
//! starts. When the service starts again, before a run interrupted by the crash is queued again,
//! the groups of its unfinished attempts that are still alive are stopped (SIGTERM, then SIGKILL
//! after a grace period) and those attempts are recorded as interrupted, so a task never runs
//! twice at once. A recorded pid is only signalled when the process with that pid started at the
//! recorded time: a pid the system has since given to another process is left alone.

use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

/// How long a stopped group gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`);
/// `None` when there is no such process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Stops what is left of run `run`'s unfinished attempts and records them as interrupted;
/// returns how many groups were stopped.
pub fn stop_orphans(store: &Store, run: &str) -> Result<usize, StoreError> {
    let mut stopped = 0;
    for (task, attempt, pid, start) in store.unfinished_attempts(run)? {
        let ours = start_ticks(pid) == Some(start);
        let error = if ours {
            stop_group(pid);
            stopped += 1;
            tracing::warn!(run, task = %task, attempt, pid,
                "a task attempt outlived the service that started it; its process group was stopped");
            "interrupted by a restart; its process group, still running, was stopped"
        } else {
            "interrupted by a restart"
        };
        // Finishing an attempt keeps the log path recorded at its start.
        store.set_attempt(run, &task, attempt, "", Some((None, Some(error))))?;
    }
    Ok(stopped)
}

/// Whether process `pid` exists and has not exited (an exited process nobody reaped yet, a
/// zombie, has).
pub fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// SIGTERM to the group, then (after its leader exited, or the grace period) SIGKILL to
/// whatever is left of it; returns once the leader is gone, or after a bounded wait.
fn stop_group(pgid: u32) {
    signal_group(pgid as libc::pid_t, libc::SIGTERM);
    wait_for_exit(pgid);
    signal_group(pgid as libc::pid_t, libc::SIGKILL);
    wait_for_exit(pgid);
}

/// Waits up to the grace period for the group's leader to exit.
fn wait_for_exit(pid: u32) {
    let deadline = Instant::now() + GRACE;
    while running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: killpg only sends a signal; the group was checked to be the attempt's.
    unsafe {
        libc::killpg(pgid, signal);
    }
}
