//! Verse files: [`Corpus`] reads one `reference<TAB>text` line per verse, gzipped or plain,
//! and splits the verses in file order.
//!
//! A loaded corpus holds at least one verse, each with a non-empty reference and text.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::{LimitedLines, TextLimits, tokenize_verses};
use crate::data::DataError;
use crate::data::idx::{GZIP_MAGIC, Source};
use crate::data::shorten;

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
    /// The file is read line by line within the default [`TextLimits`]
    /// (256 MiB of decompressed text, counting 64 bytes per verse): past it
    /// the load stops with [`DataError::LimitExceeded`] naming the file and
    /// the limit. Use [`Corpus::load_with`] to raise it for a larger corpus.
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
        Corpus::load_with(path, TextLimits::default())
    }

    /// Reads a corpus file like [`Corpus::load`], within `limits`: memory
    /// stays within about three times [`TextLimits::max_bytes`], whatever
    /// the file holds or expands to.
    ///
    /// ```
    /// use std::io::Write;
    /// use tapegrad::data::DataError;
    /// use tapegrad::data::text::{Corpus, TextLimits};
    /// // 100 MB of verses in a gzip stream of about 100 KB.
    /// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    /// for _ in 0..1000 {
    ///     gz.write_all(&b"a\tb\n".repeat(25_000)).unwrap();
    /// }
    /// let path = std::env::temp_dir().join(format!("corpus-bomb-doc-{}.gz", std::process::id()));
    /// std::fs::write(&path, gz.finish().unwrap()).unwrap();
    /// let limits = TextLimits::default().with_max_bytes(1 << 20);
    /// let err = Corpus::load_with(&path, limits).unwrap_err();
    /// assert!(matches!(err.root(), DataError::LimitExceeded { limit: 1_048_576, .. }));
    /// assert!(err.to_string().starts_with(&path.display().to_string()));
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn load_with(path: impl AsRef<Path>, limits: TextLimits) -> Result<Corpus, DataError> {
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
                    read_verses(BufReader::new(MultiGzDecoder::new(input)), limits)
                } else {
                    read_verses(BufReader::new(input), limits)
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
        // The text is in memory already: nothing to limit.
        read_verses(text.as_bytes(), TextLimits::default().with_max_bytes(u64::MAX))
            .map(|verses| Corpus { verses })
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

/// Reads verses line by line within `limits`. I/O errors are reported as
/// corrupt gzip data, the only kind [`Corpus::load`] does not replace by the
/// file's own error.
fn read_verses(input: impl BufRead, limits: TextLimits) -> Result<Vec<Verse>, DataError> {
    let mut input = LimitedLines::new(input, limits, "corpus text");
    let mut verses = Vec::new();
    let mut bytes = Vec::new();
    for line in 1.. {
        if !input.next_line(&mut bytes)? {
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
        input.keep()?;
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::data::text::temp_path;

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
    fn the_limit_counts_decompressed_bytes_and_verses() {
        let path = temp_path("limit.tsv");
        let text = "a\tone\n\nb\ttwo\n"; // 13 bytes, 2 verses
        let fits = 13 + 2 * TextLimits::BYTES_PER_LINE;
        let limits = TextLimits::default().with_max_bytes(fits);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        for bytes in [text.as_bytes(), gz.as_slice()] {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(Corpus::load_with(&path, limits).unwrap().len(), 2);
            let err = Corpus::load_with(&path, limits.with_max_bytes(fits - 1)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: corpus text (decompressed bytes plus 64 per line kept) goes past the limit of {} \
                     bytes: expected at most that much; raise it with TextLimits::with_max_bytes if the \
                     file is trusted",
                    path.display(),
                    fits - 1
                )
            );
        }
        // One line longer than the limit is not read whole.
        std::fs::write(&path, format!("a\t{}\n", "b".repeat(10_000))).unwrap();
        let err = Corpus::load_with(&path, TextLimits::default().with_max_bytes(100)).unwrap_err();
        assert!(matches!(err.root(), DataError::LimitExceeded { limit: 100, .. }), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
