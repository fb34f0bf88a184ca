//! Finding a category among the few names seen so far. Most categorical features have a
//! handful of categories, and comparing a few short strings in place costs less than a
//! hash or a tree's string compares; past [`FEW`] names, callers keep an index instead.

/// Distinct names up to which a list is searched in place rather than indexed.
pub(crate) const FEW: usize = 16;

/// The position of `name` in `names` (compared by length, then bytes), if there.
#[inline]
pub(crate) fn position(names: &[String], name: &str) -> Option<u32> {
    names
        .iter()
        .position(|n| same_text(n, name))
        .map(|k| k as u32)
}

/// `a == b`, compared in place: length, then byte by byte. Names are short, and a call to
/// `memcmp` per candidate of the same length cost more than the comparison.
#[inline]
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn same_text_is_string_equality(a in "[ab\u{e9}]{0,6}", b in "[ab\u{e9}]{0,6}") {
            // Short texts over a few letters (one of two bytes): equal ones, equal lengths
            // with different bytes, and prefixes all come up.
            prop_assert_eq!(super::same_text(&a, &b), a == b);
            prop_assert!(super::same_text(&a, &a));
            let names = vec![b.clone(), a.clone()];
            prop_assert_eq!(super::position(&names, &a), names.iter().position(|n| n == &a).map(|k| k as u32));
        }
    }
}
