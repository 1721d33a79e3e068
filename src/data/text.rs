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

use std::cmp::Reverse;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::iter::FusedIterator;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

use super::DataError;
use super::csv::shorten;
use super::idx::{GZIP_MAGIC, Source};

/// The word that stands for every word outside a [`Vocab`].
///
/// ```
/// use tapegrad::data::text::{UNK, Vocab};
/// let vocab = Vocab::from_min_count(&["amen"], 1)?;
/// assert_eq!(vocab.word(0), Some(UNK));
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub const UNK: &str = "<unk>";
/// The id of [`UNK`] in every [`Vocab`].
///
/// ```
/// use tapegrad::data::text::{UNK, UNK_ID, Vocab};
/// let vocab = Vocab::from_min_count(&["amen"], 1)?;
/// assert_eq!((vocab.id(UNK), vocab.id("selah")), (UNK_ID, UNK_ID));
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub const UNK_ID: usize = 0;

/// Splits text into lower-case word tokens and punctuation tokens.
///
/// The rules, applied character by character (`char::is_alphanumeric`,
/// `char::is_whitespace`):
///
/// - a **word** is a maximal run of letters and digits, lower-cased
///   (`char::to_lowercase`), so `"LORD"` becomes `"lord"` and `"42"` stays
///   `"42"`;
/// - an apostrophe (`'` or `’`) **between** two letters or digits belongs to
///   the word and is written `'`: `"LORD's"` is one token `"lord's"`, as is
///   `"don’t"` → `"don't"`. Any other apostrophe, such as the possessive in
///   `"Moses'"` or a quotation mark, is a punctuation token of its own;
/// - every other character that is not whitespace is a token by itself, so
///   `"--"` gives two `"-"` tokens, `"God-ward"` gives `"god"`, `"-"`,
///   `"ward"`, and `"3.5"` gives `"3"`, `"."`, `"5"`;
/// - whitespace separates tokens and is dropped.
///
/// A word therefore always starts with a letter or digit (see [`is_word`]),
/// and no token is empty or contains whitespace.
///
/// ```
/// use tapegrad::data::text::tokenize;
/// assert_eq!(
///     tokenize("And the LORD's word, (saith Moses') came--"),
///     ["and", "the", "lord's", "word", ",", "(", "saith", "moses", "'", ")", "came", "-", "-"]
/// );
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    tokenize_into(text, &mut tokens);
    tokens
}

/// Appends the tokens of `text` (see [`tokenize`]) to `tokens`.
fn tokenize_into(text: &str, tokens: &mut Vec<String>) {
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '’')
            && !word.is_empty()
            && chars.peek().is_some_and(|next| next.is_alphanumeric())
        {
            word.push('\'');
        } else {
            if !word.is_empty() {
                tokens.push(word.clone());
                word.clear();
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
}

/// Whether a token from [`tokenize`] is a word rather than punctuation: it
/// starts with a letter or digit.
///
/// ```
/// use tapegrad::data::text::{is_word, tokenize};
/// let words = tokenize("Jesus wept.").into_iter().filter(|t| is_word(t)).count();
/// assert_eq!(words, 2);
/// assert!(is_word("lord's") && !is_word("'") && !is_word(""));
/// ```
pub fn is_word(token: &str) -> bool {
    token.chars().next().is_some_and(char::is_alphanumeric)
}

/// One line of a [`Corpus`]: a reference such as `"Genesis 1:1"` and its text.
///
/// ```
/// use tapegrad::data::text::{Corpus, Verse};
/// let corpus = Corpus::parse("John 11:35\tJesus wept.\n")?;
/// assert_eq!(corpus.verses, [Verse { reference: "John 11:35".into(), text: "Jesus wept.".into() }]);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verse {
    /// Where the verse stands, e.g. `"John 11:35"`.
    pub reference: String,
    /// The verse itself, untokenized.
    pub text: String,
}

/// A text corpus of verses, in file order.
///
/// ```
/// use tapegrad::data::text::Corpus;
/// let corpus = Corpus::parse("Gen 1:1\tIn the beginning.\nGen 1:2\tAnd the earth.\n")?;
/// assert_eq!(corpus.len(), 2);
/// assert_eq!(corpus.tokens().len(), 8);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// The verses, in the order of the file's lines.
    pub verses: Vec<Verse>,
}

/// A [`Corpus`] cut in verse order by [`Corpus::split`].
///
/// ```
/// use tapegrad::data::text::Corpus;
/// let corpus = Corpus::parse("a\tone\nb\ttwo\nc\tthree\nd\tfour\n")?;
/// let split = corpus.split(0.5, 0.25)?;
/// assert_eq!(split.train.len(), 2);
/// assert_eq!((split.valid[0].text.as_str(), split.test[0].text.as_str()), ("three", "four"));
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split<'a> {
    /// The first verses.
    pub train: &'a [Verse],
    /// The verses after the training ones.
    pub valid: &'a [Verse],
    /// The remaining verses, to the end of the corpus.
    pub test: &'a [Verse],
}

impl Corpus {
    /// Reads a corpus file, gzipped or plain text.
    ///
    /// Compression is detected from the gzip magic bytes `1F 8B`, not from
    /// the file name. The text must be UTF-8 with one verse per line,
    /// `reference<TAB>text`; the reference ends at the first tab, both parts
    /// are trimmed and neither may be empty. Blank lines are skipped, `\r\n`
    /// line ends and a leading byte-order mark are accepted. A line that is
    /// not a verse is reported with its 1-based number, and a file without
    /// verses as [`DataError::Empty`]; content errors are wrapped in
    /// [`DataError::InFile`] naming the path.
    ///
    /// The file is read line by line, so memory grows with the verses kept,
    /// never with a length the file merely claims.
    ///
    /// ```
    /// use tapegrad::data::text::Corpus;
    /// let kjv = Corpus::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/text/kjv.tsv.gz"))?;
    /// assert_eq!(kjv.len(), 31_102);
    /// assert_eq!(kjv.verses[0].reference, "Genesis 1:1");
    /// assert_eq!(kjv.verses[0].text, "In the beginning God created the heaven and the earth.");
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Corpus, DataError> {
        let path = path.as_ref();
        let io_error = |error| DataError::Io { path: path.to_path_buf(), error };
        let file = File::open(path).map_err(io_error)?;
        let mut source = Source { inner: file, error: None };
        let mut magic = Vec::with_capacity(GZIP_MAGIC.len());
        let result = (&mut source)
            .take(GZIP_MAGIC.len() as u64)
            .read_to_end(&mut magic)
            .map_err(DataError::Gzip)
            .and_then(|_| {
                let input = magic.as_slice().chain(&mut source);
                if magic == GZIP_MAGIC {
                    read_verses(BufReader::new(MultiGzDecoder::new(input)))
                } else {
                    read_verses(BufReader::new(input))
                }
            });
        match source.error.take() {
            Some(error) => Err(io_error(error)),
            None => result.map(|verses| Corpus { verses }).map_err(|e| e.in_file(path)),
        }
    }

