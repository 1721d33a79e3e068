//! The Hessian-vector product of an MLP's loss against two plain first-order backward passes.
//!
//! The network is 784-100-10 with `tanh` (smooth, so the Hessian is not mostly zero), a batch of
//! 64 random inputs, and softmax cross-entropy written as `−mean Σ onehot·log_softmax`. Both
//! sides start from the parameters as arrays and build a fresh tape, as `functional::hvp` does:
//! - `hvp`: one forward, one backward recorded with `create_graph`, one plain backward of
//!   `⟨∇loss, v⟩` through both;
//! - `two_backward`: forward and plain backward, twice.
//!
//! Before criterion runs, the ratio of their median times is measured and printed.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array1, Array2, ArrayD};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tapegrad::functional::hvp;
use tapegrad::{Tape, Var};

const BATCH: usize = 64;
const SIZES: [usize; 3] = [784, 100, 10];

/// The inputs, one-hot labels, parameters `[W₁, b₁, W₂, b₂]` and a direction `v` like them.
struct Problem {
    x: Array2<f32>,
    onehot: Array2<f32>,
    params: Vec<ArrayD<f32>>,
    v: Vec<ArrayD<f32>>,
}

fn problem() -> Problem {
    let mut rng = StdRng::seed_from_u64(7);
    let mut uniform = |shape: &[usize], scale: f32| {
        ArrayD::from_shape_fn(shape, |_| scale * (rng.random::<f32>() * 2.0 - 1.0))
    };
    let [n_in, n_hidden, n_out] = SIZES;
    let x = uniform(&[BATCH, n_in], 1.0).into_dimensionality().expect("2-D");
    let params = vec![
        uniform(&[n_in, n_hidden], 1.0 / (n_in as f32).sqrt()),
        uniform(&[n_hidden], 0.1),
        uniform(&[n_hidden, n_out], 1.0 / (n_hidden as f32).sqrt()),
        uniform(&[n_out], 0.1),
    ];
    let v = params.iter().map(|p| uniform(p.shape(), 1.0)).collect();
    let onehot = Array2::from_shape_fn((BATCH, n_out), |(i, j)| if (i * 7) % n_out == j { 1.0 } else { 0.0 });
    Problem { x, onehot, params, v }
}

/// Softmax cross-entropy of the MLP on the batch.
fn loss<'t>(p: &[Var<'t, f32>], x: &Array2<f32>, onehot: &Array2<f32>) -> Var<'t, f32> {
    let tape = p[0].tape();
    let hidden = (tape.constant(x.clone()).matmul(p[0]) + p[1]).tanh();
    let logits = hidden.matmul(p[2]) + p[3];
    -(logits.log_softmax(1) * tape.constant(onehot.clone())).sum() / BATCH as f32
}

fn hessian_vector_product(problem: &Problem) -> Vec<ArrayD<f32>> {
    hvp(|p| loss(p, &problem.x, &problem.onehot), &problem.params, &problem.v).expect("shapes fit")
}

fn two_backward(problem: &Problem) -> Vec<Array1<f32>> {
    (0..2)
        .map(|_| {
            let tape = Tape::new();
            let p: Vec<_> = problem.params.iter().map(|a| tape.var(a.clone())).collect();
            let grads = loss(&p, &problem.x, &problem.onehot).backward();
            Array1::from_iter(p.iter().map(|&p| grads.wrt(p).view().sum()))
        })
        .collect()
}

fn median_seconds(mut f: impl FnMut(), runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn bench(c: &mut Criterion) {
    let problem = problem();
    let hv = hessian_vector_product(&problem);
    assert!(hv.iter().all(|h| h.iter().all(|x| x.is_finite())));
    assert!(hv[0].iter().any(|&x| x != 0.0), "tanh makes the Hessian of W₁ non-zero");

    let hvp_time = median_seconds(|| drop(black_box(hessian_vector_product(&problem))), 41);
    let backward_time = median_seconds(|| drop(black_box(two_backward(&problem))), 41);
    println!(
        "hvp 784-100-10, batch {BATCH}: {:.2} ms; two backward passes: {:.2} ms; ratio {:.2}×",
        hvp_time * 1e3,
        backward_time * 1e3,
        hvp_time / backward_time
    );

    let mut group = c.benchmark_group("hvp_784_100_10");
    group.sample_size(30);
    group.bench_function("hvp", |b| b.iter(|| black_box(hessian_vector_product(&problem))));
    group.bench_function("two_backward", |b| b.iter(|| black_box(two_backward(&problem))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
