//! Named state as plain data: a model's parameters and buffers, an optimizer's moments and step
//! counts, each under a name, as arrays that can be copied between models, tapes and threads
//! (a [`StateDict`] is `Send`) and saved as safetensors.
//!
//! [`nn::state_dict`](crate::nn::state_dict) and [`Optimizer::state_dict`](crate::optim::Optimizer::state_dict)
//! make one; [`nn::load_state_dict`](crate::nn::load_state_dict) and
//! [`Optimizer::load_state_dict`](crate::optim::Optimizer::load_state_dict) read one back, changing
//! nothing unless every entry fits.
//!
//! In a safetensors file, tensors keep their element type (`F32` or `F64`), counts are `U64`
//! scalars and numbers (learning rates, `β`s) `F64` scalars whose names the file's metadata lists
//! under `tapegrad.numbers`, so a scalar tensor and a number cannot be confused.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, View};

use crate::float::Float;

/// The metadata key listing which `F64` scalars of a file are numbers rather than tensors.
const NUMBERS_KEY: &str = "tapegrad.numbers";

/// Free-form notes in a file's header (the epoch, the seeds), by key.
pub type Notes = BTreeMap<String, String>;

/// One named piece of state.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<F> {
    /// An array: a parameter, a buffer, an optimizer's moment.
    Tensor(ArrayD<F>),
    /// A counter, exact at any size: an optimizer's step count.
    Count(u64),
    /// A setting kept with the state: a learning rate, a `β`.
    Number(f64),
}

impl<F: Float> Entry<F> {
    /// What the entry is, as error messages show it: `f32 [3, 4]`, `a count`, `a number`.
    pub fn describe(&self) -> String {
        match self {
            Entry::Tensor(a) => format!("{} {:?}", F::NAME, a.shape()),
            Entry::Count(_) => "a count".into(),
            Entry::Number(_) => "a number".into(),
        }
    }
}

/// Named state, sorted by name: see the [module](self) docs.
///
/// ```
/// use tapegrad::state::{Entry, StateDict};
/// let mut state = StateDict::<f32>::new();
/// state.insert("fc1.weight", Entry::Tensor(ndarray::Array2::<f32>::ones((2, 3)).into_dyn()));
/// state.insert("step", Entry::Count(7));
/// assert_eq!(state.names(), ["fc1.weight", "step"]);
/// assert_eq!(state.count("step"), Some(7));
/// assert_eq!(state.tensor("fc1.weight").unwrap().shape(), [2, 3]);
///
/// let path = std::env::temp_dir().join("tapegrad-doc-state.safetensors");
/// state.save(&path, &Default::default()).unwrap();
/// let (back, _metadata) = StateDict::<f32>::load(&path).unwrap();
/// assert_eq!(back, state);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StateDict<F> {
    entries: BTreeMap<String, Entry<F>>,
}

impl<F> Default for StateDict<F> {
    fn default() -> Self {
        StateDict { entries: BTreeMap::new() }
    }
}

impl<F: Float> StateDict<F> {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the entry `name`.
    pub fn insert(&mut self, name: impl Into<String>, entry: Entry<F>) {
        self.entries.insert(name.into(), entry);
    }

