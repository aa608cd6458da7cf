//! Terminal escape sequences, found so they can be skipped: a terminal
//! renders `sec\x1b[1mret` as `secret`, so a secret split by one must still
//! be recognised, and GitHub (which does not render them) never gets them.
//!
//! Hand-written rather than a crate: masking needs to know where each
//! sequence starts and ends in the original text (to keep colours outside a
//! masked value in stored logs), which `strip-ansi-escapes` does not say.

use std::borrow::Cow;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// The length of the escape sequence starting at `bytes[0]` (an ESC), as
/// ECMA-48 frames them: CSI (`ESC [` parameters, intermediates, a final
/// byte), strings (OSC `ESC ]`, DCS `ESC P`, SOS, PM, APC, up to BEL or
/// `ESC \`), `ESC` intermediates then a final byte, or a lone ESC. An
/// unterminated sequence runs to the end of the text, as a terminal would
/// swallow it.
pub(super) fn escape_len(bytes: &[u8]) -> usize {
    debug_assert_eq!(bytes.first(), Some(&ESC));
    match bytes.get(1) {
        Some(b'[') => {
            let body = bytes[2..].iter().position(|b| !(0x20..=0x3f).contains(b)).map_or(bytes.len(), |p| p + 2);
            match bytes.get(body) {
                Some(0x40..=0x7e) => body + 1,
                _ => body,
            }
        }
        Some(b']' | b'P' | b'X' | b'^' | b'_') => {
            let mut i = 2;
            while i < bytes.len() {
                match bytes[i] {
                    BEL => return i + 1,
                    ESC if bytes.get(i + 1) == Some(&b'\\') => return i + 2,
                    _ => i += 1,
                }
            }
            bytes.len()
        }
        Some(0x20..=0x2f) => {
            let end = bytes[1..].iter().position(|b| !(0x20..=0x2f).contains(b)).map_or(bytes.len(), |p| p + 1);
            match bytes.get(end) {
                Some(0x30..=0x7e) => end + 1,
                _ => end,
            }
        }
        Some(0x30..=0x7e) => 2,
        _ => 1,
    }
}

/// The text without its escape sequences (borrowed when it has none).
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    if !bytes.contains(&ESC) {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == ESC {
            i += escape_len(&bytes[i..]);
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Sequences are ASCII framed by ASCII, so what is left is still UTF-8.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_sequence_is_removed_and_the_text_kept() {
        assert_eq!(strip_ansi("plain"), Cow::Borrowed("plain"));
        assert_eq!(strip_ansi("\x1b[1;31mred\x1b[0m and \x1b[Kclear"), "red and clear");
        assert_eq!(strip_ansi("\x1b]0;title\x07a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"), "alink");
        assert_eq!(strip_ansi("\x1b(Bx\x1b=y\x1bz!"), "xy!");
        assert_eq!(strip_ansi("é\x1b[38;5;208mü"), "éü");
        assert_eq!(strip_ansi("cut \x1b[1"), "cut ");
    }
}