    /// Parses corpus text held in memory; see [`Corpus::load`].
    ///
    /// ```
    /// use tapegrad::data::DataError;
    /// use tapegrad::data::text::Corpus;
    /// let corpus = Corpus::parse("John 11:35\tJesus wept.\r\n\n1 Thes 5:16\tRejoice evermore.\n")?;
    /// assert_eq!(corpus.len(), 2);
    /// assert_eq!(corpus.verses[1].reference, "1 Thes 5:16");
    ///
    /// let err = Corpus::parse("John 11:35\tJesus wept.\nJohn 11:36 Then said the Jews\n").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "line 2: expected a verse `reference<TAB>text`, both non-empty, found \"John 11:36 Then said the Jews\""
    /// );
    /// assert!(matches!(Corpus::parse(" \n"), Err(DataError::Empty { .. })));
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Corpus, DataError> {
        read_verses(text.as_bytes()).map(|verses| Corpus { verses })
    }

    /// The number of verses.
    ///
    /// ```
    /// use tapegrad::data::text::Corpus;
    /// assert_eq!(Corpus::parse("a\tb\nc\td\n")?.len(), 2);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.verses.len()
    }

    /// Whether there are no verses (never true for a loaded or parsed corpus).
    ///
    /// ```
    /// use tapegrad::data::text::Corpus;
    /// assert!(!Corpus::parse("a\tb\n")?.is_empty());
    /// assert!(Corpus { verses: Vec::new() }.is_empty());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.verses.is_empty()
    }

    /// The tokens of every verse, in order; see [`tokenize_verses`].
    ///
    /// ```
    /// use tapegrad::data::text::Corpus;
    /// let corpus = Corpus::parse("J 11:35\tJesus wept.\nJ 11:36\tThen said the Jews,\n")?;
    /// assert_eq!(corpus.tokens(), ["jesus", "wept", ".", "then", "said", "the", "jews", ","]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn tokens(&self) -> Vec<String> {
        tokenize_verses(&self.verses)
    }

    /// Cuts the corpus in verse order, without shuffling: the first
    /// `round(n * train)` verses for training, the verses up to
    /// `round(n * (train + valid))` for validation, and the rest for testing.
    ///
    /// Fails unless both fractions are in `[0, 1]` and their sum is at most 1.
    ///
    /// ```
    /// use tapegrad::data::text::Corpus;
    /// let text: String = (1..=20).map(|v| format!("Ps 1:{v}\tverse {v}\n")).collect();
    /// let corpus = Corpus::parse(&text)?;
    /// let split = corpus.split(0.9, 0.05)?;
    /// assert_eq!((split.train.len(), split.valid.len(), split.test.len()), (18, 1, 1));
    /// assert_eq!(split.test[0].reference, "Ps 1:20");
    /// assert!(corpus.split(0.9, 0.2).is_err());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn split(&self, train: f64, valid: f64) -> Result<Split<'_>, DataError> {
        let fraction = 0.0..=1.0;
        // NOTE: a small tolerance lets fractions such as 0.7 + 0.3 sum to "1".
        if !fraction.contains(&train) || !fraction.contains(&valid) || train + valid > 1.0 + 1e-9 {
            return Err(DataError::InvalidArgument(format!(
                "corpus split fractions train {train} and valid {valid}: expected each in [0, 1] \
                 and train + valid <= 1"
            )));
        }
        let n = self.verses.len();
        let at = |fraction: f64| ((n as f64 * fraction).round() as usize).min(n);
        let (valid_start, test_start) = (at(train), at(train + valid));
        Ok(Split {
            train: &self.verses[..valid_start],
            valid: &self.verses[valid_start..test_start],
            test: &self.verses[test_start..],
        })
    }
}

/// The tokens of every verse's text (see [`tokenize`]), one stream in verse
/// order. No marker separates verses.
///
/// ```
/// use tapegrad::data::text::{Corpus, tokenize_verses};
/// let corpus = Corpus::parse("a 1\tAmen.\nb 2\tSelah!\nc 3\tHallelujah\n")?;
/// let split = corpus.split(0.7, 0.3)?;
/// assert_eq!(tokenize_verses(split.train), ["amen", ".", "selah", "!"]);
/// assert_eq!(tokenize_verses(split.valid), ["hallelujah"]);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn tokenize_verses(verses: &[Verse]) -> Vec<String> {
    let mut tokens = Vec::new();
    for verse in verses {
        tokenize_into(&verse.text, &mut tokens);
    }
    tokens
}

/// Reads verses line by line. I/O errors are reported as corrupt gzip data,
/// the only kind [`Corpus::load`] does not replace by the file's own error.
fn read_verses(mut input: impl BufRead) -> Result<Vec<Verse>, DataError> {
    let mut verses = Vec::new();
    let mut bytes = Vec::new();
    for line in 1.. {
        bytes.clear();
        if input.read_until(b'\n', &mut bytes).map_err(DataError::Gzip)? == 0 {
            break;
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| DataError::Line {
            line,
            expected: "UTF-8 text".into(),
            found: shorten(String::from_utf8_lossy(&bytes).trim_end_matches(['\n', '\r'])),
        })?;
        let text = if line == 1 { text.strip_prefix('\u{FEFF}').unwrap_or(text) } else { text };
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let verse = text
            .split_once('\t')
            .map(|(reference, words)| (reference.trim(), words.trim()))
            .filter(|(reference, words)| !reference.is_empty() && !words.is_empty());
        let Some((reference, words)) = verse else {
            return Err(DataError::Line {
                line,
                expected: "a verse `reference<TAB>text`, both non-empty".into(),
                found: shorten(text),
            });
        };
        verses.push(Verse { reference: reference.to_owned(), text: words.to_owned() });
    }
    if verses.is_empty() {
        return Err(DataError::Empty {
            what: "corpus".into(),
            expected: "at least one line `reference<TAB>text`".into(),
        });
    }
    Ok(verses)
}

/// A vocabulary: words with dense ids and their counts in the text it was
/// built from.
///
/// Id 0 is always [`UNK`] (`<unk>`), which stands for every word outside the
/// vocabulary; its count is the number of tokens of the text that it
/// replaced (including any literal `"<unk>"` tokens). The other words follow
/// in order of falling count, ties broken by first appearance in the text,
/// so ids are reproducible. A vocabulary always holds at least one word
/// besides `<unk>`.
///
/// ```
/// use tapegrad::data::text::{Vocab, tokenize};
/// let tokens = tokenize("In the beginning God created the heaven and the earth.");
/// let vocab = Vocab::from_top_k(&tokens, 3)?;
/// assert_eq!(vocab.decode(&[0, 1, 2])?, ["<unk>", "the", "in"]);
/// assert_eq!(vocab.counts(), [7, 3, 1]);
/// assert_eq!(vocab.encode(&tokenize("In the end")), [2, 1, 0]);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    counts: Vec<usize>,
    ids: HashMap<String, usize>,
}

