//! Hiding secret values in whatever leaves greenlight. Masking happens last,
//! on the text as it will be read: a step's output is matched with its
//! terminal escape sequences skipped (a terminal renders `sec\x1b[0mret`
//! whole) and again with percent-encoding decoded (`%3A` for `:`, fully or
//! partly, up to twice: `%253A`), so an annotation decoded later, or a URL
//! printed encoded, cannot carry a value out. What is looked for in those
//! views is every form [`super::forms`] lists, of the value and of each of
//! its lines.

use super::ansi::{escape_len, strip_ansi};
use aho_corasick::AhoCorasick;
use std::borrow::Cow;
use std::ops::Range;

/// What a hidden value is replaced with.
pub const MASK: &str = "********";

/// Values shorter than this are refused at creation, and shorter forms (a
/// short line of a multi-line value) are not looked for: masking them would
/// blank every occurrence of common short strings in the logs.
pub const MIN_SECRET_BYTES: usize = 4;

/// Percent-decoding is applied this many times at most: twice covers a
/// value encoded again by a tool that encodes its input (`%253A`).
pub const DECODE_ROUNDS: usize = 2;

/// Replaces secret values, in every form, in text.
#[derive(Default)]
pub struct Masker {
    /// Every form of every value, `None` when there is nothing to hide.
    needles: Option<AhoCorasick>,
    /// The most bytes of text one masked value can span.
    reach: usize,
}

/// The count only: a masker's needles are the secrets.
impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.needles.as_ref().map_or(0, AhoCorasick::patterns_len);
        write!(f, "Masker({count} forms)")
    }
}

/// Text as the masker searches it: bytes, each with the range of the
/// original text it came from (one byte, a `%XX`, or more).
struct View {
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl View {
    /// The text as it is.
    fn of(text: &str) -> Self {
        Self { bytes: text.as_bytes().to_vec(), spans: (0..text.len()).map(|i| i..i + 1).collect() }
    }

    /// Without its escape sequences; `None` when it has none.
    fn without_escapes(&self) -> Option<Self> {
        if !self.bytes.contains(&0x1b) {
            return None;
        }
        let mut out = Self { bytes: Vec::with_capacity(self.bytes.len()), spans: Vec::with_capacity(self.bytes.len()) };
        let mut i = 0;
        while i < self.bytes.len() {
            if self.bytes[i] == 0x1b {
                i += escape_len(&self.bytes[i..]);
            } else {
                out.bytes.push(self.bytes[i]);
                out.spans.push(self.spans[i].clone());
                i += 1;
            }
        }
        Some(out)
    }

    /// With every `%XX` decoded; `None` when there is none.
    fn percent_decoded(&self) -> Option<Self> {
        let hex = |b: u8| (b as char).to_digit(16);
        let escape_at = |i: usize| {
            let (hi, lo) = (self.bytes.get(i + 1).copied().and_then(hex)?, self.bytes.get(i + 2).copied().and_then(hex)?);
            (self.bytes[i] == b'%').then_some((hi * 16 + lo) as u8)
        };
        let mut out = Self { bytes: Vec::with_capacity(self.bytes.len()), spans: Vec::with_capacity(self.bytes.len()) };
        let mut i = 0;
        while i < self.bytes.len() {
            if let Some(byte) = escape_at(i) {
                out.bytes.push(byte);
                out.spans.push(self.spans[i].start..self.spans[i + 2].end);
                i += 3;
            } else {
                out.bytes.push(self.bytes[i]);
                out.spans.push(self.spans[i].clone());
                i += 1;
            }
        }
        (out.bytes.len() < self.bytes.len()).then_some(out)
    }
}

impl Masker {
    /// A masker for these values.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for value in values {
            let lines = value.lines().map(|l| l.trim_end_matches('\r'));
            for part in std::iter::once(value).chain(lines) {
                needles.extend(super::forms::forms(part).into_iter().filter(|n| n.len() >= MIN_SECRET_BYTES));
            }
        }
        needles.sort();
        needles.dedup();
        if needles.is_empty() {
            return Self::default();
        }
        // A form percent-encoded in both decoding rounds spans up to 9 bytes per byte.
        let reach = needles.iter().map(String::len).max().unwrap_or(0) * 9;
        // Only fails past limits a pipeline's secrets cannot reach (millions of bytes of needles).
        Self { needles: Some(AhoCorasick::new(&needles).expect("secret forms build a searcher")), reach }
    }

    /// The most bytes of text one masked value can span (its longest form,
    /// percent-encoded twice); 0 when there is nothing to hide. A writer
    /// cutting text into pieces holds back this many bytes less one.
    pub fn reach(&self) -> usize {
        self.reach
    }

    /// The text with every secret form replaced by [`MASK`]. Escape
    /// sequences outside a masked value are kept (the build page shows
    /// colours); those inside one go with it.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(needles) = &self.needles else {
            return Cow::Borrowed(text);
        };
        let found = found_in(needles, text);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for range in found {
            out.push_str(&text[at..range.start]);
            out.push_str(MASK);
            at = range.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// The text as GitHub is given it: escape sequences removed (GitHub
    /// does not render them), then masked.
    pub fn mask_plain<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match strip_ansi(text) {
            Cow::Borrowed(plain) => self.mask(plain),
            Cow::Owned(plain) => Cow::Owned(self.mask(&plain).into_owned()),
        }
    }
}

