//! Word-level text for language models and word embeddings.
//!
//! This module owns the way from a text file to the integer batches a model
//! trains on:
//!
//! - [`tokenize`] splits text into lower-case words and punctuation marks;
//! - [`Corpus`] reads a file of verses, one `reference<TAB>text` per line
//!   (the King James Bible ships as `data/text/kjv.tsv.gz`), and splits it
//!   in verse order;
//! - [`Vocab`] maps words to ids, with `<unk>` always at id 0;
//! - [`bptt_batches`] cuts an id stream into truncated-BPTT batches for a
//!   recurrent language model, [`cbow_windows`] into (context, word) pairs
//!   for CBOW embeddings, and [`NegativeSampler`] draws word2vec's negative
//!   samples.
//!
//! Ids are always dense: a vocabulary of `n` entries uses exactly `0..n`.
//!
//! Files may come from anywhere: [`Corpus::load`] and [`Vocab::load`] stop
//! with an error once a file holds more than [`TextLimits`] allows, so a
//! small gzip stream that expands to gigabytes costs at most a few times the
//! limit in memory.
//!
//! ```
//! use tapegrad::data::text::{Corpus, Vocab, bptt_batches, tokenize_verses};
//!
//! let corpus = Corpus::parse("Gen 1:1\tIn the beginning.\nGen 1:2\tAnd the end.\n")?;
//! let tokens = tokenize_verses(&corpus.verses);
//! assert_eq!(tokens, ["in", "the", "beginning", ".", "and", "the", "end", "."]);
//! let vocab = Vocab::from_min_count(&tokens, 2)?;
//! let ids = vocab.encode(&tokens);
//! assert_eq!(ids, [0, 1, 0, 2, 0, 1, 0, 2]); // <unk> = 0, "the" = 1, "." = 2
//! let (inputs, targets) = bptt_batches(&ids, 2, 3)?.next().unwrap();
//! assert_eq!(inputs, ndarray::array![[0, 1, 0], [0, 1, 0]]);
//! assert_eq!(targets, ndarray::array![[1, 0, 2], [1, 0, 2]]);
//! # Ok::<(), tapegrad::data::DataError>(())
//! ```

mod batches;
mod corpus;
mod sampler;
mod tokens;
mod vocab;

use std::io::{BufRead, Read};

pub use self::batches::{BpttBatches, bptt_batches, cbow_windows};
pub use self::corpus::{Corpus, Split, Verse};
pub use self::sampler::NegativeSampler;
pub use self::tokens::{is_word, tokenize, tokenize_verses};
pub use self::vocab::{UNK, UNK_ID, Vocab};
use crate::data::DataError;

/// How much of a text file a loader may read: [`Corpus::load_with`] and
/// [`Vocab::load_with`] take it, [`Corpus::load`] and [`Vocab::load`] use the
/// default.
///
/// The limit counts the bytes of the file after decompression, plus
/// [`TextLimits::BYTES_PER_LINE`] for each verse or vocabulary entry kept
/// (what a [`Verse`] or a word's entry takes in memory beyond its text). A load
/// that would go past it stops with [`DataError::LimitExceeded`], which names
/// the file and the limit, so the memory a load holds stays within about three
/// times the limit, whatever the file claims or expands to. The default,
/// [`TextLimits::DEFAULT_MAX_BYTES`] (256 MiB), is some 40 times what the King
/// James Bible shipped in `data/text/` counts; raise it for larger trusted
/// corpora.
///
/// ```
/// use tapegrad::data::DataError;
/// use tapegrad::data::text::{Corpus, TextLimits};
/// let kjv = concat!(env!("CARGO_MANIFEST_DIR"), "/data/text/kjv.tsv.gz");
/// let limits = TextLimits::default();
/// assert_eq!(limits.max_bytes(), TextLimits::DEFAULT_MAX_BYTES);
/// assert_eq!(Corpus::load_with(kjv, limits)?.len(), 31_102);
///
/// let err = Corpus::load_with(kjv, TextLimits::default().with_max_bytes(1_000_000)).unwrap_err();
/// assert!(matches!(err.root(), DataError::LimitExceeded { limit: 1_000_000, .. }));
/// assert!(err.to_string().contains("TextLimits::with_max_bytes"), "{err}");
/// # Ok::<(), DataError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextLimits {
    max_bytes: u64,
}

