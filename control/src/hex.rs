//! Hex text for bytes: how operators write MACs and client-ids
//! (`aa:bb:cc`, `aa-bb-cc`, `aa bb cc`, `aabbcc`) and how irondhcp prints
//! them (colon-separated for people, plain for the sync wire).
//!
//! One parser, so the config file, the management socket and Kea's
//! commands accept the same spellings; each caller words its own error.

/// Why text is not hex bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("is empty")]
    Empty,
    #[error("is not hex")]
    NotHex,
    #[error("is not an even number of hex digits")]
    OddDigits,
}

/// The bytes of `s`, whose digit pairs may be separated by `:`, `-` or
/// spaces.
pub fn parse(s: &str) -> Result<Vec<u8>, HexError> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !matches!(c, b':' | b'-' | b' '))
        .collect();
    if digits.is_empty() {
        return Err(HexError::Empty);
    }
    let value = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if digits.iter().any(|c| value(*c).is_none()) {
        return Err(HexError::NotHex);
    }
    if !digits.len().is_multiple_of(2) {
        return Err(HexError::OddDigits);
    }
    Ok(digits
        .chunks(2)
        .map(|p| value(p[0]).unwrap_or(0) << 4 | value(p[1]).unwrap_or(0))
        .collect())
}

/// The bytes of plain hex (no separators, as [`plain`] writes it); `None`
/// if it is anything else. The sync wire is strict: a peer that sends
/// something else is broken.
pub fn parse_plain(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `b`, no separators.
pub fn plain(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

/// Lowercase hex of `b` with `:` between bytes, as Kea prints MACs and
/// client-ids.
pub fn colon(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_and_bad_text_says_why() {
        for s in ["01:02:ab", "01-02-AB", "01 02 ab", "0102ab"] {
            assert_eq!(parse(s), Ok(vec![1, 2, 0xab]), "{s}");
        }
        assert_eq!(parse(""), Err(HexError::Empty));
        assert_eq!(parse("::"), Err(HexError::Empty));
        assert_eq!(parse("0g"), Err(HexError::NotHex));
        assert_eq!(parse("012"), Err(HexError::OddDigits));
        assert_eq!(parse("é1"), Err(HexError::NotHex));
    }

    #[test]
    fn printers_round_trip() {
        let b = [0, 15, 16, 255];
        assert_eq!(colon(&b), "00:0f:10:ff");
        assert_eq!(plain(&b), "000f10ff");
        assert_eq!(parse(&colon(&b)).unwrap(), b);
        assert_eq!(parse_plain(&plain(&b)).unwrap(), b);
        assert_eq!(parse_plain("0:0f"), None);
        assert_eq!(parse_plain("0"), None);
        assert_eq!(colon(&[]), "");
    }
}
