//! Data-parallel training on threads: 2 workers at global batch B end with the parameters of
//! one plain training loop at batch B (no communicator at all), for the MLP and SimpleConvNet,
//! in f32 and f64; and a failing, mismatched or early-returning worker gives an error naming its
//! rank instead of a hang.

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
fn digits<F: Float>(n: usize) -> (ArrayD<F>, Vec<usize>) {
    let mnist = Mnist::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    let x = mnist.train_images.slice_axis(Axis(0), (0..n).into()).mapv(|p| F::of(p as f64 / 255.0));
    let y = mnist.train_labels.iter().take(n).map(|&l| l as usize).collect();
    (x.into_shape_with_order((n, 1, 28, 28)).unwrap().into_dyn(), y)
}

fn mlp<F: Float>(tape: &Tape<F>, seed: u64) -> Sequential<F> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Sequential::new()
        .add("flatten", Flatten)
        .add("mlp", Mlp::new(tape, &[784, 50, 10], Activation::Relu, Init::He, &mut rng))
}

fn simple_conv_net<F: Float>(tape: &Tape<F>, seed: u64) -> Sequential<F> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Sequential::new()
        .add("conv1", Conv2d::new(tape, 1, 8, (5, 5), ConvOptions::default(), Init::He, &mut rng))
        .add("relu1", Activation::Relu)
        .add("pool1", MaxPool2d(Window::pool((2, 2))))
        .add("flatten", Flatten)
        .add("fc1", Linear::new(tape, 8 * 12 * 12, 10, Init::He, &mut rng))
}

type Build<F> = fn(&Tape<F>, u64) -> Sequential<F>;

/// The optimizer: momentum SGD, whose update is linear in the gradient, so the difference
/// between summation orders stays at rounding level (Adam's `m/√v` divides a near-zero
/// gradient by its own size and would amplify it).
fn optimizer<F: Float>(model: &Sequential<F>) -> Momentum<F> {
    Momentum::new(nn::params(model), 0.05)
}

