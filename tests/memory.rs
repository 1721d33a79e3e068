//! Resident memory stays flat over 10,000 training steps: each step's graph is freed by
//! `reset()`, and nothing else accumulates. Alone in its file, so no other test shares the
//! process while it reads the resident set size.

use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use tapegrad::Tape;
use tapegrad::nn::{self, Activation, Init, Mlp, Module};
use tapegrad::optim::{Adam, Optimizer};

mod common;
use common::rss_kib;

#[test]
fn ten_thousand_training_steps_keep_resident_memory_flat() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x = Array2::from_shape_fn((100, 784), |_| rng.random::<f32>());
    let labels: Vec<usize> = (0..100).map(|i| i % 10).collect();
    let tape = Tape::<f32>::new();
    let model = Mlp::new(&tape, &[784, 50, 10], Activation::Sigmoid, Init::Xavier, &mut rng);
    let mut opt = Adam::new(nn::params(&model), 1e-3);
    let nodes = tape.len();
    let mut at_100 = None;
    for step in 1..=10_000 {
        let loss = nn::softmax_cross_entropy(model.forward(tape.constant(x.clone())), &labels);
        let grads = loss.backward();
        opt.step(&tape, &grads);
        tape.reset();
        if step == 100 {
            at_100 = rss_kib();
        }
    }
    assert_eq!(tape.len(), nodes, "only the parameters remain");
    let (Some(before), Some(after)) = (at_100, rss_kib()) else {
        eprintln!("no /proc/self/status here: the resident set size was not measured");
        return;
    };
    println!("resident memory: {before} KiB at step 100, {after} KiB at step 10,000");
    assert!(after < before + 1024, "grew by {} KiB", after.saturating_sub(before));
}
