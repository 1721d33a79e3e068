//! One training step (forward, backward, SGD update) of word2vec's CBOW with negative sampling,
//! f32, as example `cbow` takes it: a vocabulary of 10,000 words of dimension 100, a batch of
//! 100 windows of 10 context words, each scored against its middle word and 5 negatives.
//! `h` is the mean of the context words' rows of `W_in`, the scores are the dot products of `h`
//! with the scored words' rows of `W_out` (a batched product `[6, 100]·[100, 1]` per window),
//! the loss is their mean binary cross-entropy with logits (middle word 1, negatives 0), and
//! SGD with lr 1 updates both tables.
//!
//! - `tapegrad`: the step on the tape, with embedding lookups, whose row-sparse gradients let
//!   SGD write only the rows the batch touched (at most 1,600 of the 20,000);
//! - `hand_written`: the same step in plain Rust on ndarray, the way one would write it for
//!   speed on one thread: the touched rows read and written in place, no gradient tables;
//! - `matmul_floor`: only the step's batched products as tapegrad does them (the scores, and
//!   the gradients of `h` and of the scored rows), one small GEMM per window into preallocated
//!   outputs: what no implementation built on these GEMMs can beat.
//!
//! The batch (uniform random ids) is made outside the timed region. Before timing, one step of
//! `tapegrad` and one of `hand_written` from the same tables must agree on the loss and on the
//! updated rows, so both sides provably do the same work.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array2, Array3, ArrayD, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tapegrad::general_mat_mul;
use tapegrad::nn::{self, Embedding};
use tapegrad::optim::{Optimizer, Sgd};
use tapegrad::{Tape, Var};

const VOCAB: usize = 10_000;
const DIM: usize = 100;
const CONTEXT: usize = 10;
const BATCH: usize = 100;
const NEGATIVES: usize = 5;
/// The middle word and the negatives.
const SCORED: usize = 1 + NEGATIVES;
const LR: f32 = 1.0;

/// The context ids `[B, 10]` and the scored ids `[B, 6]` (the middle word first).
fn data() -> (ArrayD<usize>, ArrayD<usize>) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut ids = |cols: usize| ArrayD::from_shape_fn(vec![BATCH, cols], |_| rng.random_range(0..VOCAB));
    (ids(CONTEXT), ids(SCORED))
}

/// The two tables, drawn from N(0, 1) as PyTorch's `nn.Embedding`.
fn tables(tape: &Tape<f32>) -> (Embedding<f32>, Embedding<f32>) {
    let mut rng = StdRng::seed_from_u64(1);
    (Embedding::new(tape, VOCAB, DIM, &mut rng), Embedding::new(tape, VOCAB, DIM, &mut rng))
}

/// The loss on the tape, as example `cbow` writes it.
fn cbow_loss<'t>(
    tape: &'t Tape<f32>,
    (input, output): (Embedding<f32>, Embedding<f32>),
    contexts: &ArrayD<usize>,
    words: &ArrayD<usize>,
) -> Var<'t, f32> {
    let h = input.lookup(tape, contexts).mean_axes(&[1], false).reshape(&[BATCH, DIM, 1]);
    let scores = output.lookup(tape, words).matmul(h);
    let labels = Array3::from_shape_fn((BATCH, SCORED, 1), |(_, j, _)| if j == 0 { 1.0 } else { 0.0 });
    nn::binary_cross_entropy_with_logits(scores, tape.constant(labels))
}

/// One step on the tape; the loss before the update.
fn tapegrad_step(
    tape: &Tape<f32>,
    model: (Embedding<f32>, Embedding<f32>),
    opt: &mut Sgd,
    contexts: &ArrayD<usize>,
    words: &ArrayD<usize>,
) -> f32 {
    let loss = cbow_loss(tape, model, contexts, words);
    let grads = loss.backward();
    opt.step(tape, &grads);
    let value = loss.scalar();
    tape.reset();
    value
}

/// The step by hand, on its own copies of the tables, with its buffers allocated once.
struct HandWritten {
    input: Array2<f32>,
    output: Array2<f32>,
    /// `[B, D]`: each window's mean context vector.
    h: Array2<f32>,
    /// `[B, D]`: the loss's gradient with respect to `h`.
    grad_h: Array2<f32>,
}

