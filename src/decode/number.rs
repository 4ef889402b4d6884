//! JSON numbers: their grammar checked in one pass over the bytes, their value read by
//! `fast_float2` (correctly rounded: the same bits as `str::parse::<f64>`). The fast decoder
//! reads record fields with it.

/// Where a number is read from.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    /// The next byte to read.
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    /// Reading `bytes` from `pos`.
    pub(super) fn at(bytes: &'a [u8], pos: usize) -> Cursor<'a> {
        Cursor { bytes, pos }
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    pub(super) fn number(&mut self) -> Option<Number> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            integer = false;
        }
        Some(Number {
            start,
            end: self.pos,
            negative,
            integer,
        })
    }

    /// Passes over decimal digits; how many there were.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }
}

/// A JSON number as scanned.
#[derive(Clone, Copy)]
pub(super) struct Number {
    /// Where it starts in the bytes read.
    pub start: usize,
    /// Where it ends.
    pub end: usize,
    /// Written with a minus sign.
    pub negative: bool,
    /// Written without fraction or exponent.
    pub integer: bool,
}

impl Number {
    /// The value, correctly rounded like `str::parse::<f64>` and serde_json's
    /// `float_roundtrip` (infinite beyond the range of `f64`).
    pub(super) fn value(&self, bytes: &[u8]) -> Option<f64> {
        fast_float2::parse(&bytes[self.start..self.end]).ok()
    }

    /// The value of a non-negative integer that fits a `u64`.
    pub(super) fn unsigned(&self, bytes: &[u8]) -> Option<u64> {
        if !self.integer || self.negative {
            return None;
        }
        std::str::from_utf8(&bytes[self.start..self.end])
            .ok()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    /// `text` as an `f64` when it is exactly one JSON number (no space around it).
    fn parse(text: &[u8]) -> Option<f64> {
        let mut cursor = Cursor::at(text, 0);
        let number = cursor.number()?;
        if cursor.pos != text.len() {
            return None;
        }
        number.value(text)
    }

    #[test]
    fn only_a_whole_json_number_is_taken() {
        for text in [
            "1",
            "-0",
            "0.5",
            "-12.25e-3",
            "1E+2",
            "123456789012345678901234",
        ] {
            let expected: f64 = text.parse().unwrap();
            assert_eq!(
                parse(text.as_bytes()).map(f64::to_bits),
                Some(expected.to_bits())
            );
        }
        for text in [
            "", " 1", "1 ", "+1", ".5", "1.", "01", "1e", "NaN", "inf", "1,2", "-",
        ] {
            assert_eq!(parse(text.as_bytes()), None, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_number_taken_has_the_standard_parsers_bits(text in "[-+]?[0-9]{0,25}(\\.[0-9]{0,25})?([eE][-+]?[0-9]{1,3})?") {
            if let Some(value) = parse(text.as_bytes()) {
                let expected: f64 = text.parse().unwrap();
                proptest::prop_assert_eq!(value.to_bits(), expected.to_bits(), "{}", text);
            }
        }
    }
}
