//! The bytes of a JSON text read token by token, for the decoders that take the common
//! shapes in one pass without building values ([`super::fast`], [`super::flat`]). Numbers are
//! read by [`super::number`].

/// A position in a JSON text (UTF-8, already checked).
pub(super) struct Cursor<'a> {
    /// The text.
    pub bytes: &'a [u8],
    /// The next byte to read.
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    /// Reading `bytes` from `pos`.
    pub(super) fn at(bytes: &'a [u8], pos: usize) -> Cursor<'a> {
        Cursor { bytes, pos }
    }

    /// A string without escapes or control characters; its span between the quotes.
    pub(super) fn string(&mut self) -> Option<(usize, usize)> {
        self.expect(b'"')?;
        let start = self.pos;
        let length = self.bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + length;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        Some((start, end))
    }

    /// Passes over `"name"` when it comes next (`name` written without escapes).
    pub(super) fn quoted(&mut self, name: &[u8]) -> bool {
        let end = self.pos + name.len() + 2;
        let matches = self.bytes.get(self.pos..end).is_some_and(|quoted| {
            quoted[0] == b'"'
                && quoted[name.len() + 1] == b'"'
                && super::same_bytes(&quoted[1..=name.len()], name)
        });
        if matches {
            self.pos = end;
        }
        matches
    }

    /// Passes over `word` (`true`, `false`, `null`) when it comes next.
    pub(super) fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Passes over white space.
    pub(super) fn ws(&mut self) {
        // Whitespace bytes are all at most a space: one comparison passes the common case.
        while let Some(b' ' | b'\t' | b'\n' | b'\r') =
            self.bytes.get(self.pos).filter(|byte| **byte <= b' ')
        {
            self.pos += 1;
        }
    }

    /// Passes over the `:` after a key, with the white space around it.
    pub(super) fn colon(&mut self) -> Option<()> {
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(())
    }

    /// Passes over `byte`, which must come next.
    pub(super) fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// The next byte, not passed over.
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The next byte, passed over.
    pub(super) fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }
}
