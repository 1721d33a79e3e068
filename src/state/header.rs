//! A safetensors header read strictly: every key once, sizes with checked arithmetic, data
//! offsets that tile the data exactly, and error messages that list at most [`LISTED`] items,
//! so a hostile header can neither panic the reader nor grow what it holds past the file.

use std::fmt;

use safetensors::tensor::Dtype;

/// The first eight bytes of a scalar's data, which the header check made exactly eight long.
pub(super) fn eight(data: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&data[..8]);
    out
}

/// The largest header a file may have, as the `safetensors` crate allows.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors header, parsed and checked: the metadata and the tensors by offset.
pub(super) struct Header {
    pub(super) metadata: Vec<(String, String)>,
    /// Sorted by data offset; each tensor's bytes are exactly its shape's, end to end.
    pub(super) tensors: Vec<TensorInfo>,
    /// Where the tensors' data starts in the file.
    pub(super) data_start: usize,
}

/// One tensor as the header describes it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TensorInfo {
    #[serde(skip)]
    pub(super) name: String,
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
    pub(super) data_offsets: (usize, usize),
}

impl Header {
    /// Parses the header of `file` strictly: an 8-byte length within the file, then a JSON
    /// object of tensors (`dtype`, `shape` and `data_offsets`, nothing else) and an optional
    /// `__metadata__` object of strings. Every key once (the JSON parser would keep the last of
    /// a repeated key), element counts and byte sizes computed with checked arithmetic and
    /// within what an array can hold, and the tensors' bytes end to end up to the end of the
    /// file. The error lists at most [`LISTED`] names.
    pub(super) fn parse(file: &[u8]) -> Result<Header, String> {
        let Some((length, rest)) = file.split_first_chunk::<8>() else {
            return Err(format!("{} bytes: expected at least the 8-byte header length", file.len()));
        };
        let length = u64::from_le_bytes(*length);
        if length > MAX_HEADER_BYTES || length > rest.len() as u64 {
            return Err(format!(
                "the header claims {length} bytes: expected at most {} (the file's remaining {} bytes, \
                 and at most {MAX_HEADER_BYTES})",
                (rest.len() as u64).min(MAX_HEADER_BYTES),
                rest.len()
            ));
        }
        let (json, data) = rest.split_at(length as usize);
        let RawHeader { metadata, mut tensors } =
            serde_json::from_slice(json).map_err(|e| format!("header: {e}"))?;
        repeated_keys("tensor names", tensors.iter().map(|t| t.name.as_str()))?;
        repeated_keys("metadata keys", metadata.iter().map(|(k, _)| k.as_str()))?;
        tensors.sort_by_key(|t| t.data_offsets);
        let mut end_of_last = 0;
        for t in &tensors {
            let bytes = tensor_bytes(t)?;
            let (begin, end) = t.data_offsets;
            if begin != end_of_last || end.checked_sub(begin) != Some(bytes) {
                return Err(format!(
                    "tensor {:?} ({} {:?}) has data_offsets [{begin}, {end}]: expected [{end_of_last}, {}], \
                     right after the tensor before it and {bytes} bytes long",
                    quoted(&t.name),
                    t.dtype,
                    axes(&t.shape),
                    end_of_last.saturating_add(bytes)
                ));
            }
            end_of_last = end;
        }
        if end_of_last != data.len() {
            return Err(format!(
                "the tensors' data takes {end_of_last} bytes, but {} follow the header: expected the same",
                data.len()
            ));
        }
        Ok(Header { metadata, tensors, data_start: 8 + json.len() })
    }
}

/// `name` quoted, cut to its first 100 characters: a file's names may be of any length.
pub(super) fn quoted(name: &str) -> String {
    clip(format!("{name:?}"))
}

/// A shape as `[2, 3]`, with at most 16 axes shown: a file's shapes may have any number.
pub(super) fn axes(shape: &[usize]) -> String {
    match shape.len() {
        0..=16 => format!("{shape:?}"),
        n => format!("{:?} and {} more axes", &shape[..16], n - 16),
    }
}

/// `text` cut to its first 100 characters, with `...` where it was cut.
pub(super) fn clip(text: String) -> String {
    match text.char_indices().nth(100) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// How many names an error lists before it says how many more there are.
pub(super) const LISTED: usize = 10;

/// An error if a key occurs more than once, listing at most [`LISTED`] of the repeated ones.
fn repeated_keys<'k>(what: &str, keys: impl Iterator<Item = &'k str>) -> Result<(), String> {
    let mut keys: Vec<&str> = keys.collect();
    keys.sort_unstable();
    let mut repeated: Vec<&str> = keys.windows(2).filter(|w| w[0] == w[1]).map(|w| w[1]).collect();
    repeated.dedup();
    if repeated.is_empty() {
        return Ok(());
    }
    Err(format!("{what} {} each appear more than once: expected each once", listed(&repeated)))
}

/// At most [`LISTED`] items, quoted, then how many more there are.
pub(crate) fn listed(items: &[impl fmt::Debug]) -> String {
    let shown: Vec<String> = items.iter().take(LISTED).map(|i| clip(format!("{i:?}"))).collect();
    match items.len().saturating_sub(LISTED) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// The byte size of a tensor's data, or an error if its shape's element count or byte size
/// overflows or passes what an array can hold (`isize::MAX` bytes, counting the axes of
/// length 0 as 1, as `ndarray` does).
fn tensor_bytes(t: &TensorInfo) -> Result<usize, String> {
    let too_large = || {
        format!(
            "tensor {} has shape {}: too large for an array of {}",
            quoted(&t.name),
            axes(&t.shape),
            t.dtype
        )
    };
    let nonzero = t.shape.iter().filter(|&&d| d != 0).try_fold(1usize, |n, &d| n.checked_mul(d));
    let bits = t.dtype.bitsize();
    let nonzero_bytes = nonzero.and_then(|n| n.checked_mul(bits)).map(|b| b.div_ceil(8));
    if nonzero_bytes.is_none_or(|b| b > isize::MAX as usize) {
        return Err(too_large());
    }
    let elements = if t.shape.contains(&0) { 0 } else { nonzero.unwrap_or(0) };
    let bits = elements.checked_mul(bits).ok_or_else(too_large)?;
    if bits % 8 != 0 {
        return Err(format!(
            "tensor {} of {} {} does not fill whole bytes",
            quoted(&t.name),
            t.dtype,
            axes(&t.shape)
        ));
    }
    Ok(bits / 8)
}

/// The header as the JSON holds it: the tensors in file order, names kept for the checks.
struct RawHeader {
    metadata: Vec<(String, String)>,
    tensors: Vec<TensorInfo>,
}

impl<'de> serde::Deserialize<'de> for RawHeader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of tensors and an optional \"__metadata__\" object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
                let mut header = RawHeader { metadata: Vec::new(), tensors: Vec::new() };
                let mut seen_metadata = false;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "__metadata__" {
                        if seen_metadata {
                            return Err(serde::de::Error::custom("\"__metadata__\" appears more than once"));
                        }
                        seen_metadata = true;
                        header.metadata = map.next_value::<Pairs>()?.0;
                    } else {
                        let mut info: TensorInfo = map.next_value()?;
                        info.name = key;
                        header.tensors.push(info);
                    }
                }
                Ok(header)
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A JSON object of strings, as pairs in file order, repeats kept for the check.
struct Pairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}
