//! Stopping: signals set the stop flag the loop watches; a watchdog makes sure a hung final
//! checkpoint cannot keep the process alive past the configured timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sets `stop` on SIGTERM or SIGINT; a second signal exits at once (status 130), and the
/// process exits anyway `timeout` after the first if the final checkpoint hangs.
pub fn install_signal_handlers(stop: &Arc<AtomicBool>, timeout: Duration) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGTERM, SIGINT] {
        // Order matters: the conditional exit sees the flag set by a previous signal.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(stop))?;
        signal_hook::flag::register(signal, Arc::clone(stop))?;
    }
    let watched = Arc::clone(stop);
    std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            while !watched.load(Ordering::SeqCst) {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            std::thread::sleep(timeout);
            tracing::error!(timeout = ?timeout, "shutdown timed out; exiting");
            std::process::exit(1);
        })?;
    Ok(())
}
