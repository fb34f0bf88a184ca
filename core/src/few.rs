//! Finding a category among the few names seen so far. Most categorical features have a
//! handful of categories, and comparing a few short strings in place costs less than a
//! hash or a tree's string compares; past [`FEW`] names, callers keep an index instead.

/// Distinct names up to which a list is searched in place rather than indexed.
pub(crate) const FEW: usize = 16;

/// The position of `name` in `names` (compared by length, then bytes), if there.
#[inline]
pub(crate) fn position(names: &[String], name: &str) -> Option<u32> {
    names.iter().position(|n| n == name).map(|k| k as u32)
}