/// Where secret forms are in `text`, in every view of it, as sorted,
/// disjoint ranges on character boundaries.
fn found_in(needles: &AhoCorasick, text: &str) -> Vec<Range<usize>> {
    if !text.bytes().any(|b| b == 0x1b || b == b'%') {
        // The common line: one view, the text itself.
        return merged(needles.find_overlapping_iter(text).map(|m| m.range()).collect());
    }
    let mut views = vec![View::of(text)];
    views.extend(views[0].without_escapes());
    for _ in 0..DECODE_ROUNDS {
        let last = views.last().expect("one view at least");
        match last.percent_decoded() {
            Some(decoded) => views.push(decoded),
            None => break,
        }
    }
    let found: Vec<Range<usize>> = views
        .iter()
        .flat_map(|view| needles.find_overlapping_iter(&view.bytes).map(|m| view.spans[m.start()].start..view.spans[m.end() - 1].end))
        .map(|r| widen(text, r))
        .collect();
    merged(found)
}

/// The ranges sorted, overlapping and touching ones joined.
fn merged(mut found: Vec<Range<usize>>) -> Vec<Range<usize>> {
    found.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
    for range in found {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// The range grown to the nearest character boundaries.
fn widen(text: &str, mut range: Range<usize>) -> Range<usize> {
    while !text.is_char_boundary(range.start) {
        range.start -= 1;
    }
    while !text.is_char_boundary(range.end) {
        range.end += 1;
    }
    range
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    const VALUE: &str = "s3cr3t-value";

    fn hidden(masker: &Masker, text: &str) -> bool {
        let masked = masker.mask(text);
        masked.contains(MASK) && !masked.contains("s3cr3t")
    }

    #[test]
    fn values_and_their_lines_are_hidden() {
        let masker = Masker::new([VALUE, "line one\nline two"]);
        assert_eq!(masker.mask("token=s3cr3t-value done\n"), "token=******** done\n");
        assert_eq!(masker.mask("line two\n"), "********\n");
        assert_eq!(masker.mask("nothing here"), Cow::Borrowed("nothing here"));
    }

    #[test]
    fn percent_encoding_is_decoded_fully_partly_and_twice() {
        let masker = Masker::new(["https://deploy:hunter2@registry"]);
        for text in [
            "https%3A%2F%2Fdeploy%3Ahunter2%40registry",
            "https%3a//deploy%3Ahunter2@registry",
            "https://deploy%3Ahunter2%40registry",
            "https%253A//deploy%253Ahunter2%2540registry",
        ] {
            assert_eq!(masker.mask(&format!("url={text}!")), "url=********!", "{text}");
        }
        assert_eq!(Masker::new(["two words"]).mask("q=two+words"), "q=********");
    }

    #[test]
    fn base64_forms_are_hidden_in_both_alphabets_at_any_alignment() {
        let masker = Masker::new(["hunter2-password?>"]);
        for prefix in ["", "x", "xy", "xyz"] {
            let plain = format!("{prefix}user:hunter2-password?>@host");
            for encoded in [STANDARD.encode(&plain), URL_SAFE.encode(&plain)] {
                let masked = masker.mask(&encoded);
                assert!(masked.contains(MASK), "{prefix:?}: {encoded} -> {masked}");
            }
        }
    }

    #[test]
    fn hex_and_json_forms_are_hidden() {
        let masker = Masker::new(["pa\"ss\\wörd/1"]);
        for text in [
            hex::encode("pa\"ss\\wörd/1"),
            hex::encode_upper("pa\"ss\\wörd/1"),
            serde_json::to_string("pa\"ss\\wörd/1").unwrap(),
            "\"pa\\\"ss\\\\w\\u00f6rd\\/1\"".to_string(),
        ] {
            assert!(masker.mask(&text).contains(MASK) && !masker.mask(&text).contains("ss"), "{text}");
        }
    }

    #[test]
    fn a_value_split_by_escape_sequences_is_hidden_and_colours_elsewhere_kept() {
        let masker = Masker::new([VALUE]);
        let text = "\x1b[32mok\x1b[0m s3cr\x1b[1m3t-va\x1b]0;t\x07lue \x1b[31mred";
        assert_eq!(masker.mask(text), "\x1b[32mok\x1b[0m ******** \x1b[31mred");
        assert_eq!(masker.mask_plain(text), "ok ******** red");
        assert!(hidden(&masker, "s3cr%33t\x1b[0m-value"));
    }

    #[test]
    fn short_lines_of_a_value_are_not_looked_for() {
        let masker = Masker::new(["abcdef\nab"]);
        assert_eq!(masker.mask("ab cd ab"), "ab cd ab");
        assert!(!format!("{masker:?}").contains("abcdef"), "Debug never shows a value");
    }

    #[test]
    fn overlapping_values_are_hidden_whole() {
        let masker = Masker::new(["abcdefgh", "efghijkl"]);
        assert_eq!(masker.mask("x abcdefghijkl y"), "x ******** y");
        assert_eq!(masker.mask("é%C3%A9abcdefgh"), "é%C3%A9********");
    }
}