impl HandWritten {
    fn new(input: Array2<f32>, output: Array2<f32>) -> Self {
        HandWritten { input, output, h: Array2::zeros((BATCH, DIM)), grad_h: Array2::zeros((BATCH, DIM)) }
    }

    /// One step; the loss before the update. Every gradient of `h` is taken before `W_out`
    /// moves, so the result is that of the tape, which updates after the whole backward pass.
    fn step(&mut self, contexts: &ArrayD<usize>, words: &ArrayD<usize>) -> f32 {
        let (contexts, words) = (contexts.as_slice().expect("standard"), words.as_slice().expect("standard"));
        let input = self.input.as_slice_mut().expect("owned");
        let output = self.output.as_slice_mut().expect("owned");
        let row = |table: &[f32], id: usize| -> [f32; DIM] {
            table[id * DIM..(id + 1) * DIM].try_into().expect("a row")
        };
        let n = (BATCH * SCORED) as f32;
        let mut loss = 0.0;
        // scores[b, j] becomes the loss's gradient (σ(s) − t)/n
        let mut scores = [[0.0f32; SCORED]; BATCH];
        for (b, (h, grad_h)) in self.h.outer_iter_mut().zip(self.grad_h.outer_iter_mut()).enumerate() {
            let (h, grad_h) = (h.into_slice().expect("a row"), grad_h.into_slice().expect("a row"));
            h.fill(0.0);
            for &c in &contexts[b * CONTEXT..(b + 1) * CONTEXT] {
                h.iter_mut().zip(&row(input, c)).for_each(|(h, &x)| *h += x / CONTEXT as f32);
            }
            grad_h.fill(0.0);
            for (j, &w) in words[b * SCORED..(b + 1) * SCORED].iter().enumerate() {
                let out = row(output, w);
                let s: f32 = h.iter().zip(&out).map(|(h, o)| h * o).sum();
                let t = if j == 0 { 1.0 } else { 0.0 };
                // softplus(s) − s·t, without overflow
                loss += s.max(0.0) + (-s.abs()).exp().ln_1p() - s * t;
                let g = (1.0 / (1.0 + (-s).exp()) - t) / n;
                grad_h.iter_mut().zip(&out).for_each(|(d, &o)| *d += g * o);
                scores[b][j] = g;
            }
        }
        for (b, (h, grad_h)) in self.h.outer_iter().zip(self.grad_h.outer_iter()).enumerate() {
            for (j, &w) in words[b * SCORED..(b + 1) * SCORED].iter().enumerate() {
                let step = LR * scores[b][j];
                let out = &mut output[w * DIM..(w + 1) * DIM];
                out.iter_mut().zip(h).for_each(|(o, &h)| *o -= step * h);
            }
            for &c in &contexts[b * CONTEXT..(b + 1) * CONTEXT] {
                let x = &mut input[c * DIM..(c + 1) * DIM];
                x.iter_mut().zip(grad_h).for_each(|(x, &g)| *x -= LR * g / CONTEXT as f32);
            }
        }
        loss / n
    }
}

/// The step's batched products with their operands and outputs, allocated once: per window,
/// the scores `[6, D]·[D, 1]`, the gradient of `h` `[D, 6]·[6, 1]` and that of the scored rows
/// `[6, 1]·[1, D]`. Outputs never feed back into inputs.
struct MatmulFloor {
    rows: Array3<f32>,
    h: Array3<f32>,
    scores: Array3<f32>,
    /// Stands in for the scores' gradient, of the same shape.
    grad_scores: Array3<f32>,
    grad_h: Array3<f32>,
    grad_rows: Array3<f32>,
}

