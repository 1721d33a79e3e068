//! One training step (forward, backward, SGD update) of the textbook's SimpleConvNet, f32,
//! batch 100: conv 30×5×5 (stride 1, no padding, bias) → ReLU → 2×2 max pool → flatten (4320)
//! → linear 4320→100 → ReLU → linear 100→10 → mean softmax cross-entropy, SGD with lr 0.1.
//!
//! - `tapegrad`: the network as a `Sequential` of the crate's layers, stepped as in `train_step`;
//! - `hand_written`: the same network in plain ndarray with gradients written out, the way one
//!   would write it for speed on one thread: im2col, one GEMM for the convolution, bias, ReLU
//!   and pooling fused in one pass, buffers reused across steps;
//! - `matmul_floor`: only the step's eight matrix products, same shapes, into preallocated
//!   outputs: what no implementation built on these GEMMs can beat.
//!
//! The batch (uniform [0, 1) pixels, labels `i % 10`) is made outside the timed region. Before
//! timing, one step of `tapegrad` and one of `hand_written` from the same weights must agree on
//! the loss and on every updated parameter, so both sides provably do the same work.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ndarray::{Array1, Array2, Array4, ArrayD, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tapegrad::general_mat_mul;
use tapegrad::nn::{self, Activation, Conv2d, Flatten, Init, Linear, MaxPool2d, Module, Sequential};
use tapegrad::optim::{Optimizer, Sgd};
use tapegrad::{ConvOptions, Tape, Window};

const BATCH: usize = 100;
const SIDE: usize = 28;
const KERNEL: usize = 5;
const TAPS: usize = KERNEL * KERNEL;
const FILTERS: usize = 30;
/// The convolution's output side, 28 − 5 + 1.
const CONV_SIDE: usize = SIDE - KERNEL + 1;
const POSITIONS: usize = CONV_SIDE * CONV_SIDE;
/// The pooled side, 24 / 2.
const POOL_SIDE: usize = CONV_SIDE / 2;
const FEATURES: usize = FILTERS * POOL_SIDE * POOL_SIDE;
const HIDDEN: usize = 100;
const CLASSES: usize = 10;
const LR: f32 = 0.1;

fn data() -> (Array4<f32>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(0);
    let x = Array4::from_shape_fn((BATCH, 1, SIDE, SIDE), |_| rng.random::<f32>());
    let labels = (0..BATCH).map(|i| i % CLASSES).collect();
    (x, labels)
}

fn simple_conv_net(tape: &Tape<f32>) -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(1);
    Sequential::new()
        .add(
            "conv1",
            Conv2d::new(tape, 1, FILTERS, (KERNEL, KERNEL), ConvOptions::default(), Init::He, &mut rng),
        )
        .add("relu1", Activation::Relu)
        .add("pool1", MaxPool2d(Window::pool((2, 2))))
        .add("flatten", Flatten)
        .add("fc1", Linear::new(tape, FEATURES, HIDDEN, Init::He, &mut rng))
        .add("relu2", Activation::Relu)
        .add("fc2", Linear::new(tape, HIDDEN, CLASSES, Init::He, &mut rng))
}

/// One step on the tape, exactly as `train_step` writes it; the loss before the update.
fn tapegrad_step(
    tape: &Tape<f32>,
    model: &Sequential<f32>,
    opt: &mut Sgd,
    x: Array4<f32>,
    labels: &[usize],
) -> f32 {
    let loss = nn::softmax_cross_entropy(model.forward(tape.constant(x)), labels);
    let grads = loss.backward();
    opt.step(tape, &grads);
    let value = loss.scalar();
    tape.reset();
    value
}

/// The parameters of the hand-written network, in its own layouts.
#[derive(Clone)]
struct Parameters {
    /// `[30, 25]`: PyTorch's `[30, 1, 5, 5]` with the `(c, kh, kw)` taps merged.
    conv_weight: Array2<f32>,
    conv_bias: Array1<f32>,
    /// `(inputs, outputs)`, as tapegrad's `Linear`: `y = x·W + b`.
    fc1_weight: Array2<f32>,
    fc1_bias: Array1<f32>,
    fc2_weight: Array2<f32>,
    fc2_bias: Array1<f32>,
}

