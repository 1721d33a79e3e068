//! What the data-parallel tests share: the models, the digits, and the same training steps run
//! as one plain loop and on one worker of a communicator.
#![allow(dead_code)]

use std::path::Path;

use ndarray::{ArrayD, Axis};
use rand::SeedableRng;
use tapegrad::data::mnist::Mnist;
use tapegrad::nn::{self, Activation, Conv2d, Flatten, Init, Linear, MaxPool2d, Mlp, Module, Sequential};
use tapegrad::optim::{Momentum, Optimizer};
use tapegrad::parallel::{self, Communicator, ParallelError};
use tapegrad::state::StateDict;
use tapegrad::{ConvOptions, Float, Tape, Window};

const STEPS: usize = 20;

/// `n` digits of the shipped sample as `[n, 1, 28, 28]` in [0, 1], and their labels.
pub fn digits<F: Float>(n: usize) -> (ArrayD<F>, Vec<usize>) {
    let mnist = Mnist::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    let x = mnist.train_images.slice_axis(Axis(0), (0..n).into()).mapv(|p| F::of(p as f64 / 255.0));
    let y = mnist.train_labels.iter().take(n).map(|&l| l as usize).collect();
    (x.into_shape_with_order((n, 1, 28, 28)).unwrap().into_dyn(), y)
}

pub fn mlp<F: Float>(tape: &Tape<F>, seed: u64) -> Sequential<F> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Sequential::new()
        .add("flatten", Flatten)
        .add("mlp", Mlp::new(tape, &[784, 50, 10], Activation::Relu, Init::He, &mut rng))
}

pub fn simple_conv_net<F: Float>(tape: &Tape<F>, seed: u64) -> Sequential<F> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Sequential::new()
        .add("conv1", Conv2d::new(tape, 1, 8, (5, 5), ConvOptions::default(), Init::He, &mut rng))
        .add("relu1", Activation::Relu)
        .add("pool1", MaxPool2d(Window::pool((2, 2))))
        .add("flatten", Flatten)
        .add("fc1", Linear::new(tape, 8 * 12 * 12, 10, Init::He, &mut rng))
}

pub type Build<F> = fn(&Tape<F>, u64) -> Sequential<F>;

/// The optimizer: momentum SGD, whose update is linear in the gradient, so the difference
/// between summation orders stays at rounding level (Adam's `m/√v` divides a near-zero
/// gradient by its own size and would amplify it).
pub fn optimizer<F: Float>(model: &Sequential<F>) -> Momentum<F> {
    Momentum::new(nn::params(model), 0.05)
}

/// `STEPS` steps of the plain loop: one tape, batches of `batch`.
pub fn plain<F: Float>(build: Build<F>, batch: usize) -> StateDict<F> {
    let (x, y) = digits::<F>(STEPS * batch);
    let tape = Tape::<F>::new();
    let model = build(&tape, 3);
    let mut opt = optimizer(&model);
    for step in 0..STEPS {
        let rows = step * batch..(step + 1) * batch;
        let xs = x.slice_axis(Axis(0), rows.clone().into()).to_owned();
        let loss = nn::softmax_cross_entropy(model.forward(tape.constant(xs)), &y[rows]);
        opt.step(&tape, &loss.backward());
        tape.reset();
    }
    nn::state_dict(&tape, &model).unwrap()
}

/// The same steps on `workers` threads.
pub fn data_parallel<F: Float>(build: Build<F>, batch: usize, workers: usize) -> Vec<StateDict<F>> {
    parallel::run_threads(workers, |comm| worker(&comm, build, batch)).unwrap()
}

/// The same steps on this worker of `comm`, the replica starting from its own seed (rank 0's
/// weights are broadcast), taking its shard of every batch.
pub fn worker<F: Float>(
    comm: &impl Communicator,
    build: Build<F>,
    batch: usize,
) -> Result<StateDict<F>, ParallelError> {
    let (x, y) = digits::<F>(STEPS * batch);
    {
        let tape = Tape::<F>::new();
        let model = build(&tape, if comm.rank() == 0 { 3 } else { 100 + comm.rank() as u64 });
        parallel::sync_replicas(comm, &tape, &model)?;
        let mut opt = optimizer(&model);
        for step in 0..STEPS {
            let mine = parallel::shard(batch, comm.rank(), comm.size());
            let rows = step * batch + mine.start..step * batch + mine.end;
            let xs = x.slice_axis(Axis(0), rows.clone().into()).to_owned();
            let loss = nn::softmax_cross_entropy(model.forward(tape.constant(xs)), &y[rows]);
            let mut grads = loss.backward();
            parallel::all_reduce_gradients(comm, &tape, &nn::params(&model), &mut grads, mine.len())?;
            opt.step(&tape, &grads);
            tape.reset();
        }
        Ok(nn::state_dict(&tape, &model)?)
    }
}