impl TextLimits {
    /// The default limit: 256 MiB.
    ///
    /// ```
    /// assert_eq!(tapegrad::data::text::TextLimits::DEFAULT_MAX_BYTES, 1 << 28);
    /// ```
    pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

    /// What each kept verse or vocabulary entry counts against the limit on
    /// top of its bytes in the file.
    ///
    /// ```
    /// use tapegrad::data::text::{Corpus, TextLimits};
    /// // 8 bytes of text and one verse: 8 + 64 bytes.
    /// let path = std::env::temp_dir().join(format!("limits-doc-{}.tsv", std::process::id()));
    /// std::fs::write(&path, "a\tverse\n").unwrap();
    /// let exact = TextLimits::default().with_max_bytes(8 + TextLimits::BYTES_PER_LINE);
    /// assert!(Corpus::load_with(&path, exact).is_ok());
    /// assert!(Corpus::load_with(&path, exact.with_max_bytes(8 + TextLimits::BYTES_PER_LINE - 1)).is_err());
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub const BYTES_PER_LINE: u64 = 64;

    /// The limit in bytes.
    ///
    /// ```
    /// use tapegrad::data::text::TextLimits;
    /// assert_eq!(TextLimits::default().with_max_bytes(4096).max_bytes(), 4096);
    /// ```
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The same limits with `max_bytes` as the limit in bytes (`u64::MAX`
    /// for no limit).
    ///
    /// ```
    /// use tapegrad::data::text::{Corpus, TextLimits};
    /// let kjv = concat!(env!("CARGO_MANIFEST_DIR"), "/data/text/kjv.tsv.gz");
    /// let generous = TextLimits::default().with_max_bytes(4 << 30);
    /// assert_eq!(Corpus::load_with(kjv, generous)?.len(), 31_102);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn with_max_bytes(self, max_bytes: u64) -> TextLimits {
        TextLimits { max_bytes }
    }
}

impl Default for TextLimits {
    fn default() -> Self {
        TextLimits { max_bytes: Self::DEFAULT_MAX_BYTES }
    }
}

/// Reads lines from a text file within a [`TextLimits`], charging each line's
/// bytes as they arrive and [`TextLimits::BYTES_PER_LINE`] for each line kept.
struct LimitedLines<R> {
    input: R,
    limits: TextLimits,
    charged: u64,
    /// What the file holds, for the error: `"corpus text"`, `"vocabulary text"`.
    what: &'static str,
}

impl<R: BufRead> LimitedLines<R> {
    fn new(input: R, limits: TextLimits, what: &'static str) -> Self {
        LimitedLines { input, limits, charged: 0, what }
    }

    /// Reads the next line, its end included, into `bytes` (cleared first);
    /// `Ok(false)` at the end of the input. Never reads more than the limit
    /// leaves plus one byte.
    fn next_line(&mut self, bytes: &mut Vec<u8>) -> Result<bool, DataError> {
        bytes.clear();
        let left = self.limits.max_bytes - self.charged;
        let mut line = Read::take(&mut self.input, left.saturating_add(1));
        let read = line.read_until(b'\n', bytes).map_err(DataError::Gzip)?;
        self.charge(read as u64)?;
        Ok(read > 0)
    }

    /// Counts a kept line.
    fn keep(&mut self) -> Result<(), DataError> {
        self.charge(TextLimits::BYTES_PER_LINE)
    }

    fn charge(&mut self, bytes: u64) -> Result<(), DataError> {
        match self.charged.checked_add(bytes).filter(|&n| n <= self.limits.max_bytes) {
            Some(n) => {
                self.charged = n;
                Ok(())
            }
            None => Err(DataError::LimitExceeded {
                what: format!(
                    "{} (decompressed bytes plus {} per line kept)",
                    self.what,
                    TextLimits::BYTES_PER_LINE
                ),
                limit: self.limits.max_bytes,
                setting: "TextLimits::with_max_bytes".into(),
            }),
        }
    }
}

/// A path in the temporary directory for a test's file, unique to this process.
#[cfg(test)]
fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tapegrad-text-{name}-{}", std::process::id()))
}