impl Parameters {
    /// The current values of the tapegrad model's parameters.
    fn of(tape: &Tape<f32>, model: &Sequential<f32>) -> Self {
        let value = |name: &str| -> ArrayD<f32> {
            let (_, param) = model.parameters().into_iter().find(|(n, _)| n == name).expect("parameter name");
            tape.get(param).to_array()
        };
        let matrix = |name: &str, rows: usize, cols: usize| {
            value(name).into_shape_with_order((rows, cols)).expect("parameter shape")
        };
        let vector = |name: &str| value(name).into_dimensionality().expect("1-D bias");
        Parameters {
            conv_weight: matrix("conv1.weight", FILTERS, TAPS),
            conv_bias: vector("conv1.bias"),
            fc1_weight: matrix("fc1.weight", FEATURES, HIDDEN),
            fc1_bias: vector("fc1.bias"),
            fc2_weight: matrix("fc2.weight", HIDDEN, CLASSES),
            fc2_bias: vector("fc2.bias"),
        }
    }

    /// Each parameter as a matrix (a bias as one column), under the tapegrad model's name.
    fn named(&self) -> [(&'static str, ArrayView2<'_, f32>); 6] {
        fn column(b: &Array1<f32>) -> ArrayView2<'_, f32> {
            b.view().insert_axis(Axis(1))
        }
        [
            ("conv1.weight", self.conv_weight.view()),
            ("conv1.bias", column(&self.conv_bias)),
            ("fc1.weight", self.fc1_weight.view()),
            ("fc1.bias", column(&self.fc1_bias)),
            ("fc2.weight", self.fc2_weight.view()),
            ("fc2.bias", column(&self.fc2_bias)),
        ]
    }
}

/// The network by hand: parameters, and every activation and gradient buffer allocated once.
struct HandWritten {
    p: Parameters,
    /// `[N·24·24, 25]`: one row per output position (image, oh, ow), one column per tap.
    columns: Array2<f32>,
    /// `[N·24·24, 30]`: the convolution before bias (channels last, as the GEMM leaves it);
    /// reused in backward for the gradient at the same place.
    conv: Array2<f32>,
    /// `[N, 4320]` in (c, h, w) order, as tapegrad's `Flatten` (and PyTorch's) leaves it, so
    /// that `fc1_weight`'s rows mean the same features on both sides.
    pooled: Array2<f32>,
    /// For each window, in (image, py, px, c) order, which of its four positions (row-major)
    /// held the maximum, or [`CUT`].
    winners: Vec<u32>,
    hidden: Array2<f32>,
    logits: Array2<f32>,
    grad_hidden: Array2<f32>,
    grad_pooled: Array2<f32>,
    grad_conv_weight: Array2<f32>,
}

impl HandWritten {
    fn new(p: Parameters) -> Self {
        HandWritten {
            p,
            columns: Array2::zeros((BATCH * POSITIONS, TAPS)),
            conv: Array2::zeros((BATCH * POSITIONS, FILTERS)),
            pooled: Array2::zeros((BATCH, FEATURES)),
            winners: vec![0; BATCH * FEATURES],
            hidden: Array2::zeros((BATCH, HIDDEN)),
            logits: Array2::zeros((BATCH, CLASSES)),
            grad_hidden: Array2::zeros((BATCH, HIDDEN)),
            grad_pooled: Array2::zeros((BATCH, FEATURES)),
            grad_conv_weight: Array2::zeros((FILTERS, TAPS)),
        }
    }

    /// One step; the loss before the update.
    fn step(&mut self, x: Array4<f32>, labels: &[usize]) -> f32 {
        im2col(x.as_slice().expect("standard layout"), self.columns.as_slice_mut().expect("owned"));
        general_mat_mul(1.0, &self.columns, &self.p.conv_weight.t(), 0.0, &mut self.conv);
        self.bias_relu_pool();
        general_mat_mul(1.0, &self.pooled, &self.p.fc1_weight, 0.0, &mut self.hidden);
        self.hidden
            .zip_mut_with(&self.p.fc1_bias.view().insert_axis(Axis(0)), |h, &b| *h = (*h + b).max(0.0));
        general_mat_mul(1.0, &self.hidden, &self.p.fc2_weight, 0.0, &mut self.logits);
        self.logits += &self.p.fc2_bias;
        let loss = softmax_cross_entropy_gradient(&mut self.logits, labels);
        self.backward();
        loss
    }

