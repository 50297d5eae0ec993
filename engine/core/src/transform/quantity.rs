//! Kubernetes `resource.Quantity` parsing (`1000m`, `2Gi`, `1.5`, `5e3`), exactly as
//! `k8s.io/apimachinery` reads them.
//!
//! A quantity is kept the way Kubernetes keeps it — an exact decimal `mantissa × 10^exponent` —
//! because `AsApproximateFloat64` multiplies *that* representation by a power of ten, and the last
//! bit of the float depends on which representation Kubernetes chose (its fast `int64` path or
//! its arbitrary-precision path, which rounds up to nano units). No `f64` is used before the
//! final multiplication.

use thiserror::Error;

/// Why a string is not a quantity; the messages are Kubernetes' own.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The string is not a number followed by a suffix.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    /// The number part does not parse.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is none of Kubernetes' (`m`, `k`, `Ki`, `e3`, …).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The quantity was asked for as an integer and is beyond `i64`; holds the input.
    #[error("quantity {0} does not fit in a 64-bit integer")]
    Overflow(String),
}

/// A parsed quantity: `(-1)^negative × mantissa × 10^exponent`, mantissa in decimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    /// Decimal digits without leading zeros; empty means zero.
    mantissa: Vec<u8>,
    exponent: i64,
}

/// Values of 10^400 and beyond are infinite as floats and cannot be integers; they are kept
/// symbolically instead of materialising their digits.
const MAX_DIGITS: i64 = 400;

impl Quantity {
    /// Kubernetes `Value()`: the value rounded up (away from zero) to an integer.
    pub fn to_i64_ceil(&self) -> Result<i64, QuantityError> {
        let overflow = || QuantityError::Overflow(self.to_string());
        let nd = self.mantissa.len() as i64;
        if nd == 0 {
            return Ok(0);
        }
        let magnitude: i128 = if self.exponent >= 0 {
            if nd + self.exponent > 19 {
                return Err(overflow());
            }
            let mut m: i128 = 0;
            for &d in &self.mantissa {
                m = m * 10 + i128::from(d - b'0');
            }
            for _ in 0..self.exponent {
                m *= 10;
            }
            m
        } else {
            let keep = nd + self.exponent; // digits left of the decimal point
            if keep > 19 {
                return Err(overflow());
            }
            let mut m: i128 = 0;
            for &d in &self.mantissa[..keep.max(0) as usize] {
                m = m * 10 + i128::from(d - b'0');
            }
            let has_fraction = self.mantissa[keep.max(0) as usize..]
                .iter()
                .any(|&d| d != b'0');
            if has_fraction {
                m += 1;
            }
            m
        };
        let signed = if self.negative { -magnitude } else { magnitude };
        i64::try_from(signed).map_err(|_| overflow())
    }

    /// Kubernetes `AsApproximateFloat64()`: `float64(mantissa) * math.Pow10(exponent)`.
    pub fn to_f64(&self) -> f64 {
        let base = if self.mantissa.is_empty() {
            0.0
        } else if self.mantissa.len() as i64 > MAX_DIGITS {
            f64::INFINITY
        } else {
            std::str::from_utf8(&self.mantissa)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::INFINITY)
        };
        let v = if self.exponent == 0 {
            base
        } else {
            base * go_pow10(self.exponent)
        };
        if self.negative { -v } else { v }
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        if self.mantissa.is_empty() {
            return f.write_str("0");
        }
        f.write_str(std::str::from_utf8(&self.mantissa).unwrap_or("?"))?;
        if self.exponent != 0 {
            write!(f, "e{}", self.exponent)?;
        }
        Ok(())
    }
}