impl Vocab {
    /// Builds a vocabulary of every word that occurs at least `min_count`
    /// times (`0` and `1` keep every word).
    ///
    /// Fails if `tokens` is empty, if no word reaches `min_count`, or if a
    /// token is empty or holds a tab or line break (which the vocabulary file
    /// format cannot store).
    ///
    /// ```
    /// use tapegrad::data::text::{Vocab, tokenize};
    /// let tokens = tokenize("a rose is a rose is a rose");
    /// let vocab = Vocab::from_min_count(&tokens, 2)?;
    /// assert_eq!(vocab.len(), 4); // <unk>, "a" and "rose" (3 each, "a" first), "is"
    /// assert_eq!((vocab.id("a"), vocab.id("rose"), vocab.id("is")), (1, 2, 3));
    /// assert_eq!(vocab.counts(), [0, 3, 3, 2]);
    /// assert!(Vocab::from_min_count(&tokens, 4).is_err());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn from_min_count<S: AsRef<str>>(tokens: &[S], min_count: usize) -> Result<Vocab, DataError> {
        let mut counts = WordCounts::new(tokens)?;
        let kept = counts.words.iter().take_while(|(_, count)| *count >= min_count).count();
        counts.words.truncate(kept);
        counts.into_vocab(format!("vocabulary with min_count {min_count} from {} tokens", tokens.len()))
    }

    /// Builds a vocabulary of `top_k` entries: `<unk>` and the `top_k - 1`
    /// most frequent words (fewer if the text has fewer distinct words).
    /// Among words of equal count, those that appear first in the text win.
    ///
    /// Fails if `top_k < 2`, if `tokens` is empty or holds only `<unk>`, or
    /// if a token is empty or holds a tab or line break.
    ///
    /// ```
    /// use tapegrad::data::text::{Vocab, tokenize};
    /// let tokens = tokenize("b a b c a b d");
    /// let vocab = Vocab::from_top_k(&tokens, 3)?;
    /// assert_eq!(vocab.decode(&[0, 1, 2])?, ["<unk>", "b", "a"]);
    /// assert_eq!(vocab.counts(), [2, 3, 2]); // "c" and "d" became <unk>
    /// assert_eq!(vocab.encode(&tokenize("a c")), [2, 0]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn from_top_k<S: AsRef<str>>(tokens: &[S], top_k: usize) -> Result<Vocab, DataError> {
        if top_k < 2 {
            return Err(DataError::InvalidArgument(format!(
                "vocabulary top_k must be at least 2 (<unk> and one word), got {top_k}"
            )));
        }
        let mut counts = WordCounts::new(tokens)?;
        counts.words.truncate(top_k - 1);
        counts.into_vocab(format!("vocabulary with top_k {top_k} from {} tokens", tokens.len()))
    }

    /// The id of `word`, or [`UNK_ID`] if it is not in the vocabulary.
    ///
    /// ```
    /// use tapegrad::data::text::{UNK_ID, Vocab};
    /// let vocab = Vocab::from_min_count(&["amen"], 1)?;
    /// assert_eq!(vocab.id("amen"), 1);
    /// assert_eq!(vocab.id("Amen"), UNK_ID); // words are matched exactly
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn id(&self, word: &str) -> usize {
        self.ids.get(word).copied().unwrap_or(UNK_ID)
    }

    /// The word with id `id`, or `None` if `id >= len()`.
    ///
    /// ```
    /// use tapegrad::data::text::Vocab;
    /// let vocab = Vocab::from_min_count(&["amen"], 1)?;
    /// assert_eq!((vocab.word(0), vocab.word(1), vocab.word(2)), (Some("<unk>"), Some("amen"), None));
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn word(&self, id: usize) -> Option<&str> {
        self.words.get(id).map(String::as_str)
    }

    /// The number of entries, `<unk>` included (always at least 2).
    ///
    /// ```
    /// use tapegrad::data::text::{Vocab, tokenize};
    /// assert_eq!(Vocab::from_min_count(&tokenize("to be or not to be"), 1)?.len(), 5);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always `false`: a vocabulary holds `<unk>` and at least one word.
    ///
    /// ```
    /// use tapegrad::data::text::Vocab;
    /// assert!(!Vocab::from_min_count(&["amen"], 1)?.is_empty());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The count of each id in the text the vocabulary was built from (or
    /// as read from its file); `counts()[0]` is the number of `<unk>` tokens.
    ///
    /// ```
    /// use tapegrad::data::text::{Vocab, tokenize};
    /// let vocab = Vocab::from_top_k(&tokenize("to be or not to be"), 3)?;
    /// assert_eq!(vocab.counts(), [2, 2, 2]); // "or" and "not" are <unk>
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// The id of every token (see [`Vocab::id`]).
    ///
    /// ```
    /// use tapegrad::data::text::{Vocab, tokenize};
    /// let vocab = Vocab::from_min_count(&tokenize("to be or not to be"), 2)?;
    /// assert_eq!(vocab.encode(&tokenize("not to be")), [0, 1, 2]);
    /// assert_eq!(vocab.encode(&["be", "to"]), [2, 1]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<usize> {
        tokens.iter().map(|token| self.id(token.as_ref())).collect()
    }

    /// The word of every id; fails on an id outside `0..len()`, naming its
    /// position.
    ///
    /// ```
    /// use tapegrad::data::text::{Vocab, tokenize};
    /// let vocab = Vocab::from_min_count(&tokenize("to be or not to be"), 2)?;
    /// assert_eq!(vocab.decode(&[1, 2, 0])?, ["to", "be", "<unk>"]);
    /// let err = vocab.decode(&[1, 3]).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid argument: token id 3 at position 1 is out of range: expected 0..3");
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn decode(&self, ids: &[usize]) -> Result<Vec<&str>, DataError> {
        ids.iter()
            .enumerate()
            .map(|(position, &id)| {
                self.word(id).ok_or_else(|| {
                    DataError::InvalidArgument(format!(
                        "token id {id} at position {position} is out of range: expected 0..{}",
                        self.len()
                    ))
                })
            })
            .collect()
    }

    /// Writes the vocabulary as text: one `word<TAB>count` line per id, in id
    /// order, so line 1 is `<unk>` and a word's id is its line number minus 1.
    ///
    /// ```
    /// use tapegrad::data::text::{Vocab, tokenize};
    /// let vocab = Vocab::from_min_count(&tokenize("to be or not to be"), 2)?;
    /// let path = std::env::temp_dir().join(format!("vocab-doc-{}.tsv", std::process::id()));
    /// vocab.save(&path)?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "<unk>\t2\nto\t2\nbe\t2\n");
    /// assert_eq!(Vocab::load(&path)?, vocab);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DataError> {
        let path = path.as_ref();
        let text: String =
            self.words.iter().zip(&self.counts).map(|(word, count)| format!("{word}\t{count}\n")).collect();
        std::fs::write(path, text).map_err(|error| DataError::Io { path: path.to_path_buf(), error })
    }

    /// Reads a vocabulary written by [`Vocab::save`]; see [`Vocab::parse`].
    ///
    /// ```
    /// use tapegrad::data::text::Vocab;
    /// let path = std::env::temp_dir().join(format!("vocab-load-doc-{}.tsv", std::process::id()));
    /// std::fs::write(&path, "<unk>\t0\namen\tx\n").unwrap();
    /// let err = Vocab::load(&path).unwrap_err();
    /// assert!(err.to_string().ends_with("line 2, column 2: expected a count (a whole number), found \"x\""));
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Vocab, DataError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|error| DataError::Io { path: path.to_path_buf(), error })?;
        Vocab::parse(&text).map_err(|e| e.in_file(path))
    }

    /// Parses vocabulary text: `<unk><TAB>count` on line 1, then one
    /// `word<TAB>count` line per word, each word non-empty and listed once.
    /// Counts are whole numbers and need not be sorted. `\r\n` line ends are
    /// accepted; blank lines are not, since they would shift the ids. Errors
    /// name the line.
    ///
    /// ```
    /// use tapegrad::data::text::Vocab;
    /// let vocab = Vocab::parse("<unk>\t5\nthe\t9\nand\t7\n")?;
    /// assert_eq!((vocab.id("and"), vocab.counts()[0]), (2, 5));
    ///
    /// let err = Vocab::parse("<unk>\t5\nthe\t9\nthe\t7\n").unwrap_err();
    /// assert_eq!(err.to_string(), "line 3: expected a word not listed before (\"the\" is on line 2), found \"the\\t7\"");
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Vocab, DataError> {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let mut words = Vec::new();
        let mut counts = Vec::new();
        let mut ids = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let bad_line =
                |expected: String| DataError::Line { line: number, expected, found: shorten(line) };
            let Some((word, count)) = line.split_once('\t') else {
                return Err(bad_line("`word<TAB>count`".into()));
            };
            let count = count.parse::<usize>().map_err(|_| DataError::Parse {
                line: number,
                column: 2,
                expected: "a count (a whole number)".into(),
                found: shorten(count),
            })?;
            if word.is_empty() {
                return Err(bad_line("a word before the tab".into()));
            }
            if (index == 0) != (word == UNK) {
                let expected = if index == 0 { "`<unk><TAB>count` first" } else { "a word other than <unk>" };
                return Err(bad_line(format!("{expected} (<unk> is always line 1)")));
            }
            match ids.entry(word.to_owned()) {
                Entry::Occupied(first) => {
                    let first_line = first.get() + 1;
                    return Err(bad_line(format!(
                        "a word not listed before ({word:?} is on line {first_line})"
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(index);
                }
            }
            words.push(word.to_owned());
            counts.push(count);
        }
        if words.len() < 2 {
            return Err(DataError::Empty {
                what: "vocabulary text".into(),
                expected: "`<unk><TAB>count` on line 1 and at least one `word<TAB>count` after it".into(),
            });
        }
        Ok(Vocab { words, counts, ids })
    }
}

/// The words of a token list other than `<unk>`, with their counts.
struct WordCounts<'a> {
    /// `(word, count)` by falling count, ties in order of first appearance.
    words: Vec<(&'a str, usize)>,
    /// The length of the token list.
    tokens: usize,
    /// How many tokens were literally `<unk>`.
    unk: usize,
}

impl<'a> WordCounts<'a> {
    /// Counts `tokens`; fails if there are none, or if one is empty or holds
    /// a tab or line break.
    fn new<S: AsRef<str>>(tokens: &'a [S]) -> Result<WordCounts<'a>, DataError> {
        if tokens.is_empty() {
            return Err(DataError::Empty {
                what: "token list".into(),
                expected: "at least one token to build a vocabulary from".into(),
            });
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut words: Vec<(&str, usize)> = Vec::new();
        let mut unk = 0;
        for (position, token) in tokens.iter().enumerate() {
            let token = token.as_ref();
            if token == UNK {
                unk += 1;
                continue;
            }
            match index.entry(token) {
                Entry::Occupied(slot) => words[*slot.get()].1 += 1,
                Entry::Vacant(slot) => {
                    if token.is_empty() || token.contains(['\t', '\n', '\r']) {
                        return Err(DataError::InvalidArgument(format!(
                            "token {position} is {token:?}: expected a non-empty word without tabs or line breaks"
                        )));
                    }
                    slot.insert(words.len());
                    words.push((token, 1));
                }
            }
        }
        // A stable sort keeps first-appearance order among equal counts.
        words.sort_by_key(|&(_, count)| Reverse(count));
        Ok(WordCounts { words, tokens: tokens.len(), unk })
    }

    /// The vocabulary of the words still listed; every other token becomes
    /// `<unk>`. `setting` says how it was built, for the error when no word
    /// is left.
    fn into_vocab(self, setting: String) -> Result<Vocab, DataError> {
        if self.words.is_empty() {
            let expected = if self.tokens == self.unk {
                "at least one token besides <unk> to build it from"
            } else {
                "at least one word besides <unk>"
            };
            return Err(DataError::Empty { what: setting, expected: expected.into() });
        }
        let kept: usize = self.words.iter().map(|(_, count)| count).sum();
        let mut words = Vec::with_capacity(self.words.len() + 1);
        let mut counts = Vec::with_capacity(self.words.len() + 1);
        words.push(UNK.to_owned());
        counts.push(self.tokens - kept);
        for (word, count) in self.words {
            words.push(word.to_owned());
            counts.push(count);
        }
        let ids = words.iter().enumerate().map(|(id, word)| (word.clone(), id)).collect();
        Ok(Vocab { words, counts, ids })
    }
}

/// Truncated-BPTT batches over a token-id stream, as made by
/// [`bptt_batches`]: `(inputs, targets)`, both `[batch, t]` with
/// `t <= steps`.
///
/// ```
/// use tapegrad::data::text::bptt_batches;
/// let ids: Vec<usize> = (0..100).collect();
/// let batches = bptt_batches(&ids, 4, 10)?; // 4 streams of 25
/// assert_eq!(batches.len(), 3); // steps 10, 10 and 4
/// let shapes: Vec<_> = batches.map(|(inputs, targets)| (inputs.dim(), targets.dim())).collect();
/// assert_eq!(shapes, [((4, 10), (4, 10)), ((4, 10), (4, 10)), ((4, 4), (4, 4))]);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BpttBatches<'a> {
    ids: &'a [usize],
    batch: usize,
    steps: usize,
    stream_len: usize,
    start: usize,
}

/// Cuts a token-id stream into truncated-BPTT batches, as PyTorch's
/// `word_language_model` example does, but batch-major.
///
/// The stream is cut into `batch` contiguous streams of
/// `L = ids.len() / batch` tokens (the last `ids.len() % batch` tokens are
/// dropped): stream `j` is `ids[j·L .. (j+1)·L]`. The streams are then walked
/// side by side in chunks of `steps`. The chunk starting at offset `s` is
/// `t = min(steps, L - 1 - s)` steps long, with
/// `inputs[[j, k]] = ids[j·L + s + k]` and the next token as the target,
/// `targets[[j, k]] = ids[j·L + s + k + 1]`. So every batch is
/// `[batch, steps]` except perhaps the last, which is shorter, and there are
/// `ceil((L - 1) / steps)` batches. Hidden state carried from one batch to
/// the next continues the same streams.
///
/// Fails if `batch` or `steps` is 0, or if `ids` holds fewer than
/// `2 · batch` tokens (every stream needs an input and a target).
///
/// ```
/// use ndarray::array;
/// use tapegrad::data::text::bptt_batches;
/// let ids: Vec<usize> = (0..11).collect(); // 2 streams: 0..=4 and 5..=9; 10 is dropped
/// let batches: Vec<_> = bptt_batches(&ids, 2, 3)?.collect();
/// assert_eq!(batches.len(), 2);
/// assert_eq!(batches[0].0, array![[0, 1, 2], [5, 6, 7]]);
/// assert_eq!(batches[0].1, array![[1, 2, 3], [6, 7, 8]]);
/// assert_eq!(batches[1].0, array![[3], [8]]);
/// assert_eq!(batches[1].1, array![[4], [9]]);
/// assert!(bptt_batches(&ids, 6, 3).is_err()); // 11 < 2 · 6
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn bptt_batches(ids: &[usize], batch: usize, steps: usize) -> Result<BpttBatches<'_>, DataError> {
    if batch == 0 || steps == 0 {
        return Err(DataError::InvalidArgument(format!(
            "BPTT batch size and steps must be at least 1, got batch {batch} and steps {steps}"
        )));
    }
    let needed = batch.saturating_mul(2);
    if ids.len() < needed {
        return Err(DataError::TooShort {
            what: format!("token ids for {batch} BPTT streams of at least 2 tokens each"),
            needed,
            found: ids.len(),
        });
    }
    Ok(BpttBatches { ids, batch, steps, stream_len: ids.len() / batch, start: 0 })
}

impl Iterator for BpttBatches<'_> {
    type Item = (Array2<usize>, Array2<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let remaining = (self.stream_len - 1).checked_sub(self.start).filter(|&r| r > 0)?;
        let t = self.steps.min(remaining);
        let (ids, stream_len, start) = (self.ids, self.stream_len, self.start);
        let at = |shift: usize| {
            Array2::from_shape_fn((self.batch, t), |(j, k)| ids[j * stream_len + start + k + shift])
        };
        let batch = (at(0), at(1));
        self.start += t;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.stream_len - 1).saturating_sub(self.start).div_ceil(self.steps);
        (n, Some(n))
    }
}