    /// `pooled = maxpool(relu(conv + bias))`, read once. ReLU and the bias are monotonic, so the
    /// window's maximum is found on the raw GEMM output and the two applied to that one value.
    fn bias_relu_pool(&mut self) {
        let conv = self.conv.as_slice().expect("owned");
        let pooled = self.pooled.as_slice_mut().expect("owned");
        let bias: &[f32; FILTERS] =
            self.p.conv_bias.as_slice().expect("owned").try_into().expect("a bias per filter");
        let mut winners = self.winners.chunks_exact_mut(FILTERS);
        for image in 0..BATCH {
            let out = &mut pooled[image * FEATURES..(image + 1) * FEATURES];
            for py in 0..POOL_SIDE {
                for px in 0..POOL_SIDE {
                    let rows = window(image, py, px).map(|at| &conv[at..at + FILTERS]);
                    // All channels at once with `max` and arithmetic in place of `if`: the loops
                    // vectorise, and random data costs no branch mispredictions.
                    let mut best: [f32; FILTERS] = rows[0].try_into().expect("one row");
                    let mut which = [0u32; FILTERS];
                    for (k, row) in (1u32..).zip(&rows[1..]) {
                        for ((b, w), &v) in best.iter_mut().zip(&mut which).zip(*row) {
                            // NOTE: `>` keeps the first of tied maxima, as tapegrad's pooling does.
                            let larger = u32::from(v > *b);
                            *w = larger * k + (1 - larger) * *w;
                            *b = b.max(v);
                        }
                    }
                    for ((b, w), &shift) in best.iter_mut().zip(&mut which).zip(bias) {
                        let through = u32::from(*b + shift > 0.0);
                        *w = through * *w + (1 - through) * CUT;
                        *b = (*b + shift).max(0.0);
                    }
                    winners.next().expect("one per window").copy_from_slice(&which);
                    for (c, &b) in best.iter().enumerate() {
                        out[(c * POOL_SIDE + py) * POOL_SIDE + px] = b;
                    }
                }
            }
        }
    }

    /// Backward from the logits' gradient, updating each parameter once its gradient is
    /// known and its old value no longer needed.
    fn backward(&mut self) {
        let p = &mut self.p;
        let grad_logits = &self.logits;
        // fc2: dW = hᵀ·dy, db = Σ dy, dh = dy·Wᵀ (before W moves), then the ReLU mask
        general_mat_mul(1.0, grad_logits, &p.fc2_weight.t(), 0.0, &mut self.grad_hidden);
        self.grad_hidden.zip_mut_with(&self.hidden, |g, &h| {
            if h <= 0.0 {
                *g = 0.0
            }
        });
        // The gradient is only needed for the update, so the GEMM adds −lr·hᵀ·dy into W itself.
        general_mat_mul(-LR, &self.hidden.t(), grad_logits, 1.0, &mut p.fc2_weight);
        p.fc2_bias.scaled_add(-LR, &grad_logits.sum_axis(Axis(0)));
        // fc1: dx = dh·Wᵀ before W moves, then W −= lr·xᵀ·dh
        general_mat_mul(1.0, &self.grad_hidden, &p.fc1_weight.t(), 0.0, &mut self.grad_pooled);
        general_mat_mul(-LR, &self.pooled.t(), &self.grad_hidden, 1.0, &mut p.fc1_weight);
        p.fc1_bias.scaled_add(-LR, &self.grad_hidden.sum_axis(Axis(0)));
        // Pool and ReLU, into `conv`, whose forward values are no longer needed
        let grad_bias = scatter_to_maxima(&self.grad_pooled, &self.winners, &mut self.conv);
        // conv: dW = dYᵀ·columns, db = Σ dY (no gradient for the image: it is data)
        general_mat_mul(1.0, &self.conv.t(), &self.columns, 0.0, &mut self.grad_conv_weight);
        p.conv_weight.scaled_add(-LR, &self.grad_conv_weight);
        p.conv_bias.scaled_add(-LR, &grad_bias);
    }
}

/// Unrolls the 5×5 window of every output position of `[N, 1, 28, 28]` into a row of 25.
fn im2col(image: &[f32], columns: &mut [f32]) {
    let mut rows = columns.chunks_exact_mut(TAPS);
    for n in 0..BATCH {
        let plane = &image[n * SIDE * SIDE..(n + 1) * SIDE * SIDE];
        for oy in 0..CONV_SIDE {
            for ox in 0..CONV_SIDE {
                let row = rows.next().expect("one row per output position");
                for ky in 0..KERNEL {
                    let start = (oy + ky) * SIDE + ox;
                    row[ky * KERNEL..(ky + 1) * KERNEL].copy_from_slice(&plane[start..start + KERNEL]);
                }
            }
        }
    }
}

