//! One training step (forward, backward, SGD update) of two MLPs, tapegrad beside a
//! hand-written ndarray backprop of the same network (no tape, manual gradients), same data.
//!
//! - `two_layer`: 784-50-10 sigmoid, batch 100, SGD 0.1 (the textbook's TwoLayerNet);
//! - `relu_mlp`: 784-256-256-10 ReLU, batch 128, SGD 0.01.
//!
//! Both sides get the batch as an owned array, made outside the timed region.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::{RngExt, SeedableRng};
use tapegrad::nn::{self, Activation, Init, Mlp, Module};
use tapegrad::optim::{Optimizer, Sgd};
use tapegrad::{Tape, general_mat_mul};

struct Setup {
    sizes: Vec<usize>,
    activation: Activation,
    batch: usize,
    lr: f32,
}

fn data(s: &Setup) -> (Array2<f32>, Vec<usize>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x = Array2::from_shape_fn((s.batch, s.sizes[0]), |_| rng.random::<f32>());
    let labels = (0..s.batch).map(|i| i % s.sizes[s.sizes.len() - 1]).collect();
    (x, labels)
}

/// The network by hand: weights and biases, forward, backward and update written out.
struct HandWritten {
    weights: Vec<Array2<f32>>,
    biases: Vec<Array1<f32>>,
    relu: bool,
    lr: f32,
}

/// `a·b` on the GEMM tapegrad's products use, so the ratio measures the framework alone.
fn dot(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Array2<f32> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    general_mat_mul(1.0, a, b, 0.0, &mut c);
    c
}

impl HandWritten {
    fn new(s: &Setup) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let weights = s
            .sizes
            .windows(2)
            .map(|w| Array2::from_shape_fn((w[0], w[1]), |_| (rng.random::<f32>() - 0.5) * 0.1))
            .collect();
        let biases = s.sizes[1..].iter().map(|&n| Array1::zeros(n)).collect();
        HandWritten { weights, biases, relu: s.activation == Activation::Relu, lr: s.lr }
    }

    fn step(&mut self, x: Array2<f32>, labels: &[usize]) -> f32 {
        let layers = self.weights.len();
        let mut activations = vec![x];
        for l in 0..layers {
            let mut a = dot(&activations[l].view(), &self.weights[l].view()) + &self.biases[l];
            if l + 1 < layers {
                if self.relu {
                    a.mapv_inplace(|v| v.max(0.0));
                } else {
                    a.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp()));
                }
            }
            activations.push(a);
        }
        // softmax cross-entropy and its gradient (y − t)/n
        let n = labels.len() as f32;
        let mut delta = activations.pop().expect("logits");
        let mut loss = 0.0;
        for (mut row, &label) in delta.outer_iter_mut().zip(labels) {
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            loss -= (row[label] / sum).ln();
            row.mapv_inplace(|v| v / sum / n);
            row[label] -= 1.0 / n;
        }
        for l in (0..layers).rev() {
            let input = &activations[l];
            let grad_w = dot(&input.t(), &delta.view());
            let grad_b = delta.sum_axis(Axis(0));
            if l > 0 {
                let mut back = dot(&delta.view(), &self.weights[l].t());
                if self.relu {
                    back.zip_mut_with(input, |d, &a| {
                        if a <= 0.0 {
                            *d = 0.0
                        }
                    });
                } else {
                    back.zip_mut_with(input, |d, &a| *d *= a * (1.0 - a));
                }
                delta = back;
            }
            self.weights[l].scaled_add(-self.lr, &grad_w);
            self.biases[l].scaled_add(-self.lr, &grad_b);
        }
        loss / n
    }
}

fn bench(c: &mut Criterion) {
    let setups = [
        (
            "two_layer",
            Setup { sizes: vec![784, 50, 10], activation: Activation::Sigmoid, batch: 100, lr: 0.1 },
        ),
        (
            "relu_mlp",
            Setup { sizes: vec![784, 256, 256, 10], activation: Activation::Relu, batch: 128, lr: 0.01 },
        ),
    ];
    for (name, setup) in setups {
        let (x, labels) = data(&setup);
        let mut group = c.benchmark_group(format!("train_step/{name}"));

        let tape = Tape::<f32>::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let model = Mlp::new(&tape, &setup.sizes, setup.activation, Init::Xavier, &mut rng);
        let mut opt = Sgd::new(nn::params(&model), setup.lr as f64);
        group.bench_function("tapegrad", |b| {
            b.iter_batched(
                || x.clone(),
                |x| {
                    let loss = nn::softmax_cross_entropy(model.forward(tape.constant(x)), &labels);
                    let grads = loss.backward();
                    opt.step(&tape, &grads);
                    let value = loss.scalar();
                    tape.reset();
                    black_box(value)
                },
                BatchSize::LargeInput,
            )
        });

        let mut hand = HandWritten::new(&setup);
        group.bench_function("hand_written", |b| {
            b.iter_batched(|| x.clone(), |x| black_box(hand.step(x, &labels)), BatchSize::LargeInput)
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