impl ExactSizeIterator for BpttBatches<'_> {}

impl FusedIterator for BpttBatches<'_> {}

/// CBOW training pairs: for every position with `window` tokens on each
/// side, the context `[left window…, right window…]` and the word in the
/// middle.
///
/// Returns `contexts` of shape `[n, 2·window]` and `targets` of length `n =
/// ids.len() - 2·window`: row `i` is about position `p = i + window`, with
/// `contexts[[i, k]] = ids[p - window + k]` for `k < window` and
/// `ids[p + 1 + k - window]` after, and `targets[i] = ids[p]`. Windows run
/// across verse boundaries, since `ids` is one stream.
///
/// Fails if `window` is 0 or `ids` has fewer than `2·window + 1` tokens.
///
/// ```
/// use ndarray::array;
/// use tapegrad::data::text::cbow_windows;
/// let (contexts, targets) = cbow_windows(&[10, 11, 12, 13, 14], 1)?;
/// assert_eq!(contexts, array![[10, 12], [11, 13], [12, 14]]);
/// assert_eq!(targets, [11, 12, 13]);
/// assert!(cbow_windows(&[10, 11, 12, 13, 14], 3).is_err());
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn cbow_windows(ids: &[usize], window: usize) -> Result<(Array2<usize>, Vec<usize>), DataError> {
    if window == 0 {
        return Err(DataError::InvalidArgument(
            "CBOW window must be at least 1 word on each side, got 0".into(),
        ));
    }
    if ids.len().saturating_sub(1) / 2 < window {
        return Err(DataError::TooShort {
            what: format!("token ids for CBOW windows of {window} words on each side"),
            needed: window.saturating_mul(2).saturating_add(1),
            found: ids.len(),
        });
    }
    let n = ids.len() - 2 * window;
    let contexts = Array2::from_shape_fn((n, 2 * window), |(i, k)| ids[i + k + usize::from(k >= window)]);
    Ok((contexts, ids[window..window + n].to_vec()))
}

