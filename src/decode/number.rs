//! JSON numbers: their grammar checked and their value read in one pass over the bytes. The
//! usual number (at most 19 digits, a small power of ten) is exact in one IEEE operation;
//! any other goes to `fast_float2`. Both are correctly rounded: the same bits as
//! `str::parse::<f64>`. The fast decoder reads record fields with it.

use super::lex::Cursor;

/// Digits read so far: their value while it fits, and how many there were.
#[derive(Default)]
struct Digits {
    value: u64,
    count: usize,
}

impl Cursor<'_> {
    /// A JSON number: `-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline(always)]
    pub(super) fn number(&mut self) -> Option<Number> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let mut digits = Digits::default();
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(&mut digits),
            _ => return None,
        }
        let mut integer = true;
        let mut power = 0i64;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let before = digits.count;
            self.digits(&mut digits);
            let fraction = digits.count - before;
            if fraction == 0 {
                return None;
            }
            power = -(fraction as i64);
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            power = power.saturating_add(self.exponent()?);
            integer = false;
        }
        Some(Number {
            start,
            end: self.pos,
            negative,
            integer,
            exact: exact(&digits, power, negative),
        })
    }

    /// `[+-]?[0-9]+` after the `e`, saturated far beyond any `f64`'s.
    fn exponent(&mut self) -> Option<i64> {
        self.pos += 1;
        let sign = match self.peek() {
            Some(b'-') => -1,
            Some(b'+') => 1,
            _ => 0,
        };
        if sign != 0 {
            self.pos += 1;
        }
        let mut digits = Digits::default();
        self.digits(&mut digits);
        if digits.count == 0 {
            return None;
        }
        let magnitude = if digits.count > 18 {
            i64::MAX / 2
        } else {
            digits.value as i64
        };
        Some(if sign < 0 { -magnitude } else { magnitude })
    }

    /// Passes over decimal digits, adding them to `digits` (its value only while 19 digits at
    /// most were read): eight bytes at a time while eight follow, then one at a time.
    #[inline]
    fn digits(&mut self, digits: &mut Digits) {
        while let Some(eight) = self.bytes.get(self.pos..self.pos + 8) {
            let word = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
            let (count, value) = leading_digits(word);
            digits.value = digits
                .value
                .wrapping_mul(POWERS_OF_TEN[count])
                .wrapping_add(value);
            digits.count += count;
            self.pos += count;
            if count < 8 {
                return;
            }
        }
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            digits.value = digits
                .value
                .wrapping_mul(10)
                .wrapping_add(u64::from(digit - b'0'));
            digits.count += 1;
            self.pos += 1;
        }
    }
}

/// 10^n for n from 0 to 8.
static POWERS_OF_TEN: [u64; 9] = [
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

/// How many of the eight bytes of `word` (the first in its lowest byte) are decimal digits
/// before the first that is not, and their value.
fn leading_digits(word: u64) -> (usize, u64) {
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Digits become bytes 0 to 9; a byte is 10 or more exactly when adding 0x76 to its low
    // seven bits sets the eighth (no carry leaves a byte), or the eighth was set already.
    let values = word ^ 0x3030_3030_3030_3030;
    let not_digits = (((values & LOW) + 0x7676_7676_7676_7676) | values) & HIGH;
    let count = (not_digits.trailing_zeros() / 8) as usize;
    if count == 0 {
        return (0, 0);
    }
    // The digits moved to the top bytes, zeros below them: an eight-digit number with leading
    // zeros, read two, four, then eight digits at a time.
    let digits = values << (8 * (8 - count));
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let fours = (pairs & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32));
    let rest = ((pairs >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32));
    (count, fours.wrapping_add(rest) >> 32)
}

/// Powers of ten an `f64` holds exactly.
static EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `digits × 10^power` when one IEEE multiplication or division gives it exactly rounded: the
/// digits fit an `f64` exactly (at most 2^53) and so does the power of ten (Clinger's fast path).
fn exact(digits: &Digits, power: i64, negative: bool) -> Option<f64> {
    if digits.count > 19 || digits.value > 1 << 53 || power.unsigned_abs() > 22 {
        return None;
    }
    let scale = EXACT_POWERS[power.unsigned_abs() as usize];
    let magnitude = digits.value as f64;
    let value = if power < 0 {
        magnitude / scale
    } else {
        magnitude * scale
    };
    Some(if negative { -value } else { value })
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
    /// Its value, when reading it took one exact operation.
    exact: Option<f64>,
}

impl Number {
    /// The value, correctly rounded like `str::parse::<f64>` and serde_json's
    /// `float_roundtrip` (infinite beyond the range of `f64`).
    pub(super) fn value(&self, bytes: &[u8]) -> Option<f64> {
        match self.exact {
            Some(value) => Some(value),
            None => fast_float2::parse(&bytes[self.start..self.end]).ok(),
        }
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
    fn eight_bytes_read_their_leading_digits() {
        for (text, expected) in [
            (*b"12345678", (8, 12_345_678)),
            (*b"00000001", (8, 1)),
            (*b"123456,\"", (6, 123_456)),
            (*b"9}aaaaaa", (1, 9)),
            (*b"x1234567", (0, 0)),
            (*b"0000000/", (7, 0)),
            (*b"12:45678", (2, 12)),
            (*b"1\xb9345678", (1, 1)),
        ] {
            assert_eq!(
                super::leading_digits(u64::from_le_bytes(text)),
                expected,
                "{text:?}"
            );
        }
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
