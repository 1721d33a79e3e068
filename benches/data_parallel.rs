//! Data-parallel training on threads: 10 steps of the MLP main job (784-256-128-10 ReLU, batch
//! 64, Adam) and of SimpleConvNet (batch 100, Adam), on
//!
//! - `plain`: one worker, no communicator: the ops use every thread of the rayon pool
//!   (intra-op threading: the convolution shares images between threads);
//! - `workers_1`, `workers_2`: [`parallel::run_threads`] with 1 and 2 workers; each worker's
//!   ops run on a rayon pool of `threads / workers` threads, each worker takes its shard of
//!   every batch and the gradients are averaged across workers before each step;
//! - `apart_2`: 2 workers on their shards exactly as `workers_2`, but the gradients are never
//!   exchanged (each replica steps on its own): what two workers could give on this machine if
//!   communication cost nothing, the ceiling for `workers_2`.
//!
//! Each sample builds the replicas on fresh threads and takes 5 warm-up steps before the timed
//! passes, so the figures are a long run's steady state (thread-local buffer pools filled).
//!
//! Run with `RAYON_NUM_THREADS=1` too: then `plain` and `workers_1` use one thread, and
//! `workers_2` shows what two workers give over one. An epoch of the sample (8,000 digits) is
//! 125 MLP steps or 80 SimpleConvNet steps: 12.5× and 8× the figures here.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{ArrayD, Axis, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tapegrad::nn::{self, Activation, Conv2d, Flatten, Init, Linear, MaxPool2d, Mlp, Module, Sequential};
use tapegrad::optim::{Adam, Optimizer};
use tapegrad::parallel::{self, Communicator, Single};
use tapegrad::{ConvOptions, Tape, Window};

const STEPS: usize = 10;

/// Builds a model on a tape.
type Build = fn(&Tape<f32>) -> Sequential<f32>;

/// `STEPS` batches of `batch` inputs of `shape` (uniform [0, 1)) and labels `i % 10`.
fn batches(batch: usize, shape: &[usize]) -> Vec<(ArrayD<f32>, Vec<usize>)> {
    let mut rng = StdRng::seed_from_u64(0);
    let dims: Vec<usize> = [&[batch][..], shape].concat();
    (0..STEPS)
        .map(|_| {
            (
                ArrayD::from_shape_fn(IxDyn(&dims), |_| rng.random::<f32>()),
                (0..batch).map(|i| i % 10).collect(),
            )
        })
        .collect()
}

fn mlp(tape: &Tape<f32>) -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(1);
    Sequential::new().add("mlp", Mlp::new(tape, &[784, 256, 128, 10], Activation::Relu, Init::He, &mut rng))
}

fn simple_conv_net(tape: &Tape<f32>) -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(1);
    Sequential::new()
        .add("conv1", Conv2d::new(tape, 1, 30, (5, 5), ConvOptions::default(), Init::He, &mut rng))
        .add("relu1", Activation::Relu)
        .add("pool1", MaxPool2d(Window::pool((2, 2))))
        .add("flatten", Flatten)
        .add("fc1", Linear::new(tape, 30 * 12 * 12, 100, Init::He, &mut rng))
        .add("relu2", Activation::Relu)
        .add("fc2", Linear::new(tape, 100, 10, Init::He, &mut rng))
}

/// On one worker of `comm`: builds the replica, takes 5 warm-up steps (the buffer pools fill),
/// then times `rounds` passes over the batches; returns the time and the last loss.
fn train(
    comm: &impl Communicator,
    build: Build,
    data: &[(ArrayD<f32>, Vec<usize>)],
    rounds: u64,
    exchange: bool,
) -> (Duration, f32) {
    let tape = Tape::<f32>::new();
    let model = build(&tape);
    parallel::sync_replicas(comm, &tape, &model).unwrap();
    let params = nn::params(&model);
    let mut adam = Adam::new(params.clone(), 1e-3);
    let mut last = 0.0;
    let mut step = |x: &ArrayD<f32>, y: &[usize]| {
        let mine = parallel::shard(y.len(), comm.rank(), comm.size());
        let x = x.slice_axis(Axis(0), mine.clone().into()).to_owned();
        let loss = nn::softmax_cross_entropy(model.forward(tape.constant(x)), &y[mine.clone()]);
        let mut grads = loss.backward();
        if exchange {
            parallel::all_reduce_gradients(comm, &tape, &params, &mut grads, mine.len()).unwrap();
        }
        adam.step(&tape, &grads);
        last = loss.scalar();
        tape.reset();
    };
    for (x, y) in &data[..5] {
        step(x, y);
    }
    comm.barrier().unwrap();
    let start = Instant::now();
    for _ in 0..rounds {
        for (x, y) in data {
            step(x, y);
        }
    }
    comm.barrier().unwrap();
    (start.elapsed(), last)
}

fn data_parallel(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    let cases: [(&str, Build, usize, &[usize]); 2] =
        [("mlp", mlp, 64, &[784]), ("simple_conv_net", simple_conv_net, 100, &[1, 28, 28])];
    for (name, build, batch, shape) in cases {
        let data = batches(batch, shape);
        let mut group = c.benchmark_group(format!("data_parallel/{name}/{threads}_threads/{STEPS}_steps"));
        group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        group.bench_function("plain", |b| {
            b.iter_custom(|rounds| train(&Single, build, &data, rounds, true).0)
        });
        for (label, workers, exchange) in
            [("workers_1", 1, true), ("workers_2", 2, true), ("apart_2", 2, false)]
        {
            group.bench_function(label, |b| {
                b.iter_custom(|rounds| {
                    let times = parallel::run_threads(workers, |comm| {
                        Ok(train(&comm, build, &data, rounds, exchange).0)
                    });
                    times.unwrap().into_iter().max().expect("a worker")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, data_parallel);
criterion_main!(benches);