/// Go's `math.Pow10`, table for table, so that products round exactly as Go's do.
fn go_pow10(n: i64) -> f64 {
    const TAB: [f64; 32] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    ];
    const POS32: [f64; 10] = [
        1e0, 1e32, 1e64, 1e96, 1e128, 1e160, 1e192, 1e224, 1e256, 1e288,
    ];
    const NEG32: [f64; 11] = [
        1e-0, 1e-32, 1e-64, 1e-96, 1e-128, 1e-160, 1e-192, 1e-224, 1e-256, 1e-288, 1e-320,
    ];
    if (0..=308).contains(&n) {
        return POS32[(n / 32) as usize] * TAB[(n % 32) as usize];
    }
    if (-323..=0).contains(&n) {
        let m = -n;
        return NEG32[(m / 32) as usize] / TAB[(m % 32) as usize];
    }
    if n > 0 { f64::INFINITY } else { 0.0 }
}

/// The suffix's base (10 or 2) and exponent.
fn interpret_suffix(suffix: &str) -> Option<(u32, i64, bool)> {
    let decimal = |e| Some((10, e, false));
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => Some((2, 10, true)),
        "Mi" => Some((2, 20, true)),
        "Gi" => Some((2, 30, true)),
        "Ti" => Some((2, 40, true)),
        "Pi" => Some((2, 50, true)),
        "Ei" => Some((2, 60, true)),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            if rest.is_empty() {
                return None;
            }
            let parsed = parse_go_int(rest)?;
            // Kubernetes keeps the exponent as an int32.
            Some((10, i64::from(parsed as i32), false))
        }
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// Kubernetes' `parseQuantityString` scanner.
fn scan(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut positive = true;
    let mut pos = 0;
    if pos < end {
        match b[0] {
            b'-' => {
                positive = false;
                pos += 1;
            }
            b'+' => pos += 1,
            _ => {}
        }
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &s[num_start..pos];
    if pos >= end {
        return Ok(Parts {
            positive,
            num,
            denom: "",
            suffix: "",
        });
    }
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
        if pos >= end {
            return Ok(Parts {
                positive,
                num,
                denom,
                suffix: "",
            });
        }
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

fn strip_leading_zeros(digits: &mut Vec<u8>) {
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    digits.drain(..first);
}

/// Multiply a decimal digit string by 2, in place.
fn double(digits: &mut Vec<u8>) {
    let mut carry = 0u8;
    for d in digits.iter_mut().rev() {
        let v = (*d - b'0') * 2 + carry;
        *d = b'0' + v % 10;
        carry = v / 10;
    }
    if carry > 0 {
        digits.insert(0, b'0' + carry);
    }
}

/// Add one to a decimal digit string, in place.
fn increment(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, b'1');
}

/// Kubernetes `resource.ParseQuantity`.
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let parts = scan(s)?;
    let (base, exponent, binary) = interpret_suffix(parts.suffix).ok_or(QuantityError::Suffix)?;
    let negative = !parts.positive;
    let (num, denom) = (parts.num, parts.denom);

    // Kubernetes' fast path: an int64 mantissa and a decimal scale of at least nano.
    let digit_count = (num.len() + denom.len()) as i64;
    let precision = if binary {
        if exponent >= 0 && denom.is_empty() {
            // 1Mi (2^20) has about 6 decimal digits; Kubernetes estimates with float32(e)*3/10.
            let estimate = (exponent as f32 * 3.0 / 10.0) as i64;
            15 - num.len() as i64 - estimate - 1
        } else {
            -1
        }
    } else {
        18 - digit_count
    };
    if precision >= 0 {
        let scale = if binary { 0 } else { exponent } - denom.len() as i64;
        if scale >= -9 {
            let shifted = format!("{num}{denom}");
            let value: i64 = shifted.parse().map_err(|_| QuantityError::Numeric)?;
            let multiplier: i64 = if binary { 1i64 << exponent } else { 1 };
            if let Some(product) = value.checked_mul(multiplier) {
                let mut mantissa = product.to_string().into_bytes();
                strip_leading_zeros(&mut mantissa);
                return Ok(Quantity {
                    negative: negative && !mantissa.is_empty(),
                    mantissa,
                    exponent: scale,
                });
            }
        }
    }

    // The arbitrary-precision path: exact value, rounded up to nano units.
    let mut mantissa: Vec<u8> = format!("{num}{denom}").into_bytes();
    strip_leading_zeros(&mut mantissa);
    let mut exp10 = -(denom.len() as i64);
    if base == 10 {
        exp10 += exponent;
    } else {
        for _ in 0..exponent {
            double(&mut mantissa);
        }
    }
    if mantissa.is_empty() {
        return Ok(Quantity {
            negative: false,
            mantissa,
            exponent: exp10,
        });
    }
    if exp10 < -9 {
        let drop = (-9 - exp10) as usize;
        let keep = mantissa.len().saturating_sub(drop);
        let dropped_nonzero = mantissa[keep..].iter().any(|&d| d != b'0');
        mantissa.truncate(keep);
        if dropped_nonzero {
            increment(&mut mantissa);
        }
        strip_leading_zeros(&mut mantissa);
    } else if exp10 > -9 {
        let pad = exp10 + 9;
        if mantissa.len() as i64 + pad > MAX_DIGITS {
            // Far beyond any float or integer: binary quantities hit their cap, decimal ones stay
            // symbolic rather than materialising the digits.
            if binary {
                return Ok(Quantity {
                    negative,
                    mantissa: i64::MAX.to_string().into_bytes(),
                    exponent: 0,
                });
            }
            return Ok(Quantity {
                negative,
                mantissa,
                exponent: exp10,
            });
        }
        mantissa.extend(std::iter::repeat_n(b'0', pad as usize));
    }
    exp10 = -9;
    if binary {
        // Binary quantities are capped at 2^63-1.
        let max = i64::MAX.to_string().into_bytes();
        let digits_above_point = mantissa.len() as i64 + exp10;
        let over = digits_above_point > max.len() as i64
            || (digits_above_point == max.len() as i64 && {
                let int_part = &mantissa[..digits_above_point as usize];
                let frac_nonzero = mantissa[digits_above_point as usize..]
                    .iter()
                    .any(|&d| d != b'0');
                int_part > max.as_slice() || (int_part == max.as_slice() && frac_nonzero)
            });
        if over {
            return Ok(Quantity {
                negative,
                mantissa: max,
                exponent: 0,
            });
        }
    }
    Ok(Quantity {
        negative,
        mantissa,
        exponent: exp10,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn parses_quantities_to_integers_rounding_up() {
        // (input, Value(), why)
        let rows: &[(&str, i64, &str)] = &[
            ("0", 0, "zero"),
            ("1", 1, "plain integer"),
            ("1000m", 1, "milli units"),
            ("1500m", 2, "fractions round up"),
            ("1m", 1, "the smallest fraction rounds up to one"),
            ("-1500m", -2, "negative fractions round away from zero"),
            ("2k", 2000, "kilo"),
            ("2M", 2_000_000, "mega"),
            ("1G", 1_000_000_000, "giga"),
            ("1T", 1_000_000_000_000, "tera"),
            ("1P", 1_000_000_000_000_000, "peta"),
            ("1E", 1_000_000_000_000_000_000, "exa"),
            ("2Ki", 2048, "kibi"),
            ("2Gi", 2 * 1024 * 1024 * 1024, "gibi"),
            ("1.5Gi", 1_610_612_736, "fractional binary"),
            ("1Ei", 1 << 60, "exbi"),
            ("1.5", 2, "decimal fraction rounds up"),
            ("5e3", 5000, "decimal exponent"),
            ("5E3", 5000, "upper-case exponent"),
            ("5e-3", 1, "negative exponent rounds up"),
            ("1e+2", 100, "signed exponent"),
            ("+3", 3, "leading plus"),
            ("007", 7, "leading zeros"),
            (".5", 1, "no integer part"),
            ("1.", 1, "no fraction digits"),
            ("100n", 1, "nano"),
            ("1000000u", 1, "micro"),
            ("9223372036854775807", i64::MAX, "largest int64"),
        ];
        for (input, want, reason) in rows {
            let q = parse_quantity(input).unwrap_or_else(|e| panic!("{reason}: {input}: {e}"));
            assert_eq!(q.to_i64_ceil().unwrap(), *want, "{reason}: {input}");
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the literals spell Kubernetes' exact mantissas
    fn converts_quantities_to_floats_like_as_approximate_float64() {
        let rows: &[(&str, f64, &str)] = &[
            ("1000m", 1.0, "milli"),
            ("1500m", 1.5, "fraction"),
            ("250m", 0.25, "quarter"),
            ("2Gi", 2147483648.0, "gibi"),
            (
                "1.5Gi",
                1.610612736e18 * (1.0 / 1e9),
                "fractional binary takes the exact path at nano scale",
            ),
            ("5e3", 5000.0, "exponent"),
            ("1.5", 1.5, "plain fraction"),
            ("0.1", 0.1, "tenth"),
            ("1n", 1e-9, "nano"),
            ("0.1n", 1e-9, "below nano rounds up to one nano"),
            ("-2.5k", -2500.0, "negative"),
            (
                "1e100",
                1e96 * 1e4,
                "huge decimal multiplies by Go's power-of-ten tables",
            ),
            ("1e400", f64::INFINITY, "beyond float range"),
            (
                "12345678901234567890",
                1.234567890123456789e28 * (1.0 / 1e9),
                "beyond int64 takes the exact path",
            ),
            (
                "8Ei",
                9223372036854775807.0,
                "binary quantities are capped at 2^63-1",
            ),
        ];
        for (input, want, reason) in rows {
            let q = parse_quantity(input).unwrap_or_else(|e| panic!("{reason}: {input}: {e}"));
            assert_eq!(q.to_f64(), *want, "{reason}: {input}");
        }
    }

    #[test]
    fn rejects_malformed_quantities_with_kubernetes_errors() {
        let rows: &[(&str, QuantityError, &str)] = &[
            ("", QuantityError::FormatWrong, "empty"),
            ("abc", QuantityError::FormatWrong, "letters"),
            ("1x", QuantityError::FormatWrong, "unknown suffix letter"),
            ("1.2.3", QuantityError::FormatWrong, "two decimal points"),
            (" 1", QuantityError::FormatWrong, "leading space"),
            (
                "1Ki3",
                QuantityError::Suffix,
                "digits after a binary suffix",
            ),
            ("1e", QuantityError::Suffix, "exponent without digits"),
            ("1K", QuantityError::Suffix, "upper-case K is not kilo"),
            ("1mi", QuantityError::Suffix, "mi is not a suffix"),
        ];
        for (input, want, reason) in rows {
            assert_eq!(
                parse_quantity(input).unwrap_err(),
                *want,
                "{reason}: {input:?}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn parsing_never_panics(s in "[-+]?[0-9.]{0,30}[eEinumkKMGTP]{0,3}[-+]?[0-9]{0,12}") {
            if let Ok(q) = parse_quantity(&s) {
                let _ = q.to_f64();
                let _ = q.to_i64_ceil();
            }
        }

        #[test]
        fn small_integers_round_trip(n in -1_000_000_000i64..1_000_000_000) {
            let q = parse_quantity(&n.to_string()).unwrap();
            proptest::prop_assert_eq!(q.to_i64_ceil().unwrap(), n);
            proptest::prop_assert_eq!(q.to_f64(), n as f64);
        }
    }

    #[test]
    fn huge_binary_quantities_are_capped() {
        let digits = "9".repeat(500);
        let q = parse_quantity(&format!("{digits}Ki")).unwrap();
        assert_eq!(q.to_i64_ceil().unwrap(), i64::MAX);
    }

    #[test]
    fn integer_conversion_reports_overflow() {
        let q = parse_quantity("1e30").unwrap();
        assert!(matches!(q.to_i64_ceil(), Err(QuantityError::Overflow(_))));
    }

    #[test]
    fn signs_and_dots_alone_parse_as_zero_as_in_kubernetes() {
        for input in ["+", "-", ".", "-0", "000"] {
            let q = parse_quantity(input).unwrap();
            assert_eq!(q.to_i64_ceil().unwrap(), 0, "{input}");
            assert_eq!(q.to_f64(), 0.0, "{input}");
        }
    }
}
