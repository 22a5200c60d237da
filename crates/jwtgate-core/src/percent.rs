//! `%XX` escapes (RFC 3986 §2.1), read one way wherever the gateway reads
//! them: the path's normalisation, the form routes and rules match in, and
//! query arguments. What each decodes is its own business; how an escape
//! is read is this module's.

/// The byte two hex digits stand for (either case); `None` if either is
/// not a hex digit.
pub fn decode_pair(hi: u8, lo: u8) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    // Both digits are < 16, so the value fits in a u8.
    let value = digit(hi)? * 16 + digit(lo)?;
    u8::try_from(value).ok()
}

/// The byte the escape at `i` of `bytes` stands for, if a whole `%XX` is
/// there.
pub fn escaped_at(bytes: &[u8], i: usize) -> Option<u8> {
    match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
        (Some(b'%'), Some(&hi), Some(&lo)) => decode_pair(hi, lo),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_read_in_either_case_and_only_whole() {
        assert_eq!(escaped_at(b"%3a", 0), Some(b':'));
        assert_eq!(escaped_at(b"x%3A", 1), Some(b':'));
        assert_eq!(escaped_at(b"%C3", 0), Some(0xC3));
        assert_eq!(escaped_at(b"%3", 0), None);
        assert_eq!(escaped_at(b"%zz", 0), None);
        assert_eq!(escaped_at(b"a%3A", 0), None);
        assert_eq!(decode_pair(b'f', b'F'), Some(0xFF));
    }
}
