//! The tokenizer: text to lower-case words and punctuation marks.
//!
//! No token is empty or holds whitespace, and a word always starts with a letter or digit.

use super::Verse;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