    /// The entry `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Entry<F>> {
        self.entries.get(name)
    }

    /// The array `name`, if there is one under that name.
    pub fn tensor(&self, name: &str) -> Option<&ArrayD<F>> {
        match self.entries.get(name)? {
            Entry::Tensor(a) => Some(a),
            _ => None,
        }
    }

    /// The count `name`, if there is one under that name.
    pub fn count(&self, name: &str) -> Option<u64> {
        match self.entries.get(name)? {
            Entry::Count(n) => Some(*n),
            _ => None,
        }
    }

    /// The number `name`, if there is one under that name.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.entries.get(name)? {
            Entry::Number(x) => Some(*x),
            _ => None,
        }
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// The entries, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry<F>)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same entries, each name prefixed with `prefix` and a dot (`"model"` turns
    /// `"fc1.weight"` into `"model.fc1.weight"`): how one file holds several states.
    ///
    /// ```
    /// use tapegrad::state::{Entry, StateDict};
    /// let mut state = StateDict::<f64>::new();
    /// state.insert("step", Entry::Count(1));
    /// let prefixed = state.clone().prefixed("optimizer");
    /// assert_eq!(prefixed.names(), ["optimizer.step"]);
    /// assert_eq!(prefixed.under("optimizer"), state);
    /// ```
    pub fn prefixed(self, prefix: &str) -> Self {
        let entries = self.entries.into_iter().map(|(k, v)| (format!("{prefix}.{k}"), v)).collect();
        StateDict { entries }
    }

    /// The entries whose names start with `prefix` and a dot, with that removed: the inverse
    /// of [`prefixed`](Self::prefixed).
    pub fn under(&self, prefix: &str) -> Self {
        let head = format!("{prefix}.");
        let entries = self
            .entries
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&head)?.to_string(), v.clone())))
            .collect();
        StateDict { entries }
    }

    /// Adds every entry of `other`, replacing those of the same name.
    pub fn extend(&mut self, other: StateDict<F>) {
        self.entries.extend(other.entries);
    }

    /// Removes and returns the entry `name`.
    pub fn remove(&mut self, name: &str) -> Option<Entry<F>> {
        self.entries.remove(name)
    }

    /// Compares the entries with what a reader `expects` (name and description, as
    /// [`Entry::describe`] gives them), returning every difference: names missing here, names
    /// here that are not expected, and entries of another kind or shape.
    pub fn mismatches<'e>(&self, expected: impl IntoIterator<Item = (&'e str, String)>) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (name, want) in expected {
            seen.insert(name);
            match self.entries.get(name) {
                None => out.push(Mismatch::Missing { name: name.into(), expected: want }),
                Some(entry) if entry.describe() != want => {
                    out.push(Mismatch::Differs { name: name.into(), expected: want, found: entry.describe() })
                }
                Some(_) => {}
            }
        }
        for (name, entry) in &self.entries {
            if !seen.contains(name.as_str()) {
                out.push(Mismatch::Unexpected { name: name.clone(), found: entry.describe() });
            }
        }
        out
    }

    /// Writes the state to `path` as safetensors, with `metadata` (say, the epoch and the
    /// seeds) in the file's header.
    ///
    /// Fails with [`StateError::ReservedKey`], before the file is opened, if `metadata` uses
    /// the key `tapegrad.numbers`, under which the file lists its numbers.
    ///
    /// ```
    /// use tapegrad::state::{StateDict, StateError};
    /// let notes = [("tapegrad.numbers".to_string(), "lr".to_string())].into();
    /// let path = std::env::temp_dir().join("tapegrad-doc-reserved.safetensors");
    /// let err = StateDict::<f32>::new().save(&path, &notes).unwrap_err();
    /// assert!(matches!(err, StateError::ReservedKey { .. }), "{err}");
    /// ```
    pub fn save(
        &self,
        path: impl AsRef<Path>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), StateError> {
        let path = path.as_ref();
        if metadata.contains_key(NUMBERS_KEY) {
            return Err(StateError::ReservedKey { path: path.to_path_buf(), key: NUMBERS_KEY.into() });
        }
        let mut metadata: std::collections::HashMap<String, String> =
            metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let numbers: Vec<&str> =
            self.iter().filter(|(_, e)| matches!(e, Entry::Number(_))).map(|(k, _)| k).collect();
        if !numbers.is_empty() {
            metadata.insert(NUMBERS_KEY.into(), numbers.join(","));
        }
        let tensors: Vec<(&str, Bytes)> = self.iter().map(|(k, e)| (k, Bytes::of(e))).collect();
        let bytes = safetensors::serialize(tensors.iter().map(|(k, t)| (*k, t)), Some(metadata))
            .map_err(|e| StateError::Format { path: path.to_path_buf(), message: e.to_string() })?;
        std::fs::write(path, bytes).map_err(|error| StateError::Io { path: path.to_path_buf(), error })
    }

    /// Reads a state saved by [`save`](Self::save) (or any safetensors file of `F` tensors),
    /// with the header's metadata. A tensor of another element type is a
    /// [`StateError::Mismatch`] naming each such tensor.
    pub fn load(path: impl AsRef<Path>) -> Result<(StateDict<F>, Notes), StateError> {
        let (state, metadata, foreign) = Self::read(path.as_ref())?;
        if !foreign.is_empty() {
            return Err(StateError::Mismatch {
                file: Some(path.as_ref().to_path_buf()),
                mismatches: foreign,
            });
        }
        Ok((state, metadata))
    }

    /// Like [`load`](Self::load), but returns the tensors of another element type as
    /// mismatches beside the state, so a caller can report them with its own.
    ///
    /// The header is parsed strictly (see [`Header::parse`]) before any tensor is copied, and
    /// no size is taken from the file without checked arithmetic, so a hostile file is an
    /// error, never a panic, and costs a small multiple of its own size in memory.
    pub(crate) fn read(path: &Path) -> Result<(StateDict<F>, Notes, Vec<Mismatch>), StateError> {
        let format = |message: String| StateError::Format { path: path.to_path_buf(), message };
        let bytes =
            std::fs::read(path).map_err(|error| StateError::Io { path: path.to_path_buf(), error })?;
        let header = Header::parse(&bytes).map_err(format)?;
        let mut metadata: Notes = header.metadata.into_iter().collect();
        let numbers: Vec<String> = match metadata.remove(NUMBERS_KEY) {
            Some(list) => list.split(',').map(String::from).collect(),
            None => Vec::new(),
        };
        let data = &bytes[header.data_start..];
        let mut state = StateDict::new();
        let mut foreign = Vec::new();
        for tensor in header.tensors {
            let TensorInfo { name, dtype, shape, data_offsets: (begin, end), .. } = tensor;
            let data = &data[begin..end];
            let is_number = numbers.contains(&name);
            let entry = match dtype {
                Dtype::F64 if shape.is_empty() && is_number => Entry::Number(f64::from_le_bytes(eight(data))),
                Dtype::U64 if shape.is_empty() => Entry::Count(u64::from_le_bytes(eight(data))),
                Dtype::F32 | Dtype::F64 if dtype == dtype_of::<F>() && !is_number => {
                    let values = data.chunks_exact(std::mem::size_of::<F>()).map(from_le_bytes).collect();
                    let array = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| {
                        format(format!("tensor {} of shape {}: {e}", quoted(&name), axes(&shape)))
                    })?;
                    Entry::Tensor(array)
                }
                _ if is_number => {
                    return Err(format(format!(
                        "{NUMBERS_KEY:?} lists {} as a number, but it is {} {}: expected an \
                         f64 scalar",
                        quoted(&name),
                        dtype.to_string().to_lowercase(),
                        axes(&shape)
                    )));
                }
                _ => {
                    let found = format!("{} {}", dtype.to_string().to_lowercase(), axes(&shape));
                    let expected = format!("{} tensor, a u64 count or an f64 number", F::NAME);
                    foreign.push(Mismatch::Differs { name, expected, found });
                    continue;
                }
            };
            state.insert(name, entry);
        }
        if let Some(name) = numbers.iter().find(|n| state.number(n).is_none()) {
            return Err(format(format!(
                "{NUMBERS_KEY:?} lists {} as a number, but the file has no tensor of that name",
                quoted(name)
            )));
        }
        Ok((state, metadata, foreign))
    }
}

