//! The matrix products of tapegrad's examples and benches, `f32`, each on the calling thread: tapegrad's
//! `general_mat_mul` (the `gemm` crate's kernels) beside ndarray's `general_mat_mul`
//! (matrixmultiply, ndarray's own backend), same operands, same output buffer.
//!
//! Shapes, `[m, k]·[k, n]`: the LSTM's recurrent step `[20, 100]·[100, 400]`, a convolution's
//! filters on one image's columns `[30, 75]·[75, 576]`, the MNIST MLP's first layer
//! `[100, 784]·[784, 50]` (and the same with the left operand stored transposed, as a weight
//! gradient reads it), a square `[256, 256]·[256, 256]`, and the language model's read-out
//! `[700, 100]·[100, 10000]`. Before timing, both must agree to 1e-4 on every shape.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array2, ArrayView2};
use rand::{RngExt, SeedableRng};

/// The shapes: a name, `(m, k, n)`, and whether the left operand is stored transposed.
const SHAPES: [(&str, (usize, usize, usize), bool); 6] = [
    ("lstm_step_20x100x400", (20, 100, 400), false),
    ("conv_30x75x576", (30, 75, 576), false),
    ("mlp_100x784x50", (100, 784, 50), false),
    ("mlp_transposed_100x784x50", (100, 784, 50), true),
    ("square_256", (256, 256, 256), false),
    ("read_out_700x100x10000", (700, 100, 10000), false),
];

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f32>() - 0.5)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (name, (m, k, n), transposed) in SHAPES {
        // a transposed left operand is a `[k, m]` array read through `.t()`
        let stored = if transposed { random(k, m, 1) } else { random(m, k, 1) };
        let a: ArrayView2<f32> = if transposed { stored.t() } else { stored.view() };
        let b = random(k, n, 2);
        let (mut ours, mut theirs) = (Array2::<f32>::zeros((m, n)), Array2::<f32>::zeros((m, n)));
        tapegrad::general_mat_mul(1.0, &a, &b, 0.0, &mut ours);
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut theirs);
        let largest = ours.iter().zip(&theirs).fold(0.0f32, |d, (x, y)| d.max((x - y).abs()));
        assert!(largest < 1e-4, "gemm {name}: the two products differ by {largest}");
        // both run on the calling thread (ndarray leaves matrixmultiply's threads off)
        group.bench_function(format!("{name}/tapegrad"), |bench| {
            bench.iter(|| tapegrad::general_mat_mul(1.0, &a, &b, 0.0, black_box(&mut ours)))
        });
        group.bench_function(format!("{name}/matrixmultiply"), |bench| {
            bench.iter(|| ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, black_box(&mut theirs)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
