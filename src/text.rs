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

/// This machine's name (`host` when it has none).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "host".to_string()
    }
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