/// Mean softmax cross-entropy of `logits`, which are overwritten by its gradient (y − t)/N.
fn softmax_cross_entropy_gradient(logits: &mut Array2<f32>, labels: &[usize]) -> f32 {
    let n = labels.len() as f32;
    let mut loss = 0.0;
    for (mut row, &label) in logits.outer_iter_mut().zip(labels) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        loss -= (row[label] / sum).ln();
        row.mapv_inplace(|v| v / sum / n);
        row[label] -= 1.0 / n;
    }
    loss / n
}

/// The winner of a window the ReLU cut to zero: none of its four positions gets a gradient.
const CUT: u32 = 4;

/// The flat offsets in the channels-last convolution output `[N·24·24, 30]` of the four rows
/// (row-major within the window) that pooled position `(py, px)` of `image` covers.
fn window(image: usize, py: usize, px: usize) -> [usize; 4] {
    let top_left = (image * CONV_SIDE + 2 * py) * CONV_SIDE + 2 * px;
    [top_left, top_left + 1, top_left + CONV_SIDE, top_left + CONV_SIDE + 1].map(|p| p * FILTERS)
}

/// Overwrites `grad` with the gradient at the convolution's output (channels last): each
/// pooled gradient goes to its window's maximum, zero to the rest of the window (and to all of
/// it where the ReLU cut). Windows do not overlap and cover the output (stride = kernel = 2), so
/// every element is written once and no zeroing pass is needed. Returns the bias gradient, the
/// per-channel sum.
fn scatter_to_maxima(grad_pooled: &Array2<f32>, winners: &[u32], grad: &mut Array2<f32>) -> Array1<f32> {
    let grad = grad.as_slice_mut().expect("owned");
    let grad_pooled = grad_pooled.as_slice().expect("owned");
    let mut grad_bias = [0.0f32; FILTERS];
    let mut winners = winners.chunks_exact(FILTERS);
    for image in 0..BATCH {
        let from = &grad_pooled[image * FEATURES..(image + 1) * FEATURES];
        for py in 0..POOL_SIDE {
            for px in 0..POOL_SIDE {
                let pooled: [f32; FILTERS] =
                    std::array::from_fn(|c| from[(c * POOL_SIDE + py) * POOL_SIDE + px]);
                let which = winners.next().expect("one per window");
                for (k, at) in (0u32..).zip(window(image, py, px)) {
                    let row = grad[at..at + FILTERS].iter_mut().zip(&pooled).zip(which);
                    for (((d, &g), &w), sum) in row.zip(&mut grad_bias) {
                        *d = if w == k { g } else { 0.0 };
                        *sum += *d;
                    }
                }
            }
        }
    }
    Array1::from(grad_bias.to_vec())
}

/// The eight matrix products of a step with their operands and outputs, allocated once.
/// Outputs never feed back into inputs, so the values stay fixed from step to step.
struct MatmulFloor {
    columns: Array2<f32>,
    conv_weight: Array2<f32>,
    /// Also stands in for the gradient at the convolution's output, of the same shape.
    conv: Array2<f32>,
    pooled: Array2<f32>,
    fc1_weight: Array2<f32>,
    hidden: Array2<f32>,
    fc2_weight: Array2<f32>,
    /// Also stands in for the logits' gradient, of the same shape.
    logits: Array2<f32>,
    grad_hidden: Array2<f32>,
    grad_pooled: Array2<f32>,
    grad_conv_weight: Array2<f32>,
    grad_fc1_weight: Array2<f32>,
    grad_fc2_weight: Array2<f32>,
}

