//! Resident memory stays flat over 100,000 evaluation steps that never call `reset()`, when each
//! runs in `Tape::scope`. Alone in its file, so no other test shares the process while it reads
//! the resident set size.

use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use tapegrad::Tape;
use tapegrad::nn::{self, Activation, Init, Mlp, Module};

mod common;
use common::rss_kib;

#[test]
fn a_hundred_thousand_scoped_evaluations_keep_resident_memory_flat() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x = Array2::from_shape_fn((4, 784), |_| rng.random::<f32>());
    let labels = [3, 1, 4, 1];
    let tape = Tape::<f32>::new();
    // The README's network.
    let model = Mlp::new(&tape, &[784, 256, 128, 10], Activation::Relu, Init::He, &mut rng);
    let parameters = tape.len();
    let evaluate = || {
        tape.scope(|| {
            let _frozen = tape.no_grad();
            nn::accuracy(&model.forward(tape.constant(x.clone())).to_array(), &labels)
        })
    };
    let first = evaluate();
    let mut at_1000 = None;
    for step in 1..=100_000 {
        assert_eq!(evaluate(), first);
        if step == 1000 {
            at_1000 = rss_kib();
        }
    }
    assert_eq!(tape.len(), parameters, "only the parameters remain");
    let (Some(before), Some(after)) = (at_1000, rss_kib()) else {
        eprintln!("no /proc/self/status here: the resident set size was not measured");
        return;
    };
    println!("resident memory: {before} KiB at step 1,000, {after} KiB at step 100,000");
    assert!(after < before + 1024, "grew by {} KiB", after.saturating_sub(before));
}

#[test]
fn without_a_scope_every_evaluation_stays_on_the_tape() {
    let tape = Tape::<f32>::new();
    let w = tape.param(vec![1.0, 2.0]);
    for _ in 0..10 {
        let _frozen = tape.no_grad();
        let _ = (tape.get(w) * 2.0).sum().scalar();
    }
    assert_eq!(tape.len(), 1 + 10 * 2, "the parameter, and a product and a sum a step");
}
