//! The vocabulary: words with dense ids, `<unk>` always at id 0, and its text file.
//!
//! A vocabulary of `n` entries uses exactly the ids `0..n` and holds at least one word besides
//! `<unk>`.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{LimitedLines, TextLimits};
use crate::data::DataError;
use crate::data::idx::Source;
use crate::data::shorten;

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
    /// The file is read line by line within the default [`TextLimits`];
    /// [`Vocab::load_with`] sets others.
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
        Vocab::load_with(path, TextLimits::default())
    }

    /// Reads a vocabulary file like [`Vocab::load`], stopping with
    /// [`DataError::LimitExceeded`] once the file holds more than `limits`
    /// allow (its bytes plus [`TextLimits::BYTES_PER_LINE`] per word).
    ///
    /// ```
    /// use tapegrad::data::DataError;
    /// use tapegrad::data::text::{TextLimits, Vocab};
    /// let path = std::env::temp_dir().join(format!("vocab-limit-doc-{}.tsv", std::process::id()));
    /// std::fs::write(&path, "<unk>\t0\namen\t3\n").unwrap();
    /// assert_eq!(Vocab::load_with(&path, TextLimits::default())?.len(), 2);
    /// let err = Vocab::load_with(&path, TextLimits::default().with_max_bytes(100)).unwrap_err();
    /// assert!(matches!(err.root(), DataError::LimitExceeded { limit: 100, .. }), "{err}");
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn load_with(path: impl AsRef<Path>, limits: TextLimits) -> Result<Vocab, DataError> {
        let path = path.as_ref();
        let io_error = |error| DataError::Io { path: path.to_path_buf(), error };
        let file = File::open(path).map_err(io_error)?;
        let mut source = Source { inner: file, error: None };
        let result = read_vocab(BufReader::new(&mut source), limits);
        match source.error.take() {
            Some(error) => Err(io_error(error)),
            None => result.map_err(|e| e.in_file(path)),
        }
    }

    /// Parses vocabulary text: `<unk><TAB>count` on line 1, then one
    /// `word<TAB>count` line per word, each word non-empty and listed once.
    /// Counts are whole numbers and need not be sorted, but together they may
    /// not pass [`Vocab::MAX_TOTAL_COUNT`]. `\r\n` line ends are accepted;
    /// blank lines are not, since they would shift the ids. Errors name the
    /// line.
    ///
    /// ```
    /// use tapegrad::data::text::Vocab;
    /// let vocab = Vocab::parse("<unk>\t5\nthe\t9\nand\t7\n")?;
    /// assert_eq!((vocab.id("and"), vocab.counts()[0]), (2, 5));
    ///
    /// let err = Vocab::parse("<unk>\t5\nthe\t9\nthe\t7\n").unwrap_err();
    /// assert_eq!(err.to_string(), "line 3: expected a word not listed before (\"the\" is on line 2), found \"the\\t7\"");
    /// let err = Vocab::parse("<unk>\t0\nthe\t18446744073709551615\n").unwrap_err();
    /// assert!(err.to_string().starts_with("line 2, column 2: expected a count that keeps the total"), "{err}");
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Vocab, DataError> {
        // The text is in memory already: nothing to limit.
        read_vocab(text.as_bytes(), TextLimits::default().with_max_bytes(u64::MAX))
    }

    /// The most the counts of a vocabulary may add up to: 2^53, the largest
    /// whole number up to which every count and their total are exact as the
    /// `f64`s [`NegativeSampler`](super::NegativeSampler) weighs them with. A
    /// text would need some 9 × 10^15 tokens to reach it.
    ///
    /// ```
    /// use tapegrad::data::text::Vocab;
    /// assert!(Vocab::parse(&format!("<unk>\t0\na\t{}\n", Vocab::MAX_TOTAL_COUNT)).is_ok());
    /// assert!(Vocab::parse(&format!("<unk>\t1\na\t{}\n", Vocab::MAX_TOTAL_COUNT)).is_err());
    /// ```
    pub const MAX_TOTAL_COUNT: usize = 1 << 53;
}

