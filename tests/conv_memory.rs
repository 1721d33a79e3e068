//! Resident memory stays flat over 1,000 training steps of SimpleConvNet: each step's graph
//! (column buffers included: the convolution keeps none past its own call) is freed by
//! `reset()`, and the recycled buffers are reused rather than piling up. Alone in its file, so
//! no other test shares the process while it reads the resident set size.
//!
//! The first few hundred steps fill the per-thread buffer pools and the allocator's heap (its
//! trimming threshold is raised, see `src/pool.rs`): measured, 39 MiB at step 50, then 40 MiB
//! unchanged from step 400 to step 1,000. So flat means: no growth from step 400 to step 1,000,
//! and the plateau below 128 MiB.

use ndarray::Array4;
use rand::{RngExt, SeedableRng};
use tapegrad::nn::{self, Activation, Conv2d, Flatten, Init, Linear, MaxPool2d, Module, Sequential};
use tapegrad::optim::{Adam, Optimizer};
use tapegrad::{ConvOptions, Tape, Window};

mod common;
use common::rss_kib;

#[test]
fn a_thousand_cnn_training_steps_keep_resident_memory_flat() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x = Array4::from_shape_fn((50, 1, 28, 28), |_| rng.random::<f32>());
    let labels: Vec<usize> = (0..50).map(|i| i % 10).collect();
    let tape = Tape::<f32>::new();
    let model = Sequential::new()
        .add("conv1", Conv2d::new(&tape, 1, 30, (5, 5), ConvOptions::default(), Init::He, &mut rng))
        .add("relu1", Activation::Relu)
        .add("pool1", MaxPool2d(Window::pool((2, 2))))
        .add("flatten", Flatten)
        .add("fc1", Linear::new(&tape, 4320, 100, Init::He, &mut rng))
        .add("relu2", Activation::Relu)
        .add("fc2", Linear::new(&tape, 100, 10, Init::He, &mut rng));
    let mut opt = Adam::new(nn::params(&model), 1e-3);
    let nodes = tape.len();
    let (mut at_50, mut at_400) = (None, None);
    for step in 1..=1_000 {
        let loss = nn::softmax_cross_entropy(model.forward(tape.constant(x.clone())), &labels);
        let grads = loss.backward();
        opt.step(&tape, &grads);
        tape.reset();
        if step == 50 {
            at_50 = rss_kib();
        }
        if step == 400 {
            at_400 = rss_kib();
        }
    }
    assert_eq!(tape.len(), nodes, "only the parameters remain");
    let (Some(early), Some(before), Some(after)) = (at_50, at_400, rss_kib()) else {
        eprintln!("no /proc/self/status here: the resident set size was not measured");
        return;
    };
    println!("resident memory: {early} KiB at step 50, {before} KiB at step 400, {after} KiB at step 1,000");
    assert!(after < before + 2048, "grew by {} KiB after step 400", after.saturating_sub(before));
    assert!(after < 128 * 1024, "{after} KiB");
}
