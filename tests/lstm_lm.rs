//! The LSTM language model example: the n-gram baselines have the perplexities measured on the
//! 90/5/5 verse split, a single pass of 300 truncated-BPTT chunks already takes the LSTM far
//! below the unigram model, the generated text continues the prompt with vocabulary words, the
//! curves are a real picture, and the flags parse.

#[path = "../examples/14_lstm_lm.rs"]
mod lstm_lm;

use clap::Parser;
use lstm_lm::Settings;

#[test]
fn three_hundred_chunks_take_the_lstm_far_below_the_unigram_model() {
    let out = std::env::temp_dir().join(format!("tapegrad-lstm-lm-test-{}", std::process::id()));
    let settings = Settings {
        epochs: 1,
        chunks: Some(300),
        progress: false,
        out_dir: out.clone(),
        ..Settings::default()
    };
    let report = lstm_lm::train(&settings).unwrap();

    // The baselines as measured on this split, tokenizer and 10,000-word vocabulary: a change
    // to any of them moves these figures.
    let b = report.baselines;
    let near = |got: f64, expected: f64| (got - expected).abs() < 0.05;
    assert!(near(b.unigram_valid, 375.40) && near(b.unigram_test, 356.69), "unigram {b:?}");
    assert!(near(b.bigram_valid, 160.88) && near(b.bigram_test, 141.33), "bigram {b:?}");
    assert_eq!(b.lambda, 0.72);

    // 300 chunks (a quarter of an epoch): measured 225 on the validation text, against the
    // unigram model's 375
    let epoch = report.epochs[0];
    println!("after 300 chunks: {epoch:?}, test perplexity {:.1}", report.test_perplexity);
    assert!(epoch.seconds > 0.0 && epoch.lr == 20.0, "{epoch:?}");
    assert!(epoch.valid_perplexity < 0.7 * b.unigram_valid, "{epoch:?} against {b:?}");
    assert!(report.test_perplexity < 0.7 * b.unigram_test, "{} against {b:?}", report.test_perplexity);
    assert!(report.running.len() == 3 && report.running[2].1 < report.running[0].1, "{:?}", report.running);

    let words: Vec<&str> = report.generated.split_whitespace().collect();
    println!("generated: {}", report.generated);
    assert!(report.generated.starts_with("in the beginning "), "{}", report.generated);
    assert!(words.len() >= 3 + 20 && !report.generated.contains("<unk>"), "{}", report.generated);

    let file = std::fs::File::open(out.join("lstm_lm.png")).unwrap();
    let info = png::Decoder::new(std::io::BufReader::new(file)).read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (900, 480));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn flags_choose_the_model_the_training_and_the_text() {
    let parse = |flags: &[&str]| Settings::try_parse_from(std::iter::once(&"lstm_lm").chain(flags));
    let words = |flags: &'static str| flags.split_whitespace().collect::<Vec<_>>();
    let s = parse(&words("--epochs 2 --lr 10 --clip 0.5 --batch 32 --steps 20 --chunks 100")).unwrap();
    assert_eq!((s.epochs, s.lr, s.clip, s.batch, s.steps, s.chunks), (2, 10.0, 0.5, 32, 20, Some(100)));
    let s = parse(&words("--embed 64 --hidden 128 --vocab 5000 --seed 7 --words 10 --no-progress")).unwrap();
    assert_eq!((s.embed, s.hidden, s.vocab, s.seed, s.words, s.progress), (64, 128, 5000, 7, 10, false));
    let s = parse(&["--prompt", "and god said", "--data-dir", "/tmp/kjv"]).unwrap();
    assert_eq!((s.prompt.as_str(), s.data_dir), ("and god said", std::path::PathBuf::from("/tmp/kjv")));
    let s = Settings::default();
    assert_eq!(
        (s.epochs, s.lr, s.chunks, s.progress, s.prompt.as_str()),
        (4, 20.0, None, true, "in the beginning")
    );
    let error = |flags: &'static str| parse(&words(flags)).unwrap_err().to_string();
    assert!(error("--lr").contains("a value is required for '--lr <LR>'"));
    assert!(error("--dropout 0.5").contains("unexpected argument '--dropout'"));
}