impl MatmulFloor {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(2);
        let mut random =
            |rows: usize, cols: usize| Array2::from_shape_fn((rows, cols), |_| rng.random::<f32>());
        MatmulFloor {
            columns: random(BATCH * POSITIONS, TAPS),
            conv_weight: random(FILTERS, TAPS),
            conv: random(BATCH * POSITIONS, FILTERS),
            pooled: random(BATCH, FEATURES),
            fc1_weight: random(FEATURES, HIDDEN),
            hidden: random(BATCH, HIDDEN),
            fc2_weight: random(HIDDEN, CLASSES),
            logits: random(BATCH, CLASSES),
            grad_hidden: random(BATCH, HIDDEN),
            grad_pooled: random(BATCH, FEATURES),
            grad_conv_weight: random(FILTERS, TAPS),
            grad_fc1_weight: random(FEATURES, HIDDEN),
            grad_fc2_weight: random(HIDDEN, CLASSES),
        }
    }

    /// Each product in the form `hand_written` uses (which adds the weight gradients straight
    /// into the weights, at the same cost).
    fn step(&mut self) {
        let m = self;
        general_mat_mul(1.0, &m.columns, &m.conv_weight.t(), 0.0, &mut m.conv); // [57600,25]·[25,30]
        general_mat_mul(1.0, &m.pooled, &m.fc1_weight, 0.0, &mut m.hidden); // [100,4320]·[4320,100]
        general_mat_mul(1.0, &m.hidden, &m.fc2_weight, 0.0, &mut m.logits); // [100,100]·[100,10]
        general_mat_mul(1.0, &m.logits, &m.fc2_weight.t(), 0.0, &mut m.grad_hidden); // [100,10]·[10,100]
        general_mat_mul(1.0, &m.hidden.t(), &m.logits, 0.0, &mut m.grad_fc2_weight); // [100,100]·[100,10]
        general_mat_mul(1.0, &m.grad_hidden, &m.fc1_weight.t(), 0.0, &mut m.grad_pooled); // [100,100]·[100,4320]
        general_mat_mul(1.0, &m.pooled.t(), &m.grad_hidden, 0.0, &mut m.grad_fc1_weight); // [4320,100]·[100,100]
        general_mat_mul(1.0, &m.conv.t(), &m.columns, 0.0, &mut m.grad_conv_weight); // [30,57600]·[57600,25]
    }
}

/// The largest difference between `a` and `b` relative to the largest magnitude in `b`.
fn relative_difference(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f32 {
    let scale = b.fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale.max(f32::MIN_POSITIVE)
}

/// One step of each from the same weights must give the same loss and updated parameters, and
/// the updates themselves (not just the weights, which barely move) must agree too.
fn check_same_step(x: &Array4<f32>, labels: &[usize]) {
    const TOLERANCE: f32 = 1e-4;
    let tape = Tape::<f32>::new();
    let model = simple_conv_net(&tape);
    let before = Parameters::of(&tape, &model);
    let mut hand = HandWritten::new(before.clone());
    let mut opt = Sgd::new(nn::params(&model), LR as f64);
    let tape_loss = tapegrad_step(&tape, &model, &mut opt, x.clone(), labels);
    let hand_loss = hand.step(x.clone(), labels);
    let after = Parameters::of(&tape, &model);
    let loss_difference = (tape_loss - hand_loss).abs() / tape_loss.abs();
    assert!(
        loss_difference <= TOLERANCE,
        "conv_step: loss {hand_loss} by hand, {tape_loss} by tapegrad (relative difference {loss_difference:e})"
    );
    let named = before.named().into_iter().zip(after.named()).zip(hand.p.named());
    for (((name, old), (_, tape_new)), (_, hand_new)) in named {
        let weights = relative_difference(hand_new, tape_new);
        let updates = relative_difference((&hand_new - &old).view(), (&tape_new - &old).view());
        assert!(
            weights <= TOLERANCE && updates <= TOLERANCE,
            "conv_step: {name} after one step differs between hand-written and tapegrad: weights by \
             {weights:e}, updates by {updates:e} (relative to the largest), expected ≤ {TOLERANCE:e}"
        );
    }
}

fn bench(c: &mut Criterion) {
    let (x, labels) = data();
    check_same_step(&x, &labels);
    let mut group = c.benchmark_group("conv_step");
    // A step takes milliseconds; 20 samples over a few seconds keep the whole run short.
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));

    let tape = Tape::<f32>::new();
    let model = simple_conv_net(&tape);
    let mut opt = Sgd::new(nn::params(&model), LR as f64);
    group.bench_function("tapegrad", |b| {
        b.iter_batched(
            || x.clone(),
            |x| black_box(tapegrad_step(&tape, &model, &mut opt, x, &labels)),
            BatchSize::LargeInput,
        )
    });

    // From the initial weights again, as the tapegrad model has trained on meanwhile.
    let initial = Tape::<f32>::new();
    let mut hand = HandWritten::new(Parameters::of(&initial, &simple_conv_net(&initial)));
    group.bench_function("hand_written", |b| {
        b.iter_batched(|| x.clone(), |x| black_box(hand.step(x, &labels)), BatchSize::LargeInput)
    });

    let mut floor = MatmulFloor::new();
    group.bench_function("matmul_floor", |b| b.iter(|| floor.step()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
