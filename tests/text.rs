//! The King James Bible shipped in `data/text/`: its known counts, and the whole text pipeline
//! (split, vocabulary, BPTT batches, CBOW windows, negative samples) run on it.

use std::collections::HashSet;
use std::sync::OnceLock;

use tapegrad::data::text::{
    Corpus, NegativeSampler, UNK, Vocab, bptt_batches, cbow_windows, is_word, tokenize_verses,
};

const KJV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/text/kjv.tsv.gz");

/// The corpus and its tokens, read once for all tests.
fn kjv() -> &'static (Corpus, Vec<String>) {
    static KJV_TOKENS: OnceLock<(Corpus, Vec<String>)> = OnceLock::new();
    KJV_TOKENS.get_or_init(|| {
        let corpus = Corpus::load(KJV).unwrap();
        let tokens = corpus.tokens();
        (corpus, tokens)
    })
}

#[test]
fn the_corpus_has_the_known_verses_and_words() {
    let (corpus, tokens) = kjv();
    assert_eq!(corpus.len(), 31_102);
    assert_eq!(corpus.verses[0].reference, "Genesis 1:1");
    assert_eq!(corpus.verses[31_101].reference, "Revelation 22:21");
    assert_eq!(corpus.verses[31_101].text, "The grace of our Lord Jesus Christ be with you all. Amen.");

    let words: Vec<&str> = tokens.iter().map(String::as_str).filter(|t| is_word(t)).collect();
    let distinct: HashSet<&str> = words.iter().copied().collect();
    assert_eq!(tokens.len(), 913_708);
    assert_eq!(words.len(), 789_684);
    assert_eq!(distinct.len(), 12_762);
    let punctuation = |mark: &str| tokens.iter().filter(|t| *t == mark).count();
    assert_eq!(
        [",", ".", ":", ";", "?", "'", "-"].map(punctuation),
        [70_683, 26_145, 12_721, 10_139, 3_297, 231, 53]
    );

    // The usual count (791,450 words, 12,544 distinct) takes every run of letters as a word. The
    // tokenizer keeps "lord's" whole instead: 1,766 apostrophes join two runs each, which adds
    // 223 possessive forms and removes 5 pieces that never stand alone ("s", "barber", "fisher",
    // "nachon", "stomach").
    let runs: Vec<String> = corpus
        .verses
        .iter()
        .flat_map(|v| v.text.split(|c: char| !c.is_ascii_alphabetic()).filter(|r| !r.is_empty()))
        .map(str::to_lowercase)
        .collect();
    assert_eq!(runs.len(), 791_450);
    assert_eq!(runs.iter().collect::<HashSet<_>>().len(), 12_544);
    let joined = words.iter().filter(|w| w.contains('\'')).count();
    assert_eq!(runs.len() - words.len(), joined);
    assert_eq!(joined, 1_766);
    assert_eq!(distinct.iter().filter(|w| w.contains('\'')).count(), 223);
    assert_eq!(distinct.len(), 12_544 + 223 - 5);
}

#[test]
fn a_ten_thousand_word_vocabulary_round_trips() {
    let (_, tokens) = kjv();
    let vocab = Vocab::from_top_k(tokens, 10_000).unwrap();
    assert_eq!(vocab.len(), 10_000);
    assert_eq!(vocab.decode(&[0, 1, 2, 3, 4, 5]).unwrap(), [UNK, ",", "the", "and", "of", "."]);
    assert_eq!(vocab.counts()[..6], [2_773, 70_683, 63_919, 51_696, 34_618, 26_145]);
    // 12,772 distinct tokens (words and punctuation); the 2,773 rarest, each seen once, are <unk>.
    assert_eq!(Vocab::from_min_count(tokens, 1).unwrap().len(), 12_773);
    assert_eq!(vocab.counts()[9_999], 1);
    assert_eq!(vocab.counts().iter().sum::<usize>(), tokens.len());
    assert_ne!(vocab.id("lord's"), 0); // a kept word
    assert_eq!(vocab.word(vocab.id("jesus")), Some("jesus"));

    let path = std::env::temp_dir().join(format!("tapegrad-kjv-vocab-{}.tsv", std::process::id()));
    vocab.save(&path).unwrap();
    assert_eq!(Vocab::load(&path).unwrap(), vocab);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_pipeline_runs_on_the_training_split() {
    let (corpus, _) = kjv();
    let split = corpus.split(0.9, 0.05).unwrap();
    assert_eq!((split.train.len(), split.valid.len(), split.test.len()), (27_992, 1_555, 1_555));
    assert_eq!(split.valid[0].reference, "Romans 3:1");
    assert_eq!(split.test[0].reference, "Colossians 4:5");
    let train = tokenize_verses(split.train);
    assert_eq!(train.len(), 831_667);

    let vocab = Vocab::from_top_k(&train, 10_000).unwrap();
    let ids = vocab.encode(&train);
    let valid_ids = vocab.encode(&tokenize_verses(split.valid));
    assert_eq!(valid_ids.len(), 38_920);
    assert!(valid_ids.iter().all(|&id| id < vocab.len()));

    // 20 streams of 41,583 tokens (7 dropped), walked 35 steps at a time.
    let batches = bptt_batches(&ids, 20, 35).unwrap();
    assert_eq!(batches.len(), 1_189); // ceil(41,582 / 35)
    let batches: Vec<_> = batches.collect();
    let (inputs, targets) = &batches[0];
    assert_eq!(inputs.dim(), (20, 35));
    assert_eq!(inputs.row(0).to_vec(), ids[..35]);
    assert_eq!(targets.row(1).to_vec(), ids[41_584..41_619]);
    let (last_inputs, last_targets) = batches.last().unwrap();
    assert_eq!(last_inputs.dim(), (20, 2)); // 41,582 = 1,188 · 35 + 2
    assert_eq!(last_targets[[19, 1]], ids[20 * 41_583 - 1]);

    let (contexts, targets) = cbow_windows(&ids[..1_000], 2).unwrap();
    assert_eq!(contexts.dim(), (996, 4));
    assert_eq!(vocab.decode(contexts.row(0).as_slice().unwrap()).unwrap(), ["in", "the", "god", "created"]);
    assert_eq!(vocab.word(targets[0]), Some("beginning"));

    let mut counts = vocab.counts().to_vec();
    counts[0] = 0;
    let mut sampler = NegativeSampler::new(&counts, 1).unwrap();
    let target = vocab.id("the");
    let negatives = sampler.sample_excluding(target, 10_000).unwrap();
    assert!(negatives.iter().all(|&id| id != 0 && id != target && id < vocab.len()));
    // "," is the most frequent token left: drawn with probability count(",")^0.75 / Σ count^0.75 over
    // the ids other than <unk> and "the", about 2.9%.
    let weight = |id: usize| (counts[id] as f64).powf(0.75);
    let want = weight(vocab.id(",")) / ((0..counts.len()).map(weight).sum::<f64>() - weight(target));
    assert!((want - 0.029).abs() < 0.001, "{want}");
    let got = negatives.iter().filter(|&&id| id == vocab.id(",")).count() as f64 / negatives.len() as f64;
    assert!((got - want).abs() < 0.1 * want, "{got} vs {want}");
}
