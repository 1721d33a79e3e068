//! One training step of the word-level LSTM language model of example `lstm_lm` (the course's
//! Rnnlm), f32: vocabulary 10,000, embedding and LSTM 100, 20 streams of 35 steps. The step is
//! the example's own `train_chunk`: embedding lookup, LSTM from the previous chunk's state,
//! linear read-out `[700, 100]·[100, 10000]`, mean softmax cross-entropy, backward, the
//! gradients' norm clipped to 0.25, SGD with lr 20, `reset`.
//!
//! - `tapegrad`: that step;
//! - `matmul_floor`: only the step's matrix products, same shapes, into preallocated outputs:
//!   the read-out's three (forward, input and weight gradients), the LSTM input's share of the
//!   gates and its two gradients over the whole chunk, and per time step the recurrent product
//!   and its input gradient, with the recurrent weights' gradient as one product over the
//!   chunk. What no implementation built on these GEMMs can beat. The read-out's products are
//!   shared between threads by blocks of their result, as tapegrad shares them.
//!
//! The chunk (random ids) is made outside the timed region. Before timing, the loss of one
//! tapegrad step must match a plain ndarray forward pass from the same weights, and the step's
//! update of the read-out weights must be the hand-derived gradient `hᵀ·(softmax − onehot)/700`
//! scaled by the learning rate and the clipping factor (so the bench times real work).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use tapegrad::Tape;
use tapegrad::general_mat_mul;
use tapegrad::nn::Module;
use tapegrad::optim::Sgd;

#[path = "../examples/14_lstm_lm.rs"]
#[allow(dead_code)]
mod lstm_lm;
use lstm_lm::{Carried, Rnnlm, train_chunk};

const VOCAB: usize = 10_000;
const DIM: usize = 100;
const BATCH: usize = 20;
const STEPS: usize = 35;
const ROWS: usize = BATCH * STEPS;
const GATES: usize = 4 * DIM;
const LR: f64 = 20.0;
const CLIP: f64 = 0.25;

/// A chunk of random ids and its next-token targets.
fn chunk(seed: u64) -> (Array2<usize>, Array2<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let ids = Array2::from_shape_fn((BATCH, STEPS + 1), |_| rng.random_range(0..VOCAB));
    (ids.slice(s![.., ..STEPS]).to_owned(), ids.slice(s![.., 1..]).to_owned())
}

fn model(tape: &Tape<f32>) -> Rnnlm {
    Rnnlm::new(tape, VOCAB, DIM, DIM, &mut StdRng::seed_from_u64(1))
}

/// A matrix parameter's value.
fn matrix(tape: &Tape<f32>, p: tapegrad::Param) -> Array2<f32> {
    tape.get(p).to_array().into_dimensionality().expect("a matrix")
}

/// A vector parameter's value.
fn vector(tape: &Tape<f32>, p: tapegrad::Param) -> Array1<f32> {
    tape.get(p).to_array().into_dimensionality().expect("a vector")
}

/// The LSTM's outputs `[N·T, H]` (rows in (n, t) order) from a zero state, and the mean
/// cross-entropy of the read-out, computed with plain ndarray from the model's weights.
fn hand_forward(
    tape: &Tape<f32>,
    m: &Rnnlm,
    inputs: &Array2<usize>,
    targets: &Array2<usize>,
) -> (Array2<f32>, f32) {
    let lstm = m.lstm.parameters();
    let weight = |name: &str| lstm.iter().find(|(n, _)| n == name).expect("an LSTM parameter").1;
    let (w_ih, w_hh) = (matrix(tape, weight("weight_ih_l0")), matrix(tape, weight("weight_hh_l0")));
    let bias = vector(tape, weight("bias_ih_l0")) + vector(tape, weight("bias_hh_l0"));
    let table = matrix(tape, m.embedding.weight);
    let (mut h, mut c) = (Array2::<f32>::zeros((BATCH, DIM)), Array2::<f32>::zeros((BATCH, DIM)));
    let mut outputs = Array2::zeros((ROWS, DIM));
    let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
    for t in 0..STEPS {
        let x = Array2::from_shape_fn((BATCH, DIM), |(n, d)| table[[inputs[[n, t]], d]]);
        let z = x.dot(&w_ih.t()) + h.dot(&w_hh.t()) + &bias;
        for n in 0..BATCH {
            for d in 0..DIM {
                let (i, f) = (sigmoid(z[[n, d]]), sigmoid(z[[n, DIM + d]]));
                let (g, o) = (z[[n, 2 * DIM + d]].tanh(), sigmoid(z[[n, 3 * DIM + d]]));
                c[[n, d]] = f * c[[n, d]] + i * g;
                h[[n, d]] = o * c[[n, d]].tanh();
                outputs[[n * STEPS + t, d]] = h[[n, d]];
            }
        }
    }
    let logits = outputs.dot(&matrix(tape, m.head.weight)) + &vector(tape, m.head.bias);
    let mut loss = 0.0f64;
    for (row, &target) in logits.outer_iter().zip(targets) {
        let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        loss += sum.ln() + (max - row[target]) as f64;
    }
    (outputs, (loss / ROWS as f64) as f32)
}

