//! Data sets and mini-batch loading.
//!
//! This module owns everything between files on disk and the mini-batches a
//! training loop consumes:
//!
//! - [`idx`]: a reader (and writer) for the IDX binary format used by MNIST,
//!   gzipped or raw.
//! - [`mnist`]: the MNIST digits, either the full standard files or the
//!   10,000-digit sample that ships with the repository.
//! - [`csv`]: a numeric CSV reader (quoted fields allowed) and a loader for
//!   labelled classification data such as iris.
//! - [`loader`]: [`DataLoader`], which shuffles reproducibly, batches,
//!   normalises, flattens and one-hot encodes, plus [`train_test_split`].
//! - [`text`]: word-level text: a tokenizer, a verse corpus (the King James
//!   Bible ships in `data/text/`), a vocabulary, truncated-BPTT batches for
//!   language models, CBOW windows and a negative sampler for word embeddings.
//!
//! Every fallible function returns [`DataError`]. Malformed input never
//! panics; the error says what was found and what was expected, and names the
//! file when the data came from one.

pub mod csv;
pub mod idx;
pub mod loader;
pub mod mnist;
pub mod text;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use self::csv::{LabelledDataset, parse_csv, read_csv};
pub use self::idx::{IdxArray, IdxElement, IdxType, parse_idx, read_idx};
pub use self::loader::{ClassIndices, DataLoader, Epoch, Feature, OneHot, Targets, Values, train_test_split};
pub use self::mnist::Mnist;

/// Everything that can go wrong while reading or preparing data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Opening or reading a file failed.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying operating-system error.
        error: io::Error,
    },
    /// The contents of `path` were malformed; `error` says how.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file whose contents were malformed.
        path: PathBuf,
        /// What was wrong with them.
        error: Box<DataError>,
    },
    /// The data started with the gzip magic bytes but did not decompress.
    #[error("corrupt gzip stream: {0}")]
    Gzip(io::Error),
    /// The first two bytes of an IDX header were not zero.
    #[error("bad IDX magic number {}: expected 00 00 <type code> <dimension count>", Hex(found))]
    BadMagic {
        /// The first four bytes that were found.
        found: [u8; 4],
    },
    /// The IDX type byte is not one of the known element types.
    #[error(
        "unknown IDX element type code 0x{found:02X}: expected one of 0x08 (u8), 0x09 (i8), \
         0x0B (i16), 0x0C (i32), 0x0D (f32), 0x0E (f64)"
    )]
    UnknownType {
        /// The type byte that was found.
        found: u8,
    },
    /// The input ended before `expected` bytes were available.
    #[error("truncated {what}: expected {expected} bytes, found {found}")]
    Truncated {
        /// Which part of the input was cut short.
        what: String,
        /// How many bytes that part needs.
        expected: usize,
        /// How many bytes were actually there.
        found: usize,
    },
    /// The input goes on after the size its header declares.
    ///
    /// Only one byte past the declared end is read, so the true length stays
    /// unknown: a gzip bomb is not decompressed to find it.
    #[error("trailing data after {what}: expected {expected} bytes in total, found more")]
    TrailingBytes {
        /// The part of the input that should have been the last.
        what: String,
        /// The total size implied by the header.
        expected: usize,
    },
    /// The product of the IDX dimensions does not fit in memory addresses.
    #[error("IDX dimensions {dims:?} are too large: their byte size overflows usize")]
    DimsOverflow {
        /// The dimensions read from the header.
        dims: Vec<usize>,
    },
    /// An IDX array holds a different element type than the one requested.
    #[error("IDX element type mismatch: expected {expected}, found {found}")]
    WrongType {
        /// The requested element type.
        expected: IdxType,
        /// The type actually stored.
        found: IdxType,
    },
    /// An array does not have the shape a data set requires.
    #[error("{what}: expected shape {expected}, found {found:?}")]
    Shape {
        /// Which array.
        what: String,
        /// A description of the required shape, e.g. `[n, 28, 28]`.
        expected: String,
        /// The shape that was found.
        found: Vec<usize>,
    },
    /// Two counts that must agree do not.
    #[error("{what}: expected {expected}, found {found}")]
    CountMismatch {
        /// What was being counted.
        what: String,
        /// The required count.
        expected: usize,
        /// The actual count.
        found: usize,
    },
    /// A class label is outside the valid range.
    #[error("{what}: label {label} at index {index} is out of range: expected 0..{num_classes}")]
    InvalidLabel {
        /// Which label array.
        what: String,
        /// Position of the offending label.
        index: usize,
        /// The offending label.
        label: usize,
        /// The number of classes; valid labels are `0..num_classes`.
        num_classes: usize,
    },
    /// A text field could not be parsed.
    #[error("line {line}, column {column}: expected {expected}, found {found:?}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// 1-based column (field) number.
        column: usize,
        /// What the field should have contained.
        expected: String,
        /// The field's text (shortened if very long).
        found: String,
    },
    /// A text line has the wrong number of fields.
    #[error("line {line}: expected {expected} columns, found {found}")]
    ColumnCount {
        /// 1-based line number.
        line: usize,
        /// The number of columns required.
        expected: usize,
        /// The number of columns found.
        found: usize,
    },
    /// None of the files a loader accepts exist in a directory.
    #[error("no {what} found in {}: looked for {}", dir.display(), tried.join(", "))]
    MissingFiles {
        /// What was being looked for.
        what: String,
        /// The directory searched.
        dir: PathBuf,
        /// The file names tried, in order.
        tried: Vec<String>,
    },
    /// A function argument was out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A line of a text file does not have the required form.
    #[error("line {line}: expected {expected}, found {found:?}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The form the line should have had.
        expected: String,
        /// The line's text (shortened if very long).
        found: String,
    },
    /// The input holds nothing to work with.
    #[error("{what} is empty: expected {expected}")]
    Empty {
        /// What was empty.
        what: String,
        /// What it should have held at the least.
        expected: String,
    },
    /// A file holds more than a loader's limit allows: see
    /// [`text::TextLimits`]. Nothing past the limit was read.
    #[error(
        "{what} goes past the limit of {limit} bytes: expected at most that much; raise it with \
         {setting} if the file is trusted"
    )]
    LimitExceeded {
        /// What was being read, and how it is counted.
        what: String,
        /// The limit in bytes.
        limit: u64,
        /// The setting that raises the limit.
        setting: String,
    },
    /// The input is too short for what was asked of it.
    #[error("{what}: expected at least {needed}, found {found}")]
    TooShort {
        /// What was too short, and for what.
        what: String,
        /// The smallest length that would do.
        needed: usize,
        /// The length that was found.
        found: usize,
    },
}