/// The first eight bytes of a scalar's data, which the header check made exactly eight long.
fn eight(data: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&data[..8]);
    out
}

/// The largest header a file may have, as the `safetensors` crate allows.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors header, parsed and checked: the metadata and the tensors by offset.
struct Header {
    metadata: Vec<(String, String)>,
    /// Sorted by data offset; each tensor's bytes are exactly its shape's, end to end.
    tensors: Vec<TensorInfo>,
    /// Where the tensors' data starts in the file.
    data_start: usize,
}

/// One tensor as the header describes it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorInfo {
    #[serde(skip)]
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

impl Header {
    /// Parses the header of `file` strictly: an 8-byte length within the file, then a JSON
    /// object of tensors (`dtype`, `shape` and `data_offsets`, nothing else) and an optional
    /// `__metadata__` object of strings. Every key once (the JSON parser would keep the last of
    /// a repeated key), element counts and byte sizes computed with checked arithmetic and
    /// within what an array can hold, and the tensors' bytes end to end up to the end of the
    /// file. The error lists at most [`LISTED`] names.
    fn parse(file: &[u8]) -> Result<Header, String> {
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
fn quoted(name: &str) -> String {
    clip(format!("{name:?}"))
}

/// A shape as `[2, 3]`, with at most 16 axes shown: a file's shapes may have any number.
fn axes(shape: &[usize]) -> String {
    match shape.len() {
        0..=16 => format!("{shape:?}"),
        n => format!("{:?} and {} more axes", &shape[..16], n - 16),
    }
}

/// `text` cut to its first 100 characters, with `...` where it was cut.
fn clip(text: String) -> String {
    match text.char_indices().nth(100) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// How many names an error lists before it says how many more there are.
const LISTED: usize = 10;

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

/// One way a state differs from what its reader expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The reader expects an entry the state lacks.
    Missing {
        /// Its name.
        name: String,
        /// What the reader expects, as `f32 [3, 4]`.
        expected: String,
    },
    /// The state has an entry the reader does not expect.
    Unexpected {
        /// Its name.
        name: String,
        /// What it is.
        found: String,
    },
    /// The entry has another kind, element type or shape.
    Differs {
        /// Its name.
        name: String,
        /// What the reader expects.
        expected: String,
        /// What the state has.
        found: String,
    },
}

impl Mismatch {
    /// The entry's name.
    pub fn name(&self) -> &str {
        match self {
            Mismatch::Missing { name, .. }
            | Mismatch::Unexpected { name, .. }
            | Mismatch::Differs { name, .. } => name,
        }
    }

    /// The same mismatch with `prefix` and a dot before the name.
    pub fn prefixed(self, prefix: &str) -> Self {
        let with = |name: String| format!("{prefix}.{name}");
        match self {
            Mismatch::Missing { name, expected } => Mismatch::Missing { name: with(name), expected },
            Mismatch::Unexpected { name, found } => Mismatch::Unexpected { name: with(name), found },
            Mismatch::Differs { name, expected, found } => {
                Mismatch::Differs { name: with(name), expected, found }
            }
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { name, expected } => write!(f, "{name:?} is missing (expected {expected})"),
            Mismatch::Unexpected { name, found } => write!(f, "{name:?} ({found}) is not expected"),
            Mismatch::Differs { name, expected, found } => {
                write!(f, "{name:?} is {found}, expected {expected}")
            }
        }
    }
}

/// What went wrong reading, writing or applying a state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        message: String,
    },
    /// A model lists two parameters or buffers under one name, so a state cannot tell them
    /// apart.
    #[error(
        "{}the model names two tensors {name:?} (shapes {first:?} and {second:?}); expected each \
         parameter and buffer name once",
        in_file(file)
    )]
    Duplicate {
        /// The file being read or written, if any.
        file: Option<PathBuf>,
        /// The repeated name.
        name: String,
        /// The shape of the first tensor under that name.
        first: Vec<usize>,
        /// The shape of the second.
        second: Vec<usize>,
    },
    /// A note uses the key under which a file lists its numbers (`tapegrad.numbers`).
    #[error(
        "{}: the note key {key:?} is reserved (the file lists its numbers under it): expected \
         another key",
        path.display()
    )]
    ReservedKey {
        /// The file being written.
        path: PathBuf,
        /// The reserved key.
        key: String,
    },
    /// The state does not fit its reader; nothing was changed.
    #[error("{}{}, nothing changed: {}", in_file(file), count(mismatches), list(mismatches))]
    Mismatch {
        /// The file the state came from, if any.
        file: Option<PathBuf>,
        /// Every difference.
        mismatches: Vec<Mismatch>,
    },
}

