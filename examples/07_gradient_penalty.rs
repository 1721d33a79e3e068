//! Double backpropagation: training with a penalty on the model's own gradient.
//!
//! A small network `f(x) = w₂ᵀ tanh(w₁x + b₁) + b₂` is fitted to noisy samples of `sin x`. Besides
//! the squared error, the loss charges the squared slope `(∂f/∂x)²` at each sample, which keeps
//! the fitted curve flat where the data do not demand otherwise: a simpler relative of Drucker and
//! LeCun's "double backpropagation", which penalises the loss's gradient with respect to the input
//! (guide, chapter 9). The slope is a gradient, taken with `create_graph` so that the loss, and
//! with it the parameters' update, can be differentiated through it: one backward pass inside
//! the loss, one more through the whole.
//!
//! Run with `cargo run --release --example 07_gradient_penalty`.

use ndarray::{Array1, Array2};
use tapegrad::{GradOptions, Tape};

/// Hidden units.
pub const HIDDEN: usize = 6;
/// Weight of the slope penalty in the loss.
pub const LAMBDA: f64 = 0.1;
/// Learning rate of plain gradient descent.
pub const LR: f64 = 0.1;
/// Training steps.
pub const STEPS: usize = 50;

/// Eight samples of `sin x` on `[−2, 2]`, each pushed up or down by 0.2 in turn.
pub fn data() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..8).map(|i| -2.0 + 4.0 * i as f64 / 7.0).collect();
    let t = x.iter().enumerate().map(|(i, x)| x.sin() + if i % 2 == 0 { 0.2 } else { -0.2 }).collect();
    (x, t)
}

/// The network's parameters: `w₁`, `b₁`, `w₂` (one per hidden unit) and `b₂`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameters {
    /// Input weights.
    pub w1: Vec<f64>,
    /// Hidden biases.
    pub b1: Vec<f64>,
    /// Output weights.
    pub w2: Vec<f64>,
    /// Output bias.
    pub b2: f64,
}

/// Fixed starting values, spread by sines so that no two units start alike.
pub fn initial_parameters() -> Parameters {
    let spread = |scale: f64, rate: f64, phase: f64| {
        (0..HIDDEN).map(|j| scale * (rate * j as f64 + phase).sin()).collect::<Vec<_>>()
    };
    Parameters { w1: spread(1.2, 1.7, 0.5), b1: spread(0.6, 0.9, 1.9), w2: spread(0.8, 2.3, 1.1), b2: 0.05 }
}

/// The mean squared error and the mean squared slope, before each step and after the last
/// (`STEPS + 1` entries), training with penalty weight `lambda`.
pub fn train(lambda: f64) -> Vec<(f64, f64)> {
    let (xs, ts) = data();
    let n = xs.len();
    let p = initial_parameters();
    let tape = Tape::<f64>::new();
    let w1 = tape.get(tape.param(Array2::from_shape_vec((1, HIDDEN), p.w1).expect("HIDDEN values")));
    let b1 = tape.get(tape.param(Array1::from(p.b1)));
    let w2 = tape.get(tape.param(Array2::from_shape_vec((HIDDEN, 1), p.w2).expect("HIDDEN values")));
    let b2 = tape.get(tape.param(Array1::from(vec![p.b2])));
    let params = [w1, b1, w2, b2];
    let mut history = Vec::with_capacity(STEPS + 1);
    for step in 0..=STEPS {
        let x = tape.var(Array2::from_shape_vec((n, 1), xs.clone()).expect("n values"));
        let t = tape.constant(Array2::from_shape_vec((n, 1), ts.clone()).expect("n values"));
        let y = (x.matmul(w1) + b1).tanh().matmul(w2) + b2;
        // Each row of y depends only on its own x, so the gradient of Σy is every ∂yᵢ/∂xᵢ.
        let [slope] = tape.grad(y.sum(), [x], GradOptions { create_graph: true });
        let (mse, penalty) = ((y - t).square().mean(), slope.square().mean());
        history.push((mse.scalar(), penalty.scalar()));
        if step < STEPS {
            let grads = (mse + penalty * lambda).backward();
            for p in params {
                let g = grads.wrt(p);
                p.update(|mut v| v.zip_mut_with(&g.view(), |w, &g| *w -= LR * g));
            }
        }
        tape.reset();
    }
    history
}

/// `x` to 10 significant digits.
pub fn show(x: f64) -> String {
    let rounded: f64 = format!("{x:.9e}").parse().expect("a number");
    format!("{rounded}")
}

/// Trains with and without the penalty and returns the printed report.
pub fn report() -> String {
    let mut out = format!("loss = mse + {LAMBDA}·mean (∂f/∂x)², learning rate {LR}\n");
    let penalized = train(LAMBDA);
    for (k, (mse, penalty)) in penalized.iter().enumerate().filter(|(k, _)| k % 5 == 0) {
        out += &format!(
            "step {k}: loss {}, mse {}, slope² {}\n",
            show(mse + LAMBDA * penalty),
            show(*mse),
            show(*penalty)
        );
    }
    let plain = train(0.0);
    let (last, plain_last) = (penalized[STEPS], plain[STEPS]);
    out += &format!(
        "after {STEPS} steps: with the penalty mse {}, slope² {}; without it mse {}, slope² {}\n",
        show(last.0),
        show(last.1),
        show(plain_last.0),
        show(plain_last.1)
    );
    out
}

#[allow(dead_code)]
fn main() {
    print!("{}", report());
}
