//! Files read in large blocks of whole lines, a block's lines split among the cores.
//!
//! [`Blocks`] hands out the input a run of whole lines at a time (about [`BLOCK_BYTES`], cut
//! after the last line end; the input's last line may lack one): slices of the file mapped into
//! memory when it can be (see [`map_file`]), else of a buffer it is read into. The readers split
//! a block with [`split_lines`] into one share per core, decode the shares at once and put the
//! results back together in file order, so what they produce never depends on the number of
//! cores.

use std::io::Read;

use memmap2::Mmap;

use super::progress::Pass;

/// Bytes handed out at a time.
const BLOCK_BYTES: usize = 8 << 20;

/// Blocks smaller than this are decoded on the calling thread alone.
const PARALLEL_BYTES: usize = 1 << 20;

/// The block sizes (smaller in tests, to cross many block boundaries).
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    /// Bytes handed out at a time.
    pub block: usize,
    /// Blocks smaller than this are decoded on one thread.
    pub parallel: usize,
}

impl Sizes {
    /// `block` in one share per core (one share when it is small).
    pub fn shares(self, block: &[u8]) -> Vec<&[u8]> {
        let threads = if block.len() < self.parallel {
            1
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        };
        split_lines(block, threads)
    }
}

/// The sizes files are read with.
pub(super) const SIZES: Sizes = Sizes {
    block: BLOCK_BYTES,
    parallel: PARALLEL_BYTES,
};

/// The sizes the head of a file is read with, to infer its schema: the records looked at
/// (about [`super::INFERENCE_RECORDS`]) often fill less than one [`SIZES`] block.
pub(super) const HEAD_SIZES: Sizes = Sizes {
    block: 1 << 20,
    parallel: 256 << 10,
};

/// A file's bytes, to be read in [`Blocks`].
pub(super) enum Input<'a> {
    /// A regular file mapped into memory (see [`map_file`]), with the progress of the pass when
    /// a bar may be drawn: blocks are slices of the map, never copied.
    Mapped(Mmap, Option<Pass>),
    /// Anything else (a pipe, an empty file, one that cannot be mapped), read into a buffer.
    Read(Box<dyn Read + 'a>),
}

/// `file` mapped into memory for reading, when it is a regular, non-empty file that can be.
///
/// Mapping spares the copy a `read` makes and spreads the work of bringing the file in over
/// the cores that decode it (a block's shares fault in their own pages), where reads would run
/// on one core between blocks.
pub(super) fn map_file(file: &std::fs::File) -> Option<Mmap> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    // SAFETY: the map is only read, and only through the slices `Blocks` hands out while it
    // lives. A program that rewrites the file meanwhile changes what is decoded, as it would
    // between reads; one that truncates it makes the pages past the new end fault (SIGBUS).
    // The files given to these commands are data at rest, as for any tool that maps its input.
    let map = unsafe { Mmap::map(file) }.ok()?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(map)
}

/// An input handed out as runs of whole lines.
pub(super) struct Blocks<'a> {
    source: Source<'a>,
    sizes: Sizes,
    /// Bytes handed out so far.
    handed: u64,
}

enum Source<'a> {
    Mapped {
        map: Mmap,
        /// Bytes already handed out.
        at: usize,
        /// Bytes whose pages were dropped from the process (see [`release`]).
        released: usize,
        pass: Option<Pass>,
    },
    Read(Reading<'a>),
}

impl<'a> Blocks<'a> {
    /// Blocks of `input` of about `sizes.block` bytes.
    pub fn new(input: Input<'a>, sizes: Sizes) -> Blocks<'a> {
        let source = match input {
            Input::Mapped(map, pass) => Source::Mapped {
                map,
                at: 0,
                released: 0,
                pass,
            },
            Input::Read(input) => Source::Read(Reading {
                input,
                buffer: Vec::with_capacity(sizes.block + (1 << 16)),
                taken: 0,
                end: false,
            }),
        };
        Blocks {
            source,
            sizes,
            handed: 0,
        }
    }

    /// The next run of whole lines, or `None` after the last. A line longer than a block makes
    /// the block as long as the line.
    pub fn next_lines(&mut self) -> std::io::Result<Option<&[u8]>> {
        let run = match &mut self.source {
            Source::Mapped {
                map,
                at,
                released,
                pass,
            } => {
                release(map, *released, *at);
                *released = *at;
                let run = mapped_run(&map[*at..], self.sizes.block);
                *at += run.len();
                if let Some(pass) = pass {
                    pass.reached(*at as u64);
                }
                run
            }
            Source::Read(reading) => reading.next_run(self.sizes.block)?,
        };
        if run.is_empty() {
            return Ok(None);
        }
        self.handed += run.len() as u64;
        Ok(Some(run))
    }

    /// About how many records follow the bytes handed out so far, which held `records`, in a
    /// file of `length` bytes (with a tenth more for lines shorter than these); 0 when unknown.
    pub fn records_left(&self, records: u64, length: Option<u64>) -> usize {
        let (Some(length), true) = (length, self.handed > 0) else {
            return 0;
        };
        let left = length.saturating_sub(self.handed) as f64;
        (left / self.handed as f64 * records as f64 * 1.1) as usize
    }
}

/// Drops the pages of `map[from..to]` (the runs handed out before, done with) from the process;
/// they stay in the page cache. Otherwise the whole file would count in the process's resident
/// memory by the end of the read.
fn release(map: &Mmap, from: usize, to: usize) {
    #[cfg(unix)]
    // SAFETY: the map is shared and read-only, so dropping its pages loses nothing (touching
    // them again reads them back from the file), and no slice of these bytes is borrowed any
    // more: the next run is handed out through `&mut Blocks`, which ends the last one's borrow.
    unsafe {
        let _ = map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from);
    }
}