impl DataError {
    /// The error without any [`DataError::InFile`] wrappers around it.
    ///
    /// ```
    /// use tapegrad::data::{DataError, parse_idx};
    ///
    /// let err = parse_idx(&[0, 0, 8]).unwrap_err();
    /// let wrapped = DataError::InFile { path: "x.idx".into(), error: Box::new(err) };
    /// assert!(matches!(wrapped.root(), DataError::Truncated { found: 3, .. }));
    /// ```
    pub fn root(&self) -> &DataError {
        match self {
            DataError::InFile { error, .. } => error.root(),
            other => other,
        }
    }

    /// Wraps a content error with the path of the file it came from.
    pub(crate) fn in_file(self, path: &Path) -> DataError {
        match self {
            e @ (DataError::Io { .. } | DataError::InFile { .. }) => e,
            e => DataError::InFile { path: path.to_path_buf(), error: Box::new(e) },
        }
    }
}

/// The field, cut to at most 40 characters for error messages.
fn shorten(field: &str) -> String {
    match field.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &field[..i]),
        None => field.to_owned(),
    }
}

/// Displays bytes as space-separated hex pairs.
struct Hex<'a>(&'a [u8; 4]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a:02X} {b:02X} {c:02X} {d:02X}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_was_found_and_expected() {
        let e = DataError::BadMagic { found: [0x1F, 0x00, 0x08, 0x03] };
        assert_eq!(
            e.to_string(),
            "bad IDX magic number 1F 00 08 03: expected 00 00 <type code> <dimension count>"
        );
        let e = DataError::TrailingBytes { what: "IDX payload of [2] u8 elements".into(), expected: 10 };
        assert_eq!(
            e.to_string(),
            "trailing data after IDX payload of [2] u8 elements: expected 10 bytes in total, found more"
        );
        let e = DataError::Parse { line: 3, column: 2, expected: "a number".into(), found: "x".into() };
        let e = e.in_file(Path::new("a.csv"));
        assert_eq!(e.to_string(), "a.csv: line 3, column 2: expected a number, found \"x\"");
        assert!(matches!(e.root(), DataError::Parse { line: 3, column: 2, .. }));
        // Wrapping twice keeps the innermost path.
        assert_eq!(e.in_file(Path::new("b.csv")).to_string().matches("a.csv").count(), 1);
    }
}
