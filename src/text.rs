//! Small text and host helpers several modules share.

use std::path::PathBuf;

/// Percent-encodes everything but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) and the bytes in `also_keep`.
pub fn percent_encode(text: &str, also_keep: &[u8]) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b if also_keep.contains(&b) => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first `program` file on `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_and_the_kept_ones_stay() {
        assert_eq!(percent_encode("a b/c~d@e", b""), "a%20b%2Fc~d%40e");
        assert_eq!(percent_encode("/acme/widget/1", b"/"), "/acme/widget/1");
    }
}