impl MatmulFloor {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(2);
        let mut random = |shape: (usize, usize, usize)| Array3::from_shape_fn(shape, |_| rng.random::<f32>());
        MatmulFloor {
            rows: random((BATCH, SCORED, DIM)),
            h: random((BATCH, DIM, 1)),
            scores: random((BATCH, SCORED, 1)),
            grad_scores: random((BATCH, SCORED, 1)),
            grad_h: random((BATCH, DIM, 1)),
            grad_rows: random((BATCH, SCORED, DIM)),
        }
    }

    fn step(&mut self) {
        let m = self;
        for b in 0..BATCH {
            let (rows, h, g) = (
                m.rows.index_axis(Axis(0), b),
                m.h.index_axis(Axis(0), b),
                m.grad_scores.index_axis(Axis(0), b),
            );
            general_mat_mul(1.0, &rows, &h, 0.0, &mut m.scores.index_axis_mut(Axis(0), b));
            general_mat_mul(1.0, &rows.t(), &g, 0.0, &mut m.grad_h.index_axis_mut(Axis(0), b));
            general_mat_mul(1.0, &g, &h.t(), 0.0, &mut m.grad_rows.index_axis_mut(Axis(0), b));
        }
    }
}

/// The largest difference between `a` and `b` relative to the largest magnitude in `b`.
fn relative_difference(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    let scale = b.fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale.max(f32::MIN_POSITIVE)
}

/// One step of each from the same tables must give the same loss and the same updates. The
/// updates are about 10⁻³ of the weights, so `new − old` carries the weights' f32 rounding at
/// about 10⁻⁴ of the largest update: the tolerance allows for that, and still catches any factor
/// or sign gone wrong.
fn check_same_step(contexts: &ArrayD<usize>, words: &ArrayD<usize>) {
    const TOLERANCE: f32 = 1e-3;
    let tape = Tape::<f32>::new();
    let model = tables(&tape);
    let table = |e: Embedding<f32>| -> Array2<f32> {
        tape.get(e.weight).to_array().into_dimensionality().expect("a table [V, D]")
    };
    let before = (table(model.0), table(model.1));
    let mut hand = HandWritten::new(before.0.clone(), before.1.clone());
    let mut opt = Sgd::new(vec![model.0.weight, model.1.weight], LR as f64);
    let tape_loss = tapegrad_step(&tape, model, &mut opt, contexts, words);
    let hand_loss = hand.step(contexts, words);
    let loss_difference = (tape_loss - hand_loss).abs() / tape_loss.abs();
    assert!(
        loss_difference <= TOLERANCE,
        "cbow_step: loss {hand_loss} by hand, {tape_loss} by tapegrad (relative difference {loss_difference:e})"
    );
    let tables = [
        ("W_in", &before.0, table(model.0), &hand.input),
        ("W_out", &before.1, table(model.1), &hand.output),
    ];
    for (name, old, tape_new, hand_new) in tables {
        let updates = relative_difference(&(hand_new - old), &(&tape_new - old));
        let moved = (0..VOCAB).filter(|&r| tape_new.row(r) != old.row(r)).count();
        assert!(
            updates <= TOLERANCE && moved > 0,
            "cbow_step: {name} after one step differs between hand-written and tapegrad: updates by \
             {updates:e} (relative to the largest), expected ≤ {TOLERANCE:e}; {moved} rows moved"
        );
    }
}

fn bench(c: &mut Criterion) {
    let (contexts, words) = data();
    check_same_step(&contexts, &words);
    let mut group = c.benchmark_group("cbow_step");
    group.sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));

    let tape = Tape::<f32>::new();
    let model = tables(&tape);
    let mut opt = Sgd::new(vec![model.0.weight, model.1.weight], LR as f64);
    group.bench_function("tapegrad", |b| {
        b.iter(|| black_box(tapegrad_step(&tape, model, &mut opt, &contexts, &words)))
    });

    let initial = Tape::<f32>::new();
    let (input, output) = tables(&initial);
    let table = |p| initial.get(p).to_array().into_dimensionality().expect("a table [V, D]");
    let mut hand = HandWritten::new(table(input.weight), table(output.weight));
    group.bench_function("hand_written", |b| b.iter(|| black_box(hand.step(&contexts, &words))));

    let mut floor = MatmulFloor::new();
    group.bench_function("matmul_floor", |b| b.iter(|| floor.step()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