/// `STEPS` steps of the plain loop: one tape, batches of `batch`.
fn plain<F: Float>(build: Build<F>, batch: usize) -> StateDict<F> {
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

/// The same steps on `workers` threads, each replica starting from its own seed (rank 0's
/// weights are broadcast), each taking its shard of every batch.
fn data_parallel<F: Float>(build: Build<F>, batch: usize, workers: usize) -> Vec<StateDict<F>> {
    let (x, y) = digits::<F>(STEPS * batch);
    parallel::run_threads(workers, |comm| {
        let tape = Tape::<F>::new();
        let model = build(&tape, if comm.rank() == 0 { 3 } else { 100 + comm.rank() as u64 });
        parallel::sync_replicas(&comm, &tape, &model)?;
        let mut opt = optimizer(&model);
        for step in 0..STEPS {
            let mine = parallel::shard(batch, comm.rank(), comm.size());
            let rows = step * batch + mine.start..step * batch + mine.end;
            let xs = x.slice_axis(Axis(0), rows.clone().into()).to_owned();
            let loss = nn::softmax_cross_entropy(model.forward(tape.constant(xs)), &y[rows]);
            let mut grads = loss.backward();
            parallel::all_reduce_gradients(&comm, &tape, &nn::params(&model), &mut grads, mine.len())?;
            opt.step(&tape, &grads);
            tape.reset();
        }
        Ok(nn::state_dict(&tape, &model)?)
    })
    .unwrap()
}

/// The largest difference between two states relative to the largest magnitude of each tensor.
fn relative_difference<F: Float>(a: &StateDict<F>, b: &StateDict<F>) -> f64 {
    assert_eq!(a.names(), b.names());
    a.names()
        .into_iter()
        .map(|name| {
            let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
            let scale = x.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
            x.iter().zip(y).fold(0.0f64, |m, (p, q)| m.max((p.as_f64() - q.as_f64()).abs() / scale))
        })
        .fold(0.0, f64::max)
}

fn check<F: Float>(build: Build<F>, batch: usize, tolerance: f64) {
    let one = plain(build, batch);
    let replicas = data_parallel(build, batch, 2);
    assert_eq!(replicas[0], replicas[1], "the replicas are identical, bit for bit");
    let difference = relative_difference(&one, &replicas[0]);
    println!("{} batch {batch}: relative difference {difference:.2e}", F::NAME);
    assert!(difference < tolerance, "{difference:e}");
    // the steps moved the weights well beyond the tolerance: the comparison is not of untouched ones
    let tape = Tape::<F>::new();
    let initial = nn::state_dict(&tape, &build(&tape, 3)).unwrap();
    assert!(relative_difference(&one, &initial) > 1e-2);
}

#[test]
fn two_workers_match_one_plain_loop_for_the_mlp() {
    check::<f32>(mlp, 64, 1e-6);
    check::<f64>(mlp, 64, 1e-12);
    // an odd batch: shards of 33 and 32, weighted by their sizes
    check::<f64>(mlp, 65, 1e-12);
}

#[test]
fn two_workers_match_one_plain_loop_for_simple_conv_net() {
    check::<f32>(simple_conv_net, 32, 1e-6);
    check::<f64>(simple_conv_net, 32, 1e-12);
}

#[test]
fn the_thread_all_reduce_adds_in_rank_order_and_agrees_everywhere() {
    let out = parallel::run_threads(3, |comm| {
        // 1e16 + 1 − 1e16: the order of addition decides the answer
        let mut x = [[1e16, 1.0, -1e16][comm.rank()]];
        comm.all_reduce_sum(&mut x)?;
        let mut b = [comm.rank() as f32 + 10.0; 2];
        comm.broadcast(&mut b, 2)?;
        Ok((x[0], b))
    })
    .unwrap();
    assert_eq!(out, vec![(((1e16 + 1.0) - 1e16), [12.0, 12.0]); 3]);
}

#[test]
fn a_worker_that_panics_or_fails_is_named_and_nobody_hangs() {
    let panicked = parallel::run_threads(2, |comm| {
        let mut x = [1.0f64];
        comm.all_reduce_sum(&mut x)?;
        if comm.rank() == 1 {
            panic!("the data ran out on this worker");
        }
        comm.all_reduce_sum(&mut x)?;
        Ok(())
    });
    assert_eq!(panicked.unwrap_err().to_string(), "worker 1 failed: the data ran out on this worker");

    let failed = parallel::run_threads(3, |comm| {
        if comm.rank() == 2 {
            return Err(ParallelError::Worker { rank: 2, message: "cannot read batch 7".into() });
        }
        comm.barrier()?;
        Ok(())
    });
    assert_eq!(failed.unwrap_err().to_string(), "worker 2 failed: cannot read batch 7");

    let early = parallel::run_threads(2, |comm| {
        if comm.rank() == 0 {
            comm.barrier()?;
        }
        Ok(())
    });
    assert_eq!(
        early.unwrap_err().to_string(),
        "worker 0 stopped in barrier: worker 1 returned without joining it"
    );

    let lengths = parallel::run_threads(2, |comm| {
        let mut x = vec![0.0f32; 3 + comm.rank()];
        comm.all_reduce_sum(&mut x)?;
        Ok(())
    });
    let e = lengths.unwrap_err().to_string();
    assert!(e.contains("all_reduce_sum with 3 values, but worker 1 passed 4"), "{e}");
}

#[test]
fn replicas_with_other_names_or_shapes_are_refused_at_the_start() {
    let e = parallel::run_threads(2, |comm| {
        let tape = Tape::<f32>::new();
        let sizes: &[usize] = if comm.rank() == 1 { &[4, 6, 2] } else { &[4, 5, 2] };
        let model =
            Mlp::new(&tape, sizes, Activation::Relu, Init::He, &mut rand::rngs::StdRng::seed_from_u64(1));
        parallel::sync_replicas(&comm, &tape, &model)?;
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "worker 1's model differs from worker 0's: \"fc1.bias\" is f32 [6], expected f32 [5]; \"fc1.weight\" \
         is f32 [4, 6], expected f32 [4, 5]; \"fc2.weight\" is f32 [6, 2], expected f32 [5, 2]"
    );
    let synced = parallel::run_threads(2, |comm| {
        let tape = Tape::<f64>::new();
        let model = Mlp::new(
            &tape,
            &[3, 2],
            Activation::Relu,
            Init::He,
            &mut rand::rngs::StdRng::seed_from_u64(comm.rank() as u64),
        );
        parallel::sync_replicas(&comm, &tape, &model)?;
        Ok(nn::state_dict(&tape, &model)?)
    })
    .unwrap();
    assert_eq!(synced[0], synced[1], "rank 0's weights everywhere");
}
