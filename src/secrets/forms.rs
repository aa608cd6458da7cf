//! The texts a secret value can appear as in output: the encodings a build
//! tool prints by accident (a token in a JSON dump, a key in a hex dump, a
//! password in a base64 `Authorization` header). Percent-encoding is not
//! listed here: the masker decodes the text instead, which covers every
//! mix of encoded and plain characters.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Every form of `value` worth looking for: the value, its base64 forms,
/// hex, JSON string escaping, and `+` for spaces (form encoding).
pub(super) fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string(), value.replace(' ', "+")];
    out.extend(base64_forms(value.as_bytes()));
    out.push(hex::encode(value));
    out.push(hex::encode_upper(value));
    out.extend(json_forms(value));
    out
}

/// The base64 text that encodes `value` wherever it starts in a longer
/// input: the whole encoding (padded or not) and, for each of the three byte
/// alignments, the characters that depend on `value` alone (as GitHub
/// Actions masks); in the standard and the URL-safe alphabets.
fn base64_forms(value: &[u8]) -> Vec<String> {
    let mut forms = vec![STANDARD.encode(value), URL_SAFE.encode(value)];
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        for shift in 0..3usize {
            let mut input = vec![0u8; shift];
            input.extend_from_slice(value);
            let encoded = engine.encode(&input);
            // Characters mixing the zero prefix, or the unknown following bytes, are dropped.
            let start = (shift * 8).div_ceil(6);
            let end = (input.len() * 8) / 6;
            if end > start {
                forms.push(encoded[start..end].to_string());
            }
        }
    }
    forms
}

/// The value inside a JSON string: as `serde_json` (and most encoders)
/// write it, and with `/` escaped as some encoders do, each also with every
/// non-ASCII character as `\uXXXX` (Python's `json.dumps` default).
fn json_forms(value: &str) -> Vec<String> {
    let quoted = serde_json::to_string(value).expect("a string serializes");
    let plain = quoted[1..quoted.len() - 1].to_string();
    let ascii: String = plain
        .chars()
        .map(|c| match c.is_ascii() {
            true => c.to_string(),
            false => c.encode_utf16(&mut [0; 2]).iter().map(|u| format!("\\u{u:04x}")).collect(),
        })
        .collect();
    vec![plain.replace('/', "\\/"), ascii.replace('/', "\\/"), ascii, plain]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_escape_quotes_slashes_and_non_ascii() {
        let forms = json_forms("a\"b\\c/é\n");
        assert!(forms.contains(&"a\\\"b\\\\c/é\\n".to_string()), "{forms:?}");
        assert!(forms.contains(&"a\\\"b\\\\c\\/é\\n".to_string()), "{forms:?}");
        assert!(forms.contains(&"a\\\"b\\\\c/\\u00e9\\n".to_string()), "{forms:?}");
    }
}