/// Draws word ids for negative sampling as word2vec does: id `i` with
/// probability `counts[i]^0.75 / Σⱼ counts[j]^0.75`, from a seeded generator.
///
/// Sampling is O(1) per draw (Walker's alias method, via
/// `rand_distr::weighted::WeightedAliasIndex`). Ids with a count of 0 are
/// never drawn; to keep `<unk>` out of the negatives, set its count to 0.
///
/// ```
/// use tapegrad::data::text::NegativeSampler;
/// let mut sampler = NegativeSampler::new(&[0, 16, 1], 5)?;
/// let draws = sampler.sample(10_000);
/// let ones = draws.iter().filter(|&&id| id == 1).count();
/// assert!((8_700..9_100).contains(&ones)); // 16^0.75 / (16^0.75 + 1) = 8 / 9 of the draws
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug)]
pub struct NegativeSampler {
    alias: WeightedAliasIndex<f64>,
    rng: StdRng,
    only: Option<usize>,
}

impl NegativeSampler {
    /// The exponent word2vec applies to the counts.
    ///
    /// ```
    /// use tapegrad::data::text::NegativeSampler;
    /// assert!((16f64.powf(NegativeSampler::POWER) - 8.0).abs() < 1e-12);
    /// ```
    pub const POWER: f64 = 0.75;

