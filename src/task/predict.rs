//! `driftgate task predict`: the champion scores records read on standard input, one JSON
//! object a line, with one prediction a line on standard output, in order. It answers as it
//! reads: what it has read is answered before it waits for more, so a caller may write a batch
//! and then read its answers while the process stays up for the next batch (how `backtest`
//! keeps one scorer across windows). A line that is not a JSON object is answered `null` and
//! told on standard error; the process goes on.

use std::io::{BufRead, Write};
use std::path::Path;

use super::{io, read_model, Record, TaskError};

/// Scores standard input with the champion of `model` in `registry` until it ends.
pub(super) fn serve(registry: &Path, model: &str) -> Result<String, TaskError> {
    let path = registry.join(format!("{model}.json"));
    let champion = read_model(&path)?;
    // Larger than standard input's own buffer, which reads into it directly: what this buffer
    // holds is all that was read.
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin());
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::new(stdout.lock());
    let mut line = String::new();
    let mut number = 0u64;
    let out = Path::new("standard output");
    loop {
        line.clear();
        if input
            .read_line(&mut line)
            .map_err(io(Path::new("standard input")))?
            == 0
        {
            break;
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(record) => writeln!(output, "{}", champion.predict(&record)),
            Err(err) => {
                eprintln!("line {number}: not a JSON object ({err}); answered null");
                writeln!(output, "null")
            }
        }
        .map_err(io(out))?;
        // Everything read so far is answered before waiting for more.
        if input.buffer().is_empty() {
            output.flush().map_err(io(out))?;
        }
    }
    output.flush().map_err(io(out))?;
    Ok(String::new())
}
