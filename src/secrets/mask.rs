//! Hiding secret values in log lines: each value, each line of a multi-line
//! value, their base64 forms (also as they appear inside longer base64
//! text) and their URL-encoded forms.

use crate::text::percent_encode;
use base64::Engine;

/// What a hidden value is replaced with.
pub const MASK: &str = "********";

/// Values shorter than this are refused at creation: masking them would
/// blank every occurrence of common short strings in the logs.
pub const MIN_SECRET_BYTES: usize = 4;

/// Replaces secret values in text.
#[derive(Debug, Default)]
pub struct Masker {
    needles: Vec<String>,
}

/// The base64 text that encodes `value` wherever it starts in a longer
/// input: the characters that depend on `value` alone, for each of the three
/// byte alignments.
fn base64_forms(value: &[u8]) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![engine.encode(value), base64::engine::general_purpose::STANDARD_NO_PAD.encode(value)];
    for shift in 0..3usize {
        let mut input = vec![0u8; shift];
        input.extend_from_slice(value);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&input);
        // Characters mixing the zero prefix, or the unknown following bytes, are dropped.
        let start = (shift * 8).div_ceil(6);
        let end = (input.len() * 8) / 6;
        if end > start {
            forms.push(encoded[start..end].to_string());
        }
    }
    forms
}

impl Masker {
    /// A masker for these values.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles = Vec::new();
        for value in values {
            let mut add = |needle: String| {
                if needle.len() >= MIN_SECRET_BYTES && !needles.contains(&needle) {
                    needles.push(needle);
                }
            };
            add(value.to_string());
            add(percent_encode(value, b""));
            for form in base64_forms(value.as_bytes()) {
                add(form);
            }
            for line in value.lines().map(|l| l.trim_end_matches('\r')) {
                add(line.to_string());
                add(percent_encode(line, b""));
            }
        }
        // Longest first, so a value is hidden whole before any of its parts.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Self { needles }
    }

    /// The text with every secret form replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_their_encodings_are_hidden() {
        let masker = Masker::new(["s3cr3t-value", "line one\nline two", "user@host"]);
        assert_eq!(masker.mask("token=s3cr3t-value done\n"), "token=******** done\n");
        assert_eq!(masker.mask(&format!("{}\n", base64::engine::general_purpose::STANDARD.encode("s3cr3t-value"))), "********\n");
        assert_eq!(masker.mask("line two\n"), "********\n");
        assert_eq!(masker.mask("a=user%40host"), "a=********");
    }

    #[test]
    fn a_value_inside_longer_base64_is_hidden_at_any_alignment() {
        let masker = Masker::new(["hunter2-password"]);
        for prefix in ["", "x", "xy", "xyz"] {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}user:hunter2-password@host"));
            let masked = masker.mask(&encoded);
            assert!(masked.contains(MASK), "{prefix:?}: {encoded} -> {masked}");
        }
    }

    #[test]
    fn short_lines_of_a_value_are_not_needles() {
        let masker = Masker::new(["abcdef\nab"]);
        assert_eq!(masker.mask("ab cd ab"), "ab cd ab");
    }
}
