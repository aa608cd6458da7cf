//! The caps a `.drone.yml` is read under, and the cheap passes that enforce
//! them before the strict parse: a pull request from anyone chooses the
//! file, so reading it must cost bounded memory and time whatever it holds.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// The largest `.drone.yml` read, in bytes. Real files are a few KB; 512 KB
/// leaves two orders of magnitude of headroom while bounding the YAML
/// parser's work and memory for every delivery (GitHub's contents API
/// serves files up to 1 MB inline, so this cap is the one that applies).
pub const MAX_FILE_BYTES: usize = 512 * 1024;

/// The most YAML documents a file may hold. Each document is parsed on its
/// own (once: re-parsing from the start per document made 12,000 `kind:
/// signature` documents stall planning for a minute); the cap also stops
/// thousands of tiny documents from costing a parser start each. A real
/// file has a handful: its pipelines and one signature.
pub const MAX_DOCUMENTS: usize = 100;

/// The most `kind: pipeline` documents: each becomes a stage, a check run and
/// a commit status, so this also bounds what one push asks of GitHub.
pub const MAX_PIPELINES: usize = 50;

/// The most steps in one pipeline: each becomes a step record, a log and a
/// line of the check run, and runs one after the other in one workspace.
pub const MAX_STEPS: usize = 200;

/// The most times a failed step runs again (`retry:`): enough to see a
/// flaky test through, few enough that a broken one cannot hold a worker
/// for many timeouts in a row.
pub const MAX_RETRIES: u32 = 5;

/// The longest cache key, in bytes, after its templates are filled in as
/// written: S3's object keys stop at 1,024 bytes, and the key shares one
/// with the repository, scope and prefix.
pub const MAX_CACHE_KEY_BYTES: usize = 512;

/// The most paths one `cache:` saves.
pub const MAX_CACHE_PATHS: usize = 32;

/// The most `artifacts:` patterns one step lists.
pub const MAX_ARTIFACT_PATTERNS: usize = 32;

/// The most YAML nodes (scalars, sequences, mappings) the whole file may
/// expand to, with every alias (`*name`) counted as a full copy of what it
/// names each time it is used. An alias bomb (`b: [*a, *a, …]` over a
/// 10,000-item `a`) is 50 KB of text but 10⁸ nodes; counting stops at this
/// budget so it is refused after a bounded amount of work. 250,000 is far
/// above a real file: 50 pipelines of 200 steps are about 60,000 nodes.
pub const MAX_NODES: usize = 250_000;

/// The most `[` and `{` characters a file may hold, wherever they are (in
/// strings and comments too, so no quoting hides one). The YAML parser's
/// work grows with the square of the flow nesting depth (it rescans every
/// open level at each token): 100,000 nested `{a: ` fit in 512 KB and take
/// it tens of seconds. Depth cannot exceed this count, which bounds that
/// work to a fraction of a second; a real file holds a few hundred.
pub const MAX_OPENERS: usize = 10_000;

/// The 1-based line of the first `[` or `{` over [`MAX_OPENERS`], if any.
pub(crate) fn too_many_openers(text: &str) -> Option<usize> {
    let (at, _) = text.bytes().enumerate().filter(|(_, b)| matches!(b, b'[' | b'{')).nth(MAX_OPENERS)?;
    Some(text.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1)
}

/// `bytes` for people: `512 KB`, `10.0 MB`.
pub(crate) fn human_size(bytes: usize) -> String {
    if bytes < 1024 * 1024 { format!("{} KB", bytes.div_ceil(1024)) } else { format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0)) }
}

/// One YAML document's text, cut out of the file at its `---` marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slice<'a> {
    /// The document's text, its `---` line included.
    pub text: &'a str,
    /// How many lines of the file come before `text`.
    pub offset: usize,
    /// The 1-based line of the document's content (after its `---`).
    pub start: usize,
}

/// Whether `line` is a document marker: `---` or `...` at column 0, alone
/// or followed by a space. YAML forbids these anywhere inside content (even
/// in block and quoted scalars), so cutting at them cuts between documents.
fn marker(line: &str, mark: &str) -> bool {
    let line = line.trim_end_matches(['\r', '\n']);
    line.strip_prefix(mark).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Whether `line` has content (not blank, a comment or a directive).
fn has_content(line: &str) -> bool {
    let trimmed = line.trim_start();
    !(trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%'))
}

/// The file cut into its documents, lazily, in one pass over the text: each
/// is then parsed on its own, so no document is ever parsed twice from the
/// start of the file.
pub(crate) fn documents(text: &str) -> impl Iterator<Item = Slice<'_>> {
    let mut rest = text;
    let mut line = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (offset, mut start) = (line, line + 1);
        let mut content = false;
        let mut end = 0;
        for (i, l) in rest.split_inclusive('\n').enumerate() {
            if marker(l, "---") {
                if content {
                    break;
                }
                start = line + 2;
                content = true; // this document's own marker
            } else {
                content |= has_content(l);
            }
            end += l.len();
            line += 1;
            if marker(l, "...") && i > 0 {
                break;
            }
        }
        let slice = Slice { text: &rest[..end], offset, start };
        rest = &rest[end..];
        Some(slice)
    })
}