/// The run of whole lines at the front of `rest` (the mapped bytes not yet handed out): about
/// `block` bytes, cut after the last line end in them (after the first one past them when
/// they hold none); all of `rest` when it is no longer than a block or has no line end.
fn mapped_run(rest: &[u8], block: usize) -> &[u8] {
    if rest.len() <= block {
        return rest;
    }
    let cut = match memchr::memrchr(b'\n', &rest[..block]) {
        Some(last) => last + 1,
        None => memchr::memchr(b'\n', &rest[block..]).map_or(rest.len(), |at| block + at + 1),
    };
    &rest[..cut]
}

/// An input read into a buffer a block at a time.
struct Reading<'a> {
    input: Box<dyn Read + 'a>,
    buffer: Vec<u8>,
    /// Bytes at the buffer's front already handed out.
    taken: usize,
    /// The input has no more bytes.
    end: bool,
}

impl Reading<'_> {
    /// The next run of whole lines; empty after the last.
    fn next_run(&mut self, block: usize) -> std::io::Result<&[u8]> {
        self.buffer.drain(..self.taken);
        self.taken = 0;
        loop {
            if !self.end {
                self.end = fill(&mut self.input, &mut self.buffer, block)?;
            }
            let cut = if self.end {
                self.buffer.len()
            } else {
                memchr::memrchr(b'\n', &self.buffer).map_or(0, |last| last + 1)
            };
            if cut > 0 || self.end {
                self.taken = cut;
                return Ok(&self.buffer[..cut]);
            }
        }
    }
}

/// `text` as an input, mapped from a file of its own when `mapped` (and not empty).
#[cfg(test)]
pub(super) fn test_input(text: &str, mapped: bool) -> Input<'_> {
    use std::io::Write;
    if mapped {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(text.as_bytes()).expect("written");
        if let Some(map) = map_file(&file) {
            return Input::Mapped(map, None);
        }
    }
    Input::Read(Box::new(text.as_bytes()))
}

/// The length of the file at `path`, when it can be known.
pub(super) fn file_length(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|meta| meta.len())
}

/// Reads up to a block more into `buffer`; true at the end of the input.
fn fill(input: &mut impl Read, buffer: &mut Vec<u8>, block: usize) -> std::io::Result<bool> {
    let want = buffer.len() + block;
    while buffer.len() < want {
        let read = input
            .by_ref()
            .take((want - buffer.len()) as u64)
            .read_to_end(buffer)?;
        if read == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `text` in `n` pieces of about equal size, each cut after a line end (so never inside a
/// UTF-8 character).
pub(super) fn split_lines(text: &[u8], n: usize) -> Vec<&[u8]> {
    let mut shares = Vec::with_capacity(n);
    let mut rest = text;
    for left in (1..n).rev() {
        let at = rest.len() / (left + 1);
        let cut = rest[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| at + i + 1);
        let (share, tail) = rest.split_at(cut);
        shares.push(share);
        rest = tail;
    }
    shares.push(rest);
    shares
}

/// Each line of `text` (numbered from 1; blank lines count, the last may lack its line end),
/// trimmed of ASCII white space, to `visit` until it returns false; the lines visited.
pub(super) fn each_line<'t>(text: &'t [u8], mut visit: impl FnMut(u64, &'t [u8]) -> bool) -> u64 {
    let mut rest = text;
    let mut number = 0;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |at| at + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        number += 1;
        if !visit(number, line.trim_ascii()) {
            break;
        }
    }
    number
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks_of(text: &str, block: usize, mapped: bool) -> Vec<String> {
        let sizes = Sizes { block, parallel: 0 };
        let mut blocks = Blocks::new(test_input(text, mapped), sizes);
        let mut out = Vec::new();
        while let Some(lines) = blocks.next_lines().unwrap() {
            out.push(String::from_utf8(lines.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn blocks_are_whole_lines_and_give_back_the_input() {
        let text = "a,1\nbb,22\n\nccc,333\nlast";
        for (block, mapped) in (1..30).flat_map(|block| [(block, false), (block, true)]) {
            let blocks = blocks_of(text, block, mapped);
            assert_eq!(blocks.concat(), text, "block {block}, mapped {mapped}");
            let (last, whole) = blocks.split_last().unwrap();
            assert!(whole.iter().all(|b| b.ends_with('\n')), "{blocks:?}");
            assert!(last.ends_with("last"));
        }
        assert!(blocks_of("", 4, false).is_empty());
        assert!(blocks_of("", 4, true).is_empty());
    }

    #[test]
    fn shares_are_cut_after_line_ends() {
        let text = b"one\ntwo\nthree\nfour\nfive";
        for n in 1..8 {
            let shares = split_lines(text, n);
            assert_eq!(shares.len(), n);
            assert_eq!(shares.concat(), text.to_vec());
            for pair in shares.windows(2) {
                assert!(pair[1].is_empty() || pair[0].ends_with(b"\n"), "{shares:?}");
            }
        }
    }
}