/// Reads vocabulary lines within `limits`; see [`Vocab::parse`]. I/O errors
/// are reported as [`DataError::Gzip`], which [`Vocab::load_with`] replaces by
/// the file's own error.
fn read_vocab(input: impl BufRead, limits: TextLimits) -> Result<Vocab, DataError> {
    let mut input = LimitedLines::new(input, limits, "vocabulary text");
    let mut words = Vec::new();
    let mut counts = Vec::new();
    let mut ids = HashMap::new();
    let mut total = 0usize;
    let mut bytes = Vec::new();
    for index in 0.. {
        if !input.next_line(&mut bytes)? {
            break;
        }
        let number = index + 1;
        let line = std::str::from_utf8(&bytes).map_err(|_| DataError::Line {
            line: number,
            expected: "UTF-8 text".into(),
            found: shorten(String::from_utf8_lossy(&bytes).trim_end_matches(['\n', '\r'])),
        })?;
        let line = if index == 0 { line.strip_prefix('\u{FEFF}').unwrap_or(line) } else { line };
        let line = line.strip_suffix('\n').map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
        let bad_line = |expected: String| DataError::Line { line: number, expected, found: shorten(line) };
        let Some((word, count)) = line.split_once('\t') else {
            return Err(bad_line("`word<TAB>count`".into()));
        };
        let bad_count = |expected: &str| DataError::Parse {
            line: number,
            column: 2,
            expected: expected.into(),
            found: shorten(count),
        };
        let count = count.parse::<usize>().map_err(|_| bad_count("a count (a whole number)"))?;
        total = total.checked_add(count).filter(|&t| t <= Vocab::MAX_TOTAL_COUNT).ok_or_else(|| {
            bad_count(&format!(
                "a count that keeps the total of the counts at most 2^53 = {} (the counts before it add up to {total})",
                Vocab::MAX_TOTAL_COUNT
            ))
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
                return Err(bad_line(format!("a word not listed before ({word:?} is on line {first_line})")));
            }
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
        input.keep()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::text::{temp_path, tokenize};

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
    fn counts_must_add_up_to_at_most_two_to_the_53() {
        // 2^64 − 1 for one word: once accepted, and it hung the negative sampler.
        let err = Vocab::parse("<unk>\t0\nthe\t18446744073709551615\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 2: expected a count that keeps the total of the counts at most 2^53 = \
             9007199254740992 (the counts before it add up to 0), found \"18446744073709551615\""
        );
        // A total that overflows usize, from counts that are each in range.
        let half = usize::MAX / 2 + 1;
        assert!(Vocab::parse(&format!("<unk>\t{half}\na\t{half}\n")).is_err());
        let top = Vocab::MAX_TOTAL_COUNT;
        let vocab = Vocab::parse(&format!("<unk>\t1\na\t{}\n", top - 1)).unwrap();
        assert_eq!(vocab.counts(), [1, top - 1]);
        assert!(Vocab::parse(&format!("<unk>\t2\na\t{}\n", top - 1)).is_err());
    }

    #[test]
    fn vocab_files_are_read_within_the_limit() {
        let path = temp_path("limit-vocab.tsv");
        std::fs::write(&path, "<unk>\t0\namen\t3\n").unwrap(); // 15 bytes, 2 entries
        let fits = 15 + 2 * TextLimits::BYTES_PER_LINE;
        assert_eq!(Vocab::load_with(&path, TextLimits::default().with_max_bytes(fits)).unwrap().len(), 2);
        let err = Vocab::load_with(&path, TextLimits::default().with_max_bytes(fits - 1)).unwrap_err();
        assert!(err.to_string().starts_with(&format!("{}: vocabulary text", path.display())), "{err}");
        assert!(matches!(err.root(), DataError::LimitExceeded { .. }), "{err}");
        // Invalid UTF-8 names the line; a directory is the file's own error.
        std::fs::write(&path, b"<unk>\t0\nam\xFFen\t3\n").unwrap();
        let err = Vocab::load(&path).unwrap_err();
        assert!(err.to_string().contains("line 2: expected UTF-8 text"), "{err}");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(Vocab::load(std::env::temp_dir()), Err(DataError::Io { .. })));
    }
}
