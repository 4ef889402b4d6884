//! Progress of reading a data file, for people at a terminal.
//!
//! A bar appears only when reading takes longer than [`SHOW_AFTER`] and standard error is a
//! terminal; on a pipe, or for a quick read, nothing is drawn. It counts bytes of the file, so
//! it costs one counter update per buffered read (64 KiB) or block handed out, not per record.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Reads quicker than this draw nothing.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A progress bar for reading files, hidden until it is worth showing.
#[derive(Debug, Clone)]
pub struct FileProgress {
    bar: ProgressBar,
    terminal: bool,
}

impl FileProgress {
    /// A bar that may show on standard error (only when it is a terminal).
    pub fn on_stderr() -> FileProgress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {bytes}/{total_bytes} [{bar:30}] {eta} left",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        FileProgress {
            bar,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Starts one pass over `path` (`what`: "reading", "inferring the schema of").
    pub fn pass(&self, what: &str, path: &Path) -> Pass {
        let length = std::fs::metadata(path).map(|m| m.len()).ok();
        self.bar.set_length(length.unwrap_or(0));
        self.bar.set_position(0);
        self.bar.set_message(format!("{what} {}", path.display()));
        Pass {
            progress: self.clone(),
            started: Instant::now(),
        }
    }

    /// Wraps the reader of one pass over `path` (see [`pass`](Self::pass)).
    pub fn wrap<R: Read>(&self, what: &str, path: &Path, inner: R) -> ProgressReader<R> {
        ProgressReader {
            inner,
            pass: self.pass(what, path),
            read: 0,
        }
    }

    /// Removes the bar, if it was drawn.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// One pass over a file, moving a [`FileProgress`] bar.
#[derive(Debug)]
pub struct Pass {
    progress: FileProgress,
    started: Instant,
}

impl Pass {
    /// The pass has reached `bytes` into the file.
    pub fn reached(&self, bytes: u64) {
        let bar = &self.progress.bar;
        if self.progress.terminal && bar.is_hidden() && self.started.elapsed() >= SHOW_AFTER {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_position(bytes);
    }
}

/// A reader that moves a [`FileProgress`] bar.
pub struct ProgressReader<R> {
    inner: R,
    pass: Pass,
    read: u64,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.pass.reached(self.read);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_stays_hidden_off_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n".repeat(100)).unwrap();
        let progress = FileProgress::on_stderr();
        let mut reader = progress.wrap("reading", &path, std::fs::File::open(&path).unwrap());
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text.len(), 900);
        assert_eq!(progress.bar.position(), 900);
        assert_eq!(progress.bar.length(), Some(900));
        assert!(progress.bar.is_hidden(), "no terminal in tests");
    }
}
