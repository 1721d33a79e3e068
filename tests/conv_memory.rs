//! Resident memory stays flat over 1,000 training steps of SimpleConvNet: each step's graph
//! (column buffers included: the convolution keeps none past its own call) is freed by
//! `reset()`, and the recycled buffers are reused rather than piling up. Alone in its file, so
//! no other test shares the process while it reads the resident set size.

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
    let mut at_50 = None;
    for step in 1..=1_000 {
        let loss = nn::softmax_cross_entropy(model.forward(tape.constant(x.clone())), &labels);
        let grads = loss.backward();
        opt.step(&tape, &grads);
        tape.reset();
        if step == 50 {
            at_50 = rss_kib();
        }
    }
    assert_eq!(tape.len(), nodes, "only the parameters remain");
    let (Some(before), Some(after)) = (at_50, rss_kib()) else {
        eprintln!("no /proc/self/status here: the resident set size was not measured");
        return;
    };
    println!("resident memory: {before} KiB at step 50, {after} KiB at step 1,000");
    assert!(after < before + 2048, "grew by {} KiB", after.saturating_sub(before));
}