/// One tapegrad step from fresh weights must have the hand-computed loss, and must move the
/// read-out weights by `−α·hᵀ·(softmax − onehot)/700` with `α` the learning rate, or with the
/// clipping's smaller `α` when every parameter's update together has norm `lr·clip`.
fn check_step(inputs: &Array2<usize>, targets: &Array2<usize>) {
    let tape = Tape::<f32>::new();
    let m = model(&tape);
    let before: Vec<Array1<f32>> =
        m.params().iter().map(|&p| tape.get(p).to_array().iter().copied().collect()).collect();
    let (outputs, hand_loss) = hand_forward(&tape, &m, inputs, targets);
    let w = matrix(&tape, m.head.weight);
    let mut grad_logits = outputs.dot(&w) + &vector(&tape, m.head.bias);
    for (mut row, &target) in grad_logits.outer_iter_mut().zip(targets) {
        let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum / ROWS as f32);
        row[target] -= 1.0 / ROWS as f32;
    }
    let grad_w = outputs.t().dot(&grad_logits);

    let mut opt = Sgd::new(m.params(), LR);
    let loss = train_chunk(&tape, &m, &mut opt, CLIP, (inputs, targets), &mut None);
    assert!(
        (loss - hand_loss).abs() <= 1e-4 * hand_loss,
        "lstm_step: loss {loss} by tapegrad, {hand_loss} by hand"
    );
    let update = &w - &matrix(&tape, m.head.weight);
    // the step's factor: least squares of update = α·grad_w
    let alpha = (&update * &grad_w).sum() / (&grad_w * &grad_w).sum();
    let residual = (&update - &(&grad_w * alpha)).fold(0.0f32, |a, v| a.max(v.abs()));
    let largest = update.fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(residual <= 1e-3 * largest, "lstm_step: the read-out's update is not along its gradient");
    let moved: f64 = m
        .params()
        .iter()
        .zip(&before)
        .map(|(&p, old)| {
            tape.get(p).to_array().iter().zip(old).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum::<f64>()
        })
        .sum::<f64>()
        .sqrt();
    let unclipped = (alpha as f64 - LR).abs() <= 1e-3 * LR;
    let clipped = alpha as f64 <= LR && (moved - LR * CLIP).abs() <= 1e-3 * LR * CLIP;
    assert!(unclipped || clipped, "lstm_step: factor {alpha} and total update norm {moved}");
}

/// The step's matrix products with their operands and outputs, allocated once. Outputs never
/// feed back into inputs, so the values stay fixed from step to step.
struct MatmulFloor {
    /// The chunk's word vectors `[700, 100]`; also stands in for the inputs' gradient.
    words: Array2<f32>,
    w_ih: Array2<f32>,
    w_hh: Array2<f32>,
    /// The gates `[700, 400]`, input share; also their gradient.
    gates: Array2<f32>,
    /// One step's state `[20, 100]` and gates `[20, 400]`, and the state's gradient.
    h: Array2<f32>,
    step_gates: Array2<f32>,
    grad_h: Array2<f32>,
    /// The LSTM's outputs `[700, 100]`, also the previous states and their gradient.
    outputs: Array2<f32>,
    grad_outputs: Array2<f32>,
    head: Array2<f32>,
    /// `[700, 10000]`, also the logits' gradient.
    logits: Array2<f32>,
    grad_head: Array2<f32>,
    grad_w_ih: Array2<f32>,
    grad_w_hh: Array2<f32>,
}

