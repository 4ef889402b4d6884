//! The scorer: a process that predicts for records, kept running across windows. Records go to
//! its standard input as one JSON object a line; it answers one prediction a line, in order
//! (`driftgate task predict` does). It is started again whenever the model it scores may have
//! changed.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

/// How to start the scorer.
#[derive(Debug, Clone)]
pub struct ScorerCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Variables set for it (the registry, the model).
    pub env: Vec<(String, String)>,
    /// Where its standard error goes.
    pub log: PathBuf,
}

/// A running scorer.
pub(super) struct Scorer {
    command: ScorerCommand,
    process: Option<Running>,
}

struct Running {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Scorer {
    /// A scorer started on first use.
    pub(super) fn new(command: ScorerCommand) -> Scorer {
        Scorer {
            command,
            process: None,
        }
    }

    /// Stops the process; the next [`predict`](Self::predict) starts a new one, which loads the
    /// model as it is now.
    pub(super) fn restart(&mut self) {
        if let Some(mut running) = self.process.take() {
            drop(running.input);
            let _ = running.child.wait();
        }
    }

    /// One prediction per record, in order.
    pub(super) fn predict(&mut self, records: &[&Value]) -> Result<Vec<Value>, String> {
        if self.process.is_none() {
            self.process = Some(self.start()?);
        }
        let running = self.process.as_mut().expect("started above");
        let mut lines = Vec::new();
        for record in records {
            serde_json::to_writer(&mut lines, record).expect("records serialise");
            lines.push(b'\n');
        }
        let program = self.command.argv[0].clone();
        // Written on a thread of its own: a scorer answering as it reads may fill its output
        // pipe before it has read every line.
        let answers = std::thread::scope(|scope| {
            let input = &mut running.input;
            let writer = scope.spawn(move || input.write_all(&lines).and_then(|()| input.flush()));
            let answers = read_answers(&mut running.output, records.len());
            let written = writer
                .join()
                .unwrap_or(Err(std::io::Error::other("the writing thread stopped")));
            written.map_err(|e| e.to_string()).and(answers)
        });
        answers.map_err(|why| {
            self.restart();
            format!(
                "the scorer `{program}` failed: {why} (its standard error is in {})",
                self.command.log.display()
            )
        })
    }

    fn start(&self) -> Result<Running, String> {
        let log = crate::files::create_private_file(&self.command.log)
            .map_err(|e| format!("{}: {e}", self.command.log.display()))?;
        let program =
            crate::dag::local::program(&self.command.argv[0]).map_err(|e| e.to_string())?;
        let mut child = Command::new(program)
            .args(&self.command.argv[1..])
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the scorer `{}`: {e}", self.command.argv[0]))?;
        let input = child.stdin.take().expect("piped");
        let output = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Running {
            child,
            input,
            output,
        })
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        self.restart();
    }
}

/// `count` answers, one JSON value a line.
fn read_answers(output: &mut impl BufRead, count: usize) -> Result<Vec<Value>, String> {
    let mut answers = Vec::with_capacity(count);
    let mut line = String::new();
    while answers.len() < count {
        line.clear();
        if output.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!(
                "it stopped after {} of {count} answers",
                answers.len()
            ));
        }
        let answer = serde_json::from_str(line.trim())
            .map_err(|e| format!("answer {:?} is not JSON: {e}", line.trim()))?;
        answers.push(answer);
    }
    Ok(answers)
}
