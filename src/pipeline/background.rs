//! Reports made in the background: one thread per processor makes closed windows' reports in
//! turn while the ingest thread decodes the next messages (see the module docs of
//! [`pipeline`](super)).

use std::sync::mpsc;
use std::sync::Arc;

use super::report::{ReportMaker, WindowReport};
use super::{JudgedWindow, StreamProcessor};
use crate::drift;
use crate::window::ClosedWindow;

/// A report, or the panic that interrupted making it (a bug, raised again by the caller).
pub(super) type ReportResult = std::thread::Result<WindowReport>;

/// A closed window and where its report will come from.
pub(super) struct PendingReport {
    pub(super) window: Arc<ClosedWindow>,
    /// `None` for a window restored from a checkpoint: its report is made when it is judged,
    /// against the baseline in use then.
    pub(super) report: Option<mpsc::Receiver<ReportResult>>,
}

/// One thread that makes reports in turn, fed through a channel; it ends when the processor
/// (the sending side) is dropped.
pub(super) struct Reporter {
    jobs: mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Reporter {
    fn start() -> Reporter {
        let (jobs, queue) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("driftgate-report".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .expect("the report thread starts");
        Reporter { jobs }
    }
}

impl StreamProcessor {
    /// The window whose report was being made, judged, when its report is done; never waits.
    pub fn ready(&mut self) -> Option<JudgedWindow> {
        let report = match &self.pending.as_ref()?.report {
            Some(receiver) => match receiver.try_recv() {
                Ok(report) => Some(report),
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => panic!("the report thread is gone"),
            },
            None => None,
        };
        self.finish_pending_with(report)
    }

    pub(super) fn start_report(&mut self, window: ClosedWindow) -> PendingReport {
        let window = Arc::new(window);
        let (reply, report) = mpsc::channel();
        let job = {
            let window = Arc::clone(&window);
            let maker = ReportMaker {
                threads: drift::Threads::Caller,
                ..self.report_maker()
            };
            move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    maker.report(&window)
                }));
                // The window is judged only after its last reference here is gone, so it can
                // be taken back without a copy.
                drop(window);
                // The receiver is gone only when the processor is: nobody wants the report.
                let _ = reply.send(result);
            }
        };
        let reporter = self.reporter.get_or_insert_with(Reporter::start);
        reporter
            .jobs
            .send(Box::new(job))
            .expect("the report thread takes jobs while the processor lives");
        PendingReport {
            window,
            report: Some(report),
        }
    }

    /// Waits for the window whose report is being made, if any, and judges it.
    pub(super) fn finish_pending(&mut self) -> Option<JudgedWindow> {
        let report = self.pending.as_ref()?.report.as_ref().map(|receiver| {
            receiver
                .recv()
                .expect("the report thread answers every job")
        });
        self.finish_pending_with(report)
    }

    /// Judges the window being reported with its report (made here when there is none), then
    /// gives the policies the errors that waited for it.
    fn finish_pending_with(&mut self, report: Option<ReportResult>) -> Option<JudgedWindow> {
        let pending = self.pending.take()?;
        let report = match report {
            // A panic while making the report is a bug: raise it here, as an inline report
            // would.
            Some(result) => result.unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => self.report(&pending.window),
        };
        let window = Arc::unwrap_or_clone(pending.window);
        let stored = self.judge(window, report);
        for error in std::mem::take(&mut self.deferred_errors) {
            self.policies.observe_error(error);
        }
        Some(stored)
    }
}
