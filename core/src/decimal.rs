//! Plain decimals (`-12.345`, `7`, `.5`) read without the general float parser: the common
//! CSV cell, parsed about three times faster, to the same bits.
//!
//! Clinger's fast path: with at most 15 digits the digits form an integer `m < 2^53`, exact in
//! an `f64`, and `10^k` for `k ≤ 15` is exact too, so the one IEEE division `m / 10^k` rounds
//! the true value correctly, which is what `str::parse::<f64>` returns. Anything else
//! (exponents, more digits, `inf`, stray characters) is left to `str::parse`.

/// `10^k`, exact in an `f64` for `k ≤ 15`.
pub const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The value of `text` when it is a plain decimal of at most 15 digits, else `None`.
///
/// One pass over the bytes: digits accumulate into `m`, the first point is remembered, and
/// anything else (a second point, a sign, a letter) sends the text to the standard parser.
/// At most 16 bytes after the sign (15 digits and a point) are looked at, so `m` stays
/// below `10^16` and cannot overflow.
#[inline]
pub fn plain(text: &str) -> Option<f64> {
    plain_parts(text).map(|(m, fraction, negative)| value(m, fraction, negative))
}

/// [`plain`] before its division: the digits read as one integer `m < 10^15`, the number of
/// them after the point (at most 15) and the sign, when `text` is a plain decimal of at most
/// 15 digits; [`value`] of them is what `plain` returns. For a reader that keeps decimals as
/// digits and so needs no division.
#[inline]
pub fn plain_parts(text: &str) -> Option<(u64, usize, bool)> {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.len() > 16 {
        return None;
    }
    let mut m = 0u64;
    let mut point = usize::MAX;
    for (i, &c) in digits.iter().enumerate() {
        let d = c.wrapping_sub(b'0');
        if d <= 9 {
            m = m * 10 + u64::from(d);
        } else if c == b'.' && point == usize::MAX {
            point = i;
        } else {
            return None;
        }
    }
    let (count, fraction) = if point == usize::MAX {
        (digits.len(), 0)
    } else {
        (digits.len() - 1, digits.len() - 1 - point)
    };
    if count == 0 || count > 15 {
        return None;
    }
    Some((m, fraction, negative))
}

/// The value of a plain decimal from its digits read as one integer `m < 10^15`, the number
/// of them after the point (at most 15), and its sign: the one division Clinger's fast path
/// makes, correctly rounded.
#[inline]
pub fn value(m: u64, fraction_digits: usize, negative: bool) -> f64 {
    let x = m as f64 / POW10[fraction_digits];
    if negative {
        -x
    } else {
        x
    }
}

/// `text.trim()`, without decoding characters when both ends are visible ASCII (the
/// common cell): then nothing is whitespace to trim.
#[inline]
pub fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::plain;
    use proptest::prelude::*;

    #[test]
    fn plain_decimals_read_as_the_standard_parser_reads_them() {
        for s in [
            "0",
            "-0",
            "+0",
            "-0.0",
            "5.",
            ".5",
            "-.5",
            "+7",
            "12.3456",
            "0.1",
            "0.3",
            "999999999999999",
            "-0.00000000000001",
            "123456789.012345",
            "9007199254740.99",
        ] {
            assert_eq!(
                plain(s).map(f64::to_bits),
                s.parse::<f64>().ok().map(f64::to_bits),
                "{s}"
            );
        }
        for s in [
            "",
            "-",
            "+",
            ".",
            "1e5",
            "1.2.3",
            "inf",
            "NaN",
            "1,5",
            " 1",
            "0x10",
            "1234567890123456",
            "--1",
        ] {
            assert_eq!(plain(s), None, "{s} goes to the standard parser");
        }
    }

    #[test]
    fn trim_trims_as_str_trim_does() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\u{a0}",
            "\u{2003}x",
            "x\u{3000}",
            "é",
            " é ",
            "a b",
        ] {
            assert_eq!(super::trim(s), s.trim(), "{s:?}");
        }
    }

    /// The two-pass reader `plain` replaced, kept as the oracle of what it accepts.
    fn former(text: &str) -> Option<f64> {
        let bytes = text.as_bytes();
        let (negative, digits) = match bytes.first()? {
            b'-' => (true, &bytes[1..]),
            b'+' => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let (int, fraction) = match digits.iter().position(|&c| c == b'.') {
            Some(p) => (&digits[..p], &digits[p + 1..]),
            None => (digits, &digits[digits.len()..]),
        };
        let count = int.len() + fraction.len();
        if count == 0 || count > 15 {
            return None;
        }
        let mut m = 0u64;
        for &c in int.iter().chain(fraction) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            m = m * 10 + u64::from(d);
        }
        Some(super::value(m, fraction.len(), negative))
    }

    proptest! {
        #[test]
        fn any_text_trims_as_str_trim_trims(s in "\\PC{0,6}") {
            prop_assert_eq!(super::trim(&s), s.trim());
        }

        #[test]
        fn any_text_reads_as_the_standard_parser_or_is_left_to_it(s in "[-+.0-9e]{0,18}") {
            if let Some(x) = plain(&s) {
                prop_assert_eq!(Some(x.to_bits()), s.parse::<f64>().ok().map(f64::to_bits), "{}", s);
            }
        }

        #[test]
        fn the_one_pass_reader_takes_what_the_two_pass_one_took(s in "[-+.0-9a]{0,19}") {
            prop_assert_eq!(plain(&s).map(f64::to_bits), former(&s).map(f64::to_bits), "{}", s);
        }

        #[test]
        fn any_short_decimal_gives_the_same_bits(int in 0u64..10_000_000, frac in 0u64..100_000_000, width in 0usize..9, neg: bool) {
            let s = format!("{}{int}.{frac:0width$}", if neg { "-" } else { "" });
            if let Some(x) = plain(&s) {
                prop_assert_eq!(x.to_bits(), s.parse::<f64>().unwrap().to_bits(), "{}", s);
            }
        }
    }
}
