//! JSON numbers read exactly: the digits eight at a time, the value correctly rounded (the
//! same bits as `str::parse::<f64>`). The fast decoder reads record fields with it.

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
        let mut mantissa = Some(0u64);
        let mut exponent = 0i64;
        match self.next()? {
            b'0' => {}
            first @ b'1'..=b'9' => {
                mantissa = Some(u64::from(first - b'0'));
                self.digits(&mut mantissa, &mut 0);
            }
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            self.digits(&mut mantissa, &mut exponent);
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            let sign = match self.peek() {
                Some(b'-') => -1,
                Some(b'+') => 1,
                _ => 0,
            };
            if sign != 0 {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            let mut written = 0i64;
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                // Saturates far beyond any f64 exponent; such numbers take the slow path.
                written = (written * 10 + i64::from(digit - b'0')).min(1 << 20);
                self.pos += 1;
            }
            exponent += if sign < 0 { -written } else { written };
            integer = false;
        }
        Some(Number {
            start,
            end: self.pos,
            negative,
            integer,
            mantissa,
            exponent,
        })
    }

    /// Digits into the mantissa (`None` once it no longer fits a u64); each one lowers `scale`
    /// by one (for fraction digits).
    fn digits(&mut self, mantissa: &mut Option<u64>, scale: &mut i64) {
        // Below this, `value * 10 + digit` cannot overflow; above it, checked arithmetic.
        const UNCHECKED_BELOW: u64 = (u64::MAX - 9) / 10;
        let bytes = self.bytes;
        let start = self.pos;
        let mut pos = start;
        let mut value = mantissa.unwrap_or(0);
        let mut fits = mantissa.is_some();
        // Eight bytes at a time while `value · 10^8 + 99999999` fits: the usual number is read
        // in one step. The byte loop below takes whatever this leaves.
        while fits && value < 100_000_000_000 {
            let Some(chunk) = bytes.get(pos..pos + 8) else {
                break;
            };
            let chunk: [u8; 8] = chunk.try_into().expect("eight bytes");
            // Digit bytes become their values 0..=9, every other byte 10 or more.
            let values = u64::from_le_bytes(chunk) ^ 0x3030_3030_3030_3030;
            let non_digits = (((values & 0x7F7F_7F7F_7F7F_7F7F) + 0x7676_7676_7676_7676) | values)
                & 0x8080_8080_8080_8080;
            let count = (non_digits.trailing_zeros() / 8) as usize;
            if count == 0 {
                break;
            }
            // The digits moved to the top bytes, zeros below them, read as eight digits.
            value = value * POWERS_OF_TEN_U64[count] + eight_digits(values << (8 * (8 - count)));
            pos += count;
            if count < 8 {
                break;
            }
        }
        while let Some(&byte) = bytes.get(pos) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            if value < UNCHECKED_BELOW {
                value = value * 10 + u64::from(digit);
            } else if let Some(next) = value
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(digit)))
            {
                value = next;
            } else {
                fits = false;
            }
            pos += 1;
        }
        self.pos = pos;
        *scale -= (pos - start) as i64;
        *mantissa = fits.then_some(value);
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
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
    /// The decimal digits as an integer, when they fit in 19 digits.
    pub mantissa: Option<u64>,
    /// The power of ten the mantissa is scaled by.
    exponent: i64,
}

/// Exact powers of ten as `f64` (every one up to 1e22 is representable). A `static`: a `const`
/// array indexed at run time is copied onto the stack at every use.
static POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Number {
    /// The value, correctly rounded like `str::parse::<f64>` and serde_json's
    /// `float_roundtrip`. A mantissa up to 2^53 and a power of ten up to 22 are both exact as
    /// `f64`, so one multiplication or division rounds once, correctly (Clinger's fast path);
    /// other numbers go through the standard library's parser.
    pub(super) fn value(&self, bytes: &[u8]) -> Option<f64> {
        let magnitude = match self.mantissa {
            Some(m) if m <= 1 << 53 && self.exponent.abs() <= 22 => {
                let power = POWERS_OF_TEN[self.exponent.unsigned_abs() as usize];
                if self.exponent >= 0 {
                    m as f64 * power
                } else {
                    m as f64 / power
                }
            }
            _ => {
                let text = std::str::from_utf8(&bytes[self.start..self.end]).ok()?;
                return text.parse().ok();
            }
        };
        Some(if self.negative { -magnitude } else { magnitude })
    }
}

/// Powers of ten up to 10^8 as integers.
static POWERS_OF_TEN_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The number written by eight digit values, one per byte, the first digit in the lowest byte:
/// pairs, then quadruples, then the whole, each by one multiplication.
fn eight_digits(values: u64) -> u64 {
    let pairs = ((values & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    let quadruples = ((pairs & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    ((quadruples & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32
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