    /// A sampler over ids `0..counts.len()`, seeded with `seed`.
    ///
    /// Fails if `counts` is empty, every count is 0, or there are more than
    /// `u32::MAX` ids.
    ///
    /// ```
    /// use tapegrad::data::text::{NegativeSampler, Vocab, tokenize};
    /// let vocab = Vocab::from_min_count(&tokenize("a a a a b c"), 1)?;
    /// let mut counts = vocab.counts().to_vec();
    /// counts[0] = 0; // no <unk> among the negatives
    /// let mut sampler = NegativeSampler::new(&counts, 7)?;
    /// let draws = sampler.sample(1000);
    /// assert!(draws.iter().all(|&id| (1..4).contains(&id)));
    /// assert!(draws.iter().filter(|&&id| id == 1).count() > 400); // 4^0.75 / (4^0.75 + 2) ≈ 0.59
    /// assert!(NegativeSampler::new(&[0, 0], 7).is_err());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn new(counts: &[usize], seed: u64) -> Result<NegativeSampler, DataError> {
        let mut positive = counts.iter().enumerate().filter(|(_, count)| **count > 0).map(|(id, _)| id);
        let Some(first) = positive.next() else {
            return Err(DataError::InvalidArgument(format!(
                "negative sampler: all {} counts are zero: expected at least one positive count",
                counts.len()
            )));
        };
        let only = if positive.next().is_none() { Some(first) } else { None };
        let weights = counts.iter().map(|&count| (count as f64).powf(Self::POWER)).collect();
        let alias = WeightedAliasIndex::new(weights).map_err(|e| {
            DataError::InvalidArgument(format!(
                "negative sampler over {} counts: {e}: expected at most {} ids",
                counts.len(),
                u32::MAX
            ))
        })?;
        Ok(NegativeSampler { alias, rng: StdRng::seed_from_u64(seed), only })
    }

    /// Draws `n` ids, independently and with replacement.
    ///
    /// ```
    /// use tapegrad::data::text::NegativeSampler;
    /// let mut sampler = NegativeSampler::new(&[0, 5, 5], 1)?;
    /// let draws = sampler.sample(100);
    /// assert_eq!(draws.len(), 100);
    /// assert!(draws.contains(&1) && draws.contains(&2) && !draws.contains(&0));
    /// // The same seed gives the same draws.
    /// assert_eq!(NegativeSampler::new(&[0, 5, 5], 1)?.sample(100), draws);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn sample(&mut self, n: usize) -> Vec<usize> {
        (&self.alias).sample_iter(&mut self.rng).take(n).collect()
    }

    /// Draws `n` ids other than `target`: each draw equal to `target` is
    /// redrawn, so the others keep their relative probabilities. A `target`
    /// that is never drawn (count 0 or out of range) changes nothing.
    ///
    /// Fails if `target` is the only id with a positive count.
    ///
    /// ```
    /// use tapegrad::data::text::NegativeSampler;
    /// let mut sampler = NegativeSampler::new(&[1, 1000, 1], 3)?;
    /// let draws = sampler.sample_excluding(1, 50)?;
    /// assert!(draws.iter().all(|&id| id == 0 || id == 2));
    /// assert!(NegativeSampler::new(&[0, 4], 3)?.sample_excluding(1, 1).is_err());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn sample_excluding(&mut self, target: usize, n: usize) -> Result<Vec<usize>, DataError> {
        if self.only == Some(target) {
            return Err(DataError::InvalidArgument(format!(
                "cannot draw negatives other than id {target}: it is the only id with a positive count"
            )));
        }
        let draws = (&self.alias).sample_iter(&mut self.rng).filter(|&id| id != target);
        Ok(draws.take(n).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use ndarray::array;

    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tapegrad-text-{name}-{}", std::process::id()))
    }

    #[test]
    fn tokenizer_handles_apostrophes_punctuation_and_case() {
        let cases: [(&str, &[&str]); 12] = [
            ("", &[]),
            (" \t\n ", &[]),
            ("The LORD's house.", &["the", "lord's", "house", "."]),
            ("Moses' rod", &["moses", "'", "rod"]),
            ("'Tis so", &["'", "tis", "so"]),
            ("sin--; and", &["sin", "-", "-", ";", "and"]),
            ("God-ward", &["god", "-", "ward"]),
            ("a''b", &["a", "'", "'", "b"]),
            ("don’t ’twas n’", &["don't", "’", "twas", "n", "’"]),
            ("3.14 x2 (42)!?", &["3", ".", "14", "x2", "(", "42", ")", "!", "?"]),
            ("ÜBER Straße ÇA", &["über", "straße", "ça"]),
            ("end...\u{a0}start", &["end", ".", ".", ".", "start"]),
        ];
        for (text, want) in cases {
            assert_eq!(tokenize(text), want, "{text:?}");
        }
        let tokens = tokenize("He said, \"Lo! the king's sons' servants...\"");
        assert_eq!(tokens.iter().filter(|t| is_word(t)).count(), 7);
        assert!(tokens.iter().all(|t| !t.is_empty() && !t.contains(char::is_whitespace)));
    }

    #[test]
    fn corpus_reads_plain_and_gzipped_files_alike() {
        let text = "\u{FEFF}Gen 1:1\tIn the beginning.\r\n\n  \nGen 1:2\t And\tthe earth. \n";
        let want = Corpus::parse(text).unwrap();
        assert_eq!(
            want.verses,
            [
                Verse { reference: "Gen 1:1".into(), text: "In the beginning.".into() },
                Verse { reference: "Gen 1:2".into(), text: "And\tthe earth.".into() },
            ]
        );
        let (plain, gz) = (temp_path("plain.tsv"), temp_path("gz.tsv"));
        std::fs::write(&plain, text).unwrap();
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        assert_eq!(Corpus::load(&plain).unwrap(), want);
        assert_eq!(Corpus::load(&gz).unwrap(), want);
        std::fs::remove_file(&plain).unwrap();
        std::fs::remove_file(&gz).unwrap();
    }

    #[test]
    fn corpus_errors_name_the_file_and_line() {
        let path = temp_path("bad.tsv");
        let cases: [(&[u8], &str); 6] = [
            (b"", "corpus is empty: expected at least one line `reference<TAB>text`"),
            (b"\n\r\n", "corpus is empty"),
            (b"a\tb\n\nno tab here\n", "line 3: expected a verse `reference<TAB>text`, both non-empty"),
            (b"a\tb\n\t text\n", "line 2: expected a verse"),
            (b"a\t \n", "line 1: expected a verse"),
            (b"a\tb\nc\td\xFF\n", "line 2: expected UTF-8 text, found \"c\\td\u{FFFD}\""),
        ];
        for (bytes, want) in cases {
            std::fs::write(&path, bytes).unwrap();
            let err = Corpus::load(&path).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with(&format!("{}: {want}", path.display())), "{bytes:?}: {message}");
        }
        // A corrupt gzip stream is reported as such.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(b"a\tb\n".repeat(100).as_slice()).unwrap();
        let mut gz = encoder.finish().unwrap();
        gz.truncate(gz.len() / 2);
        std::fs::write(&path, &gz).unwrap();
        let err = Corpus::load(&path).unwrap_err();
        assert!(matches!(err.root(), DataError::Gzip(_)), "{err}");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(Corpus::load(&path), Err(DataError::Io { .. })));
        // A directory opens but fails to read: the file's own error, not corrupt data.
        let err = Corpus::load(std::env::temp_dir()).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err}");
    }

    #[test]
    fn split_follows_verse_order_and_checks_fractions() {
        let text: String = (0..10).map(|v| format!("v {v}\tw{v}\n")).collect();
        let corpus = Corpus::parse(&text).unwrap();
        let split = corpus.split(0.6, 0.3).unwrap();
        // Train ends at round(10 · 0.6) = 6, valid at round(10 · 0.9) = 9.
        let refs = |verses: &[Verse]| verses.iter().map(|v| v.reference.clone()).collect::<Vec<_>>();
        assert_eq!(refs(split.train), ["v 0", "v 1", "v 2", "v 3", "v 4", "v 5"]);
        assert_eq!(refs(split.valid), ["v 6", "v 7", "v 8"]);
        assert_eq!(refs(split.test), ["v 9"]);
        assert_eq!(tokenize_verses(split.test), ["w9"]);
        let all = corpus.split(1.0, 0.0).unwrap();
        assert_eq!((all.train.len(), all.valid.len(), all.test.len()), (10, 0, 0));
        let sums_to_one = corpus.split(0.7, 0.3).unwrap();
        assert_eq!((sums_to_one.train.len(), sums_to_one.valid.len(), sums_to_one.test.len()), (7, 3, 0));
        for (train, valid) in
            [(-0.1, 0.0), (1.1, 0.0), (0.5, -0.5), (0.5, 0.6), (f64::NAN, 0.0), (0.0, f64::INFINITY)]
        {
            let err = corpus.split(train, valid).unwrap_err();
            assert!(err.to_string().contains("expected each in [0, 1] and train + valid <= 1"), "{err}");
        }
    }

    #[test]
    fn vocab_orders_by_count_then_first_appearance() {
        let tokens = tokenize("c b a b c d <unk> e");
        // "<" "unk" ">" are three tokens; pass a literal <unk> token too.
        let mut tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        tokens.push(UNK);
        let vocab = Vocab::from_min_count(&tokens, 1).unwrap();
        let words: Vec<&str> = (0..vocab.len()).map(|id| vocab.word(id).unwrap()).collect();
        assert_eq!(words, ["<unk>", "c", "b", "a", "d", "<", "unk", ">", "e"]);
        assert_eq!(vocab.counts(), [1, 2, 2, 1, 1, 1, 1, 1, 1]);
        assert_eq!(vocab.counts().iter().sum::<usize>(), tokens.len());

        let top = Vocab::from_top_k(&tokens, 4).unwrap();
        assert_eq!(top.decode(&[0, 1, 2, 3]).unwrap(), ["<unk>", "c", "b", "a"]);
        assert_eq!(top.counts(), [6, 2, 2, 1]);
        assert_eq!(top.encode(&["a", "e", "<unk>", "zzz", "c"]), [3, 0, 0, 0, 1]);
        assert_eq!(top.word(4), None);
        // top_k beyond the number of words keeps them all.
        assert_eq!(Vocab::from_top_k(&tokens, 100).unwrap(), vocab);

        let ids = vocab.encode(&tokens);
        assert_eq!(vocab.decode(&ids).unwrap(), tokens);
    }

    #[test]
    fn vocab_build_errors() {
        let empty: [&str; 0] = [];
        let err = Vocab::from_min_count(&empty, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token list is empty: expected at least one token to build a vocabulary from"
        );
        let err = Vocab::from_min_count(&[UNK, UNK], 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vocabulary with min_count 1 from 2 tokens is empty: expected at least one token besides <unk> \
             to build it from"
        );
        let err = Vocab::from_min_count(&["a", "b"], 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vocabulary with min_count 2 from 2 tokens is empty: expected at least one word besides <unk>"
        );
        for k in [0, 1] {
            let err = Vocab::from_top_k(&["a"], k).unwrap_err();
            assert!(err.to_string().contains("top_k must be at least 2"), "{err}");
        }
        let err = Vocab::from_min_count(&["a", "b\tc"], 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: token 1 is \"b\\tc\": expected a non-empty word without tabs or line breaks"
        );
        assert!(Vocab::from_top_k(&["a", ""], 5).is_err());
    }

    #[test]
    fn vocab_round_trips_through_its_file() {
        let vocab = Vocab::from_top_k(&tokenize("the lord's word; the word, the end"), 4).unwrap();
        let path = temp_path("vocab.tsv");
        vocab.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<unk>\t3\nthe\t3\nword\t2\nlord's\t1\n");
        let loaded = Vocab::load(&path).unwrap();
        assert_eq!(loaded, vocab);
        assert_eq!(loaded.id("lord's"), 3);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(Vocab::load(&path), Err(DataError::Io { .. })));
        // Windows line ends and unsorted counts are accepted.
        let vocab = Vocab::parse("<unk>\t0\r\nrare\t1\r\ncommon\t90\r\n").unwrap();
        assert_eq!((vocab.id("common"), vocab.counts()), (2, &[0, 1, 90][..]));
    }

    #[test]
    fn corrupt_vocab_files_name_the_line() {
        let cases: [(&str, &str); 10] = [
            ("", "vocabulary text is empty: expected `<unk><TAB>count` on line 1"),
            ("<unk>\t4\n", "vocabulary text is empty"),
            (
                "the\t4\n",
                "line 1: expected `<unk><TAB>count` first (<unk> is always line 1), found \"the\\t4\"",
            ),
            ("<unk>\t4\nthe 5\n", "line 2: expected `word<TAB>count`, found \"the 5\""),
            ("<unk>\t4\nthe\t-5\n", "line 2, column 2: expected a count (a whole number), found \"-5\""),
            ("<unk>\t4\nthe\t5\t6\n", "line 2, column 2: expected a count (a whole number), found \"5\\t6\""),
            ("<unk>\t4\n\t5\n", "line 2: expected a word before the tab, found \"\\t5\""),
            ("<unk>\t4\nthe\t5\n\nand\t3\n", "line 3: expected `word<TAB>count`, found \"\""),
            (
                "<unk>\t4\nthe\t5\n<unk>\t3\n",
                "line 3: expected a word other than <unk> (<unk> is always line 1)",
            ),
            (
                "<unk>\t4\na\t5\nb\t1\na\t3\n",
                "line 4: expected a word not listed before (\"a\" is on line 2)",
            ),
        ];
        let path = temp_path("corrupt-vocab.tsv");
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let err = Vocab::load(&path).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{}: {want}", path.display())), "{text:?}: {err}");
            assert_eq!(Vocab::parse(text).unwrap_err().to_string(), err.root().to_string());
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bptt_batches_match_the_pytorch_layout() {
        // 14 ids, 3 streams of L = 4 (ids 12 and 13 dropped): 0..4, 4..8, 8..12.
        let ids: Vec<usize> = (100..114).collect();
        let batches = bptt_batches(&ids, 3, 2).unwrap();
        assert_eq!(batches.len(), 2); // ceil((4 - 1) / 2)
        let batches: Vec<_> = batches.collect();
        assert_eq!(batches[0].0, array![[100, 101], [104, 105], [108, 109]]);
        assert_eq!(batches[0].1, array![[101, 102], [105, 106], [109, 110]]);
        assert_eq!(batches[1].0, array![[102], [106], [110]]);
        assert_eq!(batches[1].1, array![[103], [107], [111]]);

        // steps longer than the streams: one batch of L - 1 steps.
        let (inputs, targets) = bptt_batches(&ids, 2, 50).unwrap().next().unwrap();
        assert_eq!(inputs, array![[100, 101, 102, 103, 104, 105], [107, 108, 109, 110, 111, 112]]);
        assert_eq!(targets, array![[101, 102, 103, 104, 105, 106], [108, 109, 110, 111, 112, 113]]);

        // Exactly 2 tokens per stream: one batch of one step.
        let mut batches = bptt_batches(&ids[..4], 2, 3).unwrap();
        assert_eq!(batches.size_hint(), (1, Some(1)));
        assert_eq!(batches.next().unwrap(), (array![[100], [102]], array![[101], [103]]));
        assert_eq!((batches.next(), batches.len()), (None, 0));
        assert!(batches.next().is_none());

        // Every input id of the kept streams is visited once, and targets are the next ids.
        let ids: Vec<usize> = (0..1000).collect();
        let mut seen = 0;
        for (inputs, targets) in bptt_batches(&ids, 7, 10).unwrap() {
            assert_eq!(targets, &inputs + 1);
            seen += inputs.len();
        }
        assert_eq!(seen, 7 * (1000 / 7 - 1));
    }

    #[test]
    fn bptt_errors() {
        let err = bptt_batches(&[1, 2, 3], 2, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token ids for 2 BPTT streams of at least 2 tokens each: expected at least 4, found 3"
        );
        for (batch, steps) in [(0, 5), (1, 0)] {
            let err = bptt_batches(&[1, 2, 3], batch, steps).unwrap_err();
            assert!(matches!(err, DataError::InvalidArgument(_)), "{err}");
        }
        assert!(matches!(bptt_batches(&[1, 2], usize::MAX, 1), Err(DataError::TooShort { .. })));
    }

    #[test]
    fn cbow_windows_are_exact() {
        let ids = [5, 6, 7, 8, 9, 10];
        let (contexts, targets) = cbow_windows(&ids, 2).unwrap();
        assert_eq!(contexts, array![[5, 6, 8, 9], [6, 7, 9, 10]]);
        assert_eq!(targets, [7, 8]);
        let (contexts, targets) = cbow_windows(&ids[..5], 2).unwrap();
        assert_eq!(contexts, array![[5, 6, 8, 9]]);
        assert_eq!(targets, [7]);

        let err = cbow_windows(&ids, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token ids for CBOW windows of 3 words on each side: expected at least 7, found 6"
        );
        assert!(matches!(cbow_windows(&ids, 0), Err(DataError::InvalidArgument(_))));
        assert!(matches!(cbow_windows(&[], 1), Err(DataError::TooShort { needed: 3, found: 0, .. })));
        assert!(matches!(cbow_windows(&ids, usize::MAX), Err(DataError::TooShort { .. })));
    }

    #[test]
    fn sampler_frequencies_follow_counts_to_the_three_quarters() {
        let counts = [0, 100, 50, 10, 1];
        let weights = counts.map(|c| (c as f64).powf(0.75));
        let total: f64 = weights.iter().sum();
        let draws = 100_000;
        let mut sampler = NegativeSampler::new(&counts, 42).unwrap();
        let mut seen = [0usize; 5];
        sampler.sample(draws).into_iter().for_each(|id| seen[id] += 1);
        assert_eq!(seen[0], 0);
        for id in 1..5 {
            let (want, got) = (weights[id] / total, seen[id] as f64 / draws as f64);
            // 100^0.75 / Σ ≈ 0.554, 50^0.75 / Σ ≈ 0.330, 10^0.75 / Σ ≈ 0.099, 1 / Σ ≈ 0.0175.
            assert!((got - want).abs() < 0.03 * want + 0.001, "id {id}: {got} vs {want}");
        }

        // Without id 1, the others keep their relative odds.
        let mut seen = [0usize; 5];
        sampler.sample_excluding(1, draws).unwrap().into_iter().for_each(|id| seen[id] += 1);
        let rest = total - weights[1];
        assert_eq!((seen[0], seen[1]), (0, 0));
        for id in 2..5 {
            let (want, got) = (weights[id] / rest, seen[id] as f64 / draws as f64);
            assert!((got - want).abs() < 0.03 * want + 0.001, "id {id}: {got} vs {want}");
        }
    }

    #[test]
    fn sampler_is_seeded_and_checks_its_counts() {
        let draws = NegativeSampler::new(&[3, 1, 4, 1, 5], 9).unwrap().sample(50);
        assert_eq!(NegativeSampler::new(&[3, 1, 4, 1, 5], 9).unwrap().sample(50), draws);
        assert_ne!(NegativeSampler::new(&[3, 1, 4, 1, 5], 10).unwrap().sample(50), draws);
        let err = NegativeSampler::new(&[0, 0, 0], 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: negative sampler: all 3 counts are zero: expected at least one positive count"
        );
        assert!(matches!(NegativeSampler::new(&[], 1), Err(DataError::InvalidArgument(_))));
        let mut single = NegativeSampler::new(&[0, 0, 8], 1).unwrap();
        assert_eq!(single.sample(3), [2, 2, 2]);
        assert!(single.sample_excluding(2, 1).is_err());
        assert_eq!(single.sample_excluding(0, 2).unwrap(), [2, 2]);
        assert_eq!(single.sample_excluding(99, 2).unwrap(), [2, 2]);
    }
}