/// The parts of a document read before the strict parse.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The document is empty (`null`), e.g. after a trailing `---`.
    pub empty: bool,
    /// Its top-level `kind`, when a string.
    pub kind: Option<String>,
    /// Its top-level `type`, when a string.
    pub pipeline_type: Option<String>,
}

/// The message of a document whose nodes exhausted the [`MAX_NODES`] budget.
pub(crate) fn too_many_nodes() -> String {
    format!(
        "the file expands to more than {MAX_NODES} YAML values (each use of an alias such as `*a` counts everything it names); greenlight reads at most {MAX_NODES}"
    )
}

/// Reads a document's shape while counting its expanded nodes against
/// `budget`, which it decrements; fails as soon as the budget runs out.
/// Nothing but the two top-level strings is kept, whatever the document holds.
pub(crate) fn scan<'de, D: Deserializer<'de>>(document: D, budget: &Cell<usize>) -> Result<Shape, D::Error> {
    document.deserialize_any(Top { budget })
}

/// Takes one node from `budget`.
fn spend<E: de::Error>(budget: &Cell<usize>) -> Result<(), E> {
    match budget.get().checked_sub(1) {
        Some(left) => {
            budget.set(left);
            Ok(())
        }
        None => Err(E::custom(too_many_nodes())),
    }
}

/// The document's top node.
struct Top<'b> {
    budget: &'b Cell<usize>,
}

/// Any node below the top: counted, then dropped.
#[derive(Clone, Copy)]
struct Count<'b> {
    budget: &'b Cell<usize>,
}

/// A top-level value: a string is kept (for `kind` and `type`), anything else counted.
struct Keep<'b> {
    budget: &'b Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> DeserializeSeed<'de> for Keep<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

/// Implements the visits a counting visitor shares (all but strings, maps,
/// `null`), each spending one node.
macro_rules! scalars {
    ($value:ty, $scalar:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$value, E> {
            spend(self.budget).map(|_| $scalar)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$value, E> {
            spend(self.budget).map(|_| $scalar)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$value, E> {
            spend(self.budget).map(|_| $scalar)
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<$value, E> {
            spend(self.budget).map(|_| $scalar)
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<$value, E> {
            spend(self.budget).map(|_| $scalar)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$value, E> {
            spend(self.budget).map(|_| $scalar)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
            Count { budget: self.budget }.deserialize(d).map(|_| $scalar)
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
            Count { budget: self.budget }.deserialize(d).map(|_| $scalar)
        }
        fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<$value, A::Error> {
            // A tagged node (`!tag value`): the tag, then its value.
            let ((), variant) = data.variant_seed(Count { budget: self.budget })?;
            de::VariantAccess::newtype_variant_seed(variant, Count { budget: self.budget }).map(|_| $scalar)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$value, A::Error> {
            spend(self.budget)?;
            while seq.next_element_seed(Count { budget: self.budget })?.is_some() {}
            Ok($scalar)
        }
    };
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    scalars!((), ());
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        spend(self.budget)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        spend(self.budget)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        spend(self.budget)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        spend(self.budget)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    scalars!(Option<String>, None);
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        spend(self.budget).map(|_| None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        self.visit_unit()
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        spend(self.budget).map(|_| Some(v.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<String>, A::Error> {
        Count { budget: self.budget }.visit_map(map).map(|_| None)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML document")
    }
    scalars!(Shape, Shape::default());
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        spend(self.budget).map(|_| Shape { empty: true, ..Shape::default() })
    }
    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        self.visit_unit()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        spend(self.budget).map(|_| Shape::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        spend(self.budget)?;
        let mut shape = Shape::default();
        while let Some(key) = map.next_key_seed(Keep { budget: self.budget })? {
            let value = map.next_value_seed(Keep { budget: self.budget })?;
            match key.as_deref() {
                Some("kind") => shape.kind = value,
                Some("type") => shape.pipeline_type = value,
                _ => {}
            }
        }
        Ok(shape)
    }
}
