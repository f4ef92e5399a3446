//! Telling a header field's name apart from the names redline acts on (`Content-Length`,
//! `Connection`, `Host`, `traceparent`...), in any case, for the fields of every request and
//! response head on the fast path.
//!
//! Why not `eq_ignore_ascii_case`: it lowers both sides a byte at a time, about five
//! instructions a byte. The names compared against are constants, so eight bytes of the field's
//! name are compared at once with a mask that folds away at compile time: callgrind put the
//! upstream response's field classification (`Content-Length`, `Date`, `Connection` and two
//! more, each compared against one name of its length) at 287 instructions per request before.

/// `name.eq_ignore_ascii_case(lowercase)` for a `lowercase` that holds no upper-case letter,
/// whatever bytes `name` holds: a lower-case letter of `lowercase` matches itself and its
/// upper case, any other byte only itself. Inlined, so that for a constant `lowercase` the
/// words and masks are constants.
#[inline(always)]
pub fn eq_lowercase(name: &[u8], lowercase: &[u8]) -> bool {
    if name.len() != lowercase.len() {
        return false;
    }
    let mut diff = 0;
    let (mut name, mut lowercase) = (name, lowercase);
    while name.len() >= 8 {
        let (n, name_rest) = name.split_at(8);
        let (l, lowercase_rest) = lowercase.split_at(8);
        diff |= word_diff(n, l);
        (name, lowercase) = (name_rest, lowercase_rest);
    }
    if !name.is_empty() {
        diff |= word_diff(name, lowercase);
    }
    diff == 0
}

/// Zero when up to 8 bytes of `name` match `lowercase` (of the same length) as
/// [`eq_lowercase`] says; both are padded with zeros.
#[inline(always)]
fn word_diff(name: &[u8], lowercase: &[u8]) -> u64 {
    let mut n = [0; 8];
    n[..name.len()].copy_from_slice(name);
    let mut l = [0; 8];
    l[..lowercase.len()].copy_from_slice(lowercase);
    let want = u64::from_le_bytes(l);
    (u64::from_le_bytes(n) | letter_bits(&l)) ^ want
}

/// 0x20, the case bit, in each byte that is a lower-case letter: setting it in the name's byte
/// lowers an upper-case letter and leaves a lower-case one; elsewhere the byte must be equal.
#[inline(always)]
fn letter_bits(word: &[u8; 8]) -> u64 {
    let mut bits = [0; 8];
    for (b, &w) in bits.iter_mut().zip(word) {
        if w.is_ascii_lowercase() {
            *b = 0x20;
        }
    }
    u64::from_le_bytes(bits)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_match_in_any_case_and_nothing_else() {
        for (name, lowercase, same) in [
            (&b"Content-Length"[..], &b"content-length"[..], true),
            (b"CONTENT-LENGTH", b"content-length", true),
            (b"content-lengtH", b"content-length", true),
            (b"content_length", b"content-length", false),
            (b"content-length ", b"content-length", false),
            (b"TE", b"te", true),
            (b"Te\0", b"te", false),
            (b"x-b3-traceid", b"x-b3-traceid", true),
            // '-' | 0x20 is '-', and 0x0D | 0x20 is '-' too: a non-letter must be equal as it is.
            (b"content\rlength", b"content-length", false),
            (b"X-B\x13-TRACEID", b"x-b3-traceid", false),
            (b"", b"", true),
            (b"proxy-authorization", b"proxy-authorization", true),
            (b"PROXY-AUTHORIZATIoN", b"proxy-authorization", true),
            (b"proxy-authorizatioo", b"proxy-authorization", false),
        ] {
            assert_eq!(eq_lowercase(name, lowercase), same, "{:?} {:?}", name.escape_ascii(), lowercase.escape_ascii());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// The same answer as `eq_ignore_ascii_case` for any name bytes, with names that are
        /// mostly a case change of the lowercase one.
        #[test]
        fn answers_as_eq_ignore_ascii_case_does(
            lowercase in proptest::collection::vec(any::<u8>().prop_filter("no upper case", |b| !b.is_ascii_uppercase()), 0..40),
            flips in proptest::collection::vec(any::<(bool, u8)>(), 0..40),
            other in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut name = lowercase.clone();
            for (i, (flip, b)) in flips.iter().enumerate() {
                if let Some(c) = name.get_mut(i) {
                    // Upper case, a byte one bit away, or any byte.
                    *c = match b % 3 {
                        0 if *flip => c.to_ascii_uppercase(),
                        1 if *flip => *c ^ 0x20,
                        2 if *flip => *b,
                        _ => *c,
                    };
                }
            }
            prop_assert_eq!(eq_lowercase(&name, &lowercase), name.eq_ignore_ascii_case(&lowercase));
            prop_assert_eq!(eq_lowercase(&other, &lowercase), other.eq_ignore_ascii_case(&lowercase));
        }
    }
}
