//! JSON nested deeper than the operator reads. A tenant may write a free-form field (a Release's
//! `helmValues`, an AppVersion's manifests, `managedFields`) nested hundreds of levels deep: the
//! API server stores it, but serde_json refuses a document deeper than 128 levels, and one such
//! object in a list fails the whole list — every tenant's watch of that kind stalls. So every
//! answer the clients read is cut, as it streams in: a value that opens deeper than [`LIMIT`]
//! levels is replaced by [`CUT`], a number any free-form field holds (typed fields never nest that
//! deep) and one byte long, so a cut never makes an answer longer. Where the operator reads a
//! free-form value (Helm values, manifests, a check's Job template) it refuses one deeper than
//! [`MAX_DEPTH`] from its own root ([`too_deep`]): below every point an answer cuts it at, so what
//! is accepted reads the same from a list, a watch or a get, and what was cut (it still nests past
//! [`MAX_DEPTH`] down to the cut) is refused.

use bytes::Bytes;
use serde_json::Value;

/// The deepest a value may open, counted from the answer's root (a list item sits 2 levels down, a
/// watch event's object 1): far above any typed field, below serde_json's 128.
pub const LIMIT: usize = 100;

/// What replaces a value that opens deeper than [`LIMIT`]: shorter than the `[]` it may replace.
pub const CUT: &[u8] = b"0";

/// The state of one answer (a list, a watch stream of one-line documents) across its chunks.
#[derive(Debug, Default)]
pub struct DepthCut {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Inside a value being cut (it opened at `LIMIT + 1`).
    cutting: bool,
}

impl DepthCut {
    /// The chunk as the client reads it: unchanged (no copy) unless something in it is cut.
    pub fn feed(&mut self, data: Bytes) -> Bytes {
        // Allocated at the first byte not passed on as it came.
        let mut out: Option<Vec<u8>> = None;
        for (i, &b) in data.iter().enumerate() {
            match self.step(b) {
                Step::Keep => {
                    if let Some(o) = out.as_mut() {
                        o.push(b);
                    }
                }
                Step::Drop => {
                    out.get_or_insert_with(|| data[..i].to_vec());
                }
                Step::Replace => {
                    out.get_or_insert_with(|| data[..i].to_vec()).extend_from_slice(CUT);
                }
            }
        }
        out.map_or(data, Bytes::from)
    }

    fn step(&mut self, b: u8) -> Step {
        let pass = if self.cutting { Step::Drop } else { Step::Keep };
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return pass;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == LIMIT + 1 && !self.cutting {
                    self.cutting = true;
                    return Step::Replace;
                }
            }
            b'}' | b']' => {
                let closes_cut = self.cutting && self.depth == LIMIT + 1;
                self.depth = self.depth.saturating_sub(1);
                if closes_cut {
                    self.cutting = false;
                    return Step::Drop;
                }
            }
            _ => {}
        }
        pass
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Keep,
    Drop,
    Replace,
}

/// The deepest a free-form value may nest, counted from its own root (its container is level 1).
/// An AppVersion's manifest opens 6 levels down a list answer (`items`, the item, `spec`,
/// `manifests`), so it is cut past 95 of its own; a check's Job template past 92.
pub const MAX_DEPTH: usize = 90;

/// Whether `value` nests deeper than [`MAX_DEPTH`] (what was cut does).
pub fn too_deep(value: &Value) -> bool {
    nests_over(value, MAX_DEPTH)
}

fn nests_over(value: &Value, levels_left: usize) -> bool {
    match value {
        Value::Array(items) => levels_left == 0 || items.iter().any(|v| nests_over(v, levels_left - 1)),
        Value::Object(map) => levels_left == 0 || map.values().any(|v| nests_over(v, levels_left - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize, leaf: &str) -> String {
        let mut s = String::new();
        for i in 0..levels {
            s.push_str(if i % 2 == 0 { "{\"a\":" } else { "[" });
        }
        s.push_str(leaf);
        for i in (0..levels).rev() {
            s.push(if i % 2 == 0 { '}' } else { ']' });
        }
        s
    }

    /// Fed in chunks of `size` bytes.
    fn cut(text: &str, size: usize) -> String {
        let mut state = DepthCut::default();
        let out: Vec<u8> = text
            .as_bytes()
            .chunks(size)
            .flat_map(|c| state.feed(Bytes::copy_from_slice(c)).to_vec())
            .collect();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn what_nests_within_the_limit_passes_unchanged_and_uncopied() {
        let text = format!("{}\n{}", nested(LIMIT, r#""x{[\"]}""#), nested(3, "1"));
        let data = Bytes::from(text.clone());
        let ptr = data.as_ptr();
        let out = DepthCut::default().feed(data);
        assert_eq!((out.as_ptr(), &out[..]), (ptr, text.as_bytes()));
    }

    #[test]
    fn a_value_deeper_than_the_limit_becomes_the_cut_whatever_the_chunks() {
        let deep = nested(300, r#""}]{[ \" ""#);
        for size in [1, 7, 64, 100_000] {
            let out = cut(&format!("{deep}\n{}", nested(2, "2")), size);
            let (first, second) = out.split_once('\n').unwrap();
            let v: Value = serde_json::from_str(first).unwrap();
            assert!(too_deep(&v), "{size}");
            assert!(first.len() < deep.len(), "a cut never lengthens: {size}");
            // What comes after (the next watch event) is read as it was.
            assert_eq!(second, nested(2, "2"));
            let mut depth = 0;
            let mut at = &v;
            while let Some(next) = at.get("a").or_else(|| at.get(0)) {
                depth += 1;
                at = next;
            }
            assert_eq!((depth, at.as_u64()), (LIMIT, Some(0)), "{size}");
        }
    }

    #[test]
    fn a_value_is_too_deep_past_its_own_limit() {
        let value = |levels: usize| serde_json::from_str::<Value>(&nested(levels, "1")).unwrap();
        assert!(!too_deep(&value(MAX_DEPTH)));
        assert!(too_deep(&value(MAX_DEPTH + 1)));
    }

    #[test]
    fn brackets_in_strings_and_escapes_count_for_nothing() {
        let text = format!(r#"{{"s":"{}\"{}","t":{}}}"#, "[".repeat(500), "{".repeat(500), nested(4, "true"));
        assert_eq!(cut(&text, 3), text);
    }
}
