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

mod header;

pub(crate) use header::listed;
use header::{Header, LISTED, TensorInfo, axes, clip, eight, quoted};

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
