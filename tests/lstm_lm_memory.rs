//! Resident memory stays flat over 1,000 truncated-BPTT chunks of the LSTM language model of
//! example `lstm_lm`, trained by its own `train_chunk`: each chunk starts from the previous
//! one's final state as constants, which cuts the history there, so `reset()` frees the whole
//! chunk. A smaller model than the example's (vocabulary 2,000, width 32, 10 streams of 20
//! steps) keeps the thousand chunks to seconds. Alone in its file, so no other test shares the
//! process while it reads the resident set size.

#[path = "../examples/14_lstm_lm.rs"]
#[allow(dead_code)]
mod lstm_lm;

mod common;
use common::rss_kib;

use rand::SeedableRng;
use tapegrad::Tape;
use tapegrad::data::text::bptt_batches;
use tapegrad::optim::Sgd;

#[test]
fn a_thousand_language_model_chunks_keep_resident_memory_flat() {
    let data = lstm_lm::load(&lstm_lm::Settings::default().data_dir, 2_000).unwrap();
    let tape = Tape::<f32>::new();
    let model = lstm_lm::Rnnlm::new(&tape, 2_000, 32, 32, &mut rand::rngs::StdRng::seed_from_u64(0));
    let mut opt = Sgd::new(model.params(), 20.0);
    let nodes = tape.len();
    let batches = bptt_batches(&data.train, 10, 20).unwrap();
    assert!(batches.len() >= 1_000);
    let (mut carried, mut at_50, mut first, mut last) = (None, None, 0.0, 0.0);
    for (chunk, (inputs, targets)) in (1..=1_000).zip(batches) {
        let loss = lstm_lm::train_chunk(&tape, &model, &mut opt, 0.25, (&inputs, &targets), &mut carried);
        assert_eq!(tape.len(), nodes, "only the parameters remain after chunk {chunk}");
        if chunk <= 50 {
            first += loss as f64 / 50.0;
        }
        if chunk > 950 {
            last += loss as f64 / 50.0;
        }
        if chunk == 50 {
            at_50 = rss_kib();
        }
    }
    // it did learn meanwhile: the state carried across chunks is a real one
    println!("mean loss over the first 50 chunks {first:.3}, over the last 50 {last:.3}");
    assert!(last < first - 1.0, "{first} → {last}");
    let (Some(before), Some(after)) = (at_50, rss_kib()) else {
        eprintln!("no /proc/self/status here: the resident set size was not measured");
        return;
    };
    println!("resident memory: {before} KiB at chunk 50, {after} KiB at chunk 1,000");
    assert!(after < before + 2048, "grew by {} KiB", after.saturating_sub(before));
}