impl StateError {
    /// The same error, naming `path` as the file involved.
    pub(crate) fn in_file(self, path: &Path) -> Self {
        match self {
            StateError::Duplicate { name, first, second, .. } => {
                StateError::Duplicate { file: Some(path.to_path_buf()), name, first, second }
            }
            StateError::Mismatch { mismatches, .. } => {
                StateError::Mismatch { file: Some(path.to_path_buf()), mismatches }
            }
            other => other,
        }
    }
}

fn in_file(file: &Option<PathBuf>) -> String {
    file.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default()
}

fn count(mismatches: &[Mismatch]) -> String {
    match mismatches.len() {
        1 => "1 mismatch".into(),
        n => format!("{n} mismatches"),
    }
}

/// The first [`LISTED`] mismatches, then how many more there are: a file of a million
/// unexpected tensors gives a message of a few lines, not megabytes.
fn list(mismatches: &[Mismatch]) -> String {
    let shown: Vec<String> = mismatches.iter().take(LISTED).map(|m| clip(m.to_string())).collect();
    match mismatches.len().saturating_sub(LISTED) {
        0 => shown.join("; "),
        more => format!("{}; and {more} more", shown.join("; ")),
    }
}

/// An entry's bytes as safetensors wants them.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Bytes {
    fn of<F: Float>(entry: &Entry<F>) -> Bytes {
        match entry {
            Entry::Tensor(a) => {
                Bytes { dtype: dtype_of::<F>(), shape: a.shape().to_vec(), bytes: le_bytes(a) }
            }
            Entry::Count(n) => Bytes { dtype: Dtype::U64, shape: vec![], bytes: n.to_le_bytes().to_vec() },
            Entry::Number(x) => Bytes { dtype: Dtype::F64, shape: vec![], bytes: x.to_le_bytes().to_vec() },
        }
    }
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn dtype_of<F: Float>() -> Dtype {
    if F::NAME == "f32" { Dtype::F32 } else { Dtype::F64 }
}

/// The elements of `a` in row-major order as little-endian bytes of `F`'s width.
fn le_bytes<F: Float>(a: &ArrayD<F>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(a.len() * std::mem::size_of::<F>());
    for &x in a {
        if F::NAME == "f32" {
            bytes.extend_from_slice(&(x.as_f64() as f32).to_le_bytes());
        } else {
            bytes.extend_from_slice(&x.as_f64().to_le_bytes());
        }
    }
    bytes
}

fn from_le_bytes<F: Float>(b: &[u8]) -> F {
    match b.len() {
        4 => F::of(f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64),
        _ => F::of(f64::from_le_bytes(b.try_into().expect("8 bytes"))),
    }
}
