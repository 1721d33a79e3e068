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

pub use self::batches::{BpttBatches, bptt_batches, cbow_windows};
pub use self::corpus::{Corpus, Split, Verse};
pub use self::sampler::NegativeSampler;
pub use self::tokens::{is_word, tokenize, tokenize_verses};
pub use self::vocab::{UNK, UNK_ID, Vocab};

/// A path in the temporary directory for a test's file, unique to this process.
#[cfg(test)]
fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tapegrad-text-{name}-{}", std::process::id()))
}