impl MatmulFloor {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(2);
        let mut random =
            |rows: usize, cols: usize| Array2::from_shape_fn((rows, cols), |_| rng.random::<f32>());
        MatmulFloor {
            words: random(ROWS, DIM),
            w_ih: random(GATES, DIM),
            w_hh: random(GATES, DIM),
            gates: random(ROWS, GATES),
            h: random(BATCH, DIM),
            step_gates: random(BATCH, GATES),
            grad_h: random(BATCH, DIM),
            outputs: random(ROWS, DIM),
            grad_outputs: random(ROWS, DIM),
            head: random(DIM, VOCAB),
            logits: random(ROWS, VOCAB),
            grad_head: random(DIM, VOCAB),
            grad_w_ih: random(GATES, DIM),
            grad_w_hh: random(GATES, DIM),
        }
    }

    fn step(&mut self) {
        let m = self;
        general_mat_mul(1.0, &m.words, &m.w_ih.t(), 0.0, &mut m.gates); // [700,100]·[100,400]
        for _ in 0..STEPS {
            general_mat_mul(1.0, &m.h, &m.w_hh.t(), 0.0, &mut m.step_gates); // [20,100]·[100,400]
        }
        shared(m.outputs.view(), m.head.view(), m.logits.view_mut()); // [700,100]·[100,10000]
        shared(m.logits.view(), m.head.t(), m.grad_outputs.view_mut()); // [700,10000]·[10000,100]
        shared(m.outputs.t(), m.logits.view(), m.grad_head.view_mut()); // [100,700]·[700,10000]
        for _ in 0..STEPS {
            general_mat_mul(1.0, &m.step_gates, &m.w_hh, 0.0, &mut m.grad_h); // [20,400]·[400,100]
        }
        general_mat_mul(1.0, &m.gates.t(), &m.outputs, 0.0, &mut m.grad_w_hh); // [400,700]·[700,100]
        general_mat_mul(1.0, &m.gates, &m.w_ih, 0.0, &mut m.words); // [700,400]·[400,100]
        general_mat_mul(1.0, &m.gates.t(), &m.words, 0.0, &mut m.grad_w_ih); // [400,700]·[700,100]
    }
}

/// `c = a·b` with the larger side of `c` cut into one block per thread, as tapegrad shares its
/// large products (the read-out's three).
fn shared(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    let threads = rayon::current_num_threads();
    if c.nrows() >= c.ncols() {
        let block = c.nrows().div_ceil(threads).next_multiple_of(16);
        let blocks: Vec<_> =
            a.axis_chunks_iter(Axis(0), block).zip(c.axis_chunks_iter_mut(Axis(0), block)).collect();
        blocks.into_par_iter().for_each(|(a, mut c)| general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    } else {
        let block = c.ncols().div_ceil(threads).next_multiple_of(16);
        let blocks: Vec<_> =
            b.axis_chunks_iter(Axis(1), block).zip(c.axis_chunks_iter_mut(Axis(1), block)).collect();
        blocks.into_par_iter().for_each(|(b, mut c)| general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    }
}

fn bench(c: &mut Criterion) {
    let (inputs, targets) = chunk(0);
    check_step(&inputs, &targets);
    let mut group = c.benchmark_group("lstm_step");
    // A step takes tens of milliseconds; 20 samples keep the whole run under a minute.
    group.sample_size(20).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(10));

    let tape = Tape::<f32>::new();
    let m = model(&tape);
    let mut opt = Sgd::new(m.params(), LR);
    let mut carried: Option<Carried> = None;
    group.bench_function("tapegrad", |b| {
        b.iter_batched(
            || (inputs.clone(), targets.clone()),
            |(x, y)| black_box(train_chunk(&tape, &m, &mut opt, CLIP, (&x, &y), &mut carried)),
            BatchSize::LargeInput,
        )
    });

    let mut floor = MatmulFloor::new();
    group.bench_function("matmul_floor", |b| b.iter(|| floor.step()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
