//! Linear regression by gradient descent, in the fit / predict / score shape of scikit-learn's
//! `LinearRegression`.
//!
//! A hundred points are drawn around the line `y = 3x + 4` (x uniform on [0, 2), unit Gaussian
//! noise) and split 80/20. `fit` starts from `y = 0·x + 0` and repeatedly moves the slope and
//! the intercept against the gradient of the mean squared error, which `tapegrad` computes;
//! `score` gives R², the fraction of the variance of `y` the line explains, on either part.
//!
//! Run with `cargo run --release --example 08_linear_regression`.

use std::fmt;

use ndarray::{Array1, Axis};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};
use tapegrad::Tape;
use tapegrad::data::train_test_split;
use tapegrad::nn;
use tapegrad::optim::{Optimizer, Sgd};

/// The line the data are drawn around: `y = 3x + 4`.
pub const TRUE_SLOPE: f64 = 3.0;
/// See [`TRUE_SLOPE`].
pub const TRUE_INTERCEPT: f64 = 4.0;
/// The seed of the data and of the split.
pub const SEED: u64 = 42;

/// `n` points with `x` uniform on [0, 2) and `y = 3x + 4 + ε`, `ε ~ N(0, 1)`.
pub fn make_data(n: usize, seed: u64) -> (Array1<f64>, Array1<f64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let uniform = Uniform::new(0.0, 2.0).expect("a finite, non-empty range");
    let noise = Normal::new(0.0, 1.0).expect("a positive standard deviation");
    let x: Array1<f64> = (0..n).map(|_| uniform.sample(&mut rng)).collect();
    let y = x.mapv(|x| TRUE_SLOPE * x + TRUE_INTERCEPT + noise.sample(&mut rng));
    (x, y)
}

/// `y = coef·x + intercept`, fitted by full-batch gradient descent on the mean squared error.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearRegression {
    /// The step size.
    pub learning_rate: f64,
    /// Steps of gradient descent.
    pub steps: usize,
    /// The fitted slope.
    pub coef: f64,
    /// The fitted intercept.
    pub intercept: f64,
    /// The training loss before each step.
    pub losses: Vec<f64>,
}

impl LinearRegression {
    /// An unfitted model (`y = 0`).
    pub fn new(learning_rate: f64, steps: usize) -> Self {
        LinearRegression { learning_rate, steps, coef: 0.0, intercept: 0.0, losses: Vec::new() }
    }

    /// Fits the line to the points `(x[i], y[i])`, starting from `y = 0`.
    pub fn fit(&mut self, x: &Array1<f64>, y: &Array1<f64>) -> &mut Self {
        let tape = Tape::<f64>::new();
        let (coef, intercept) = (tape.param(0.0), tape.param(0.0));
        let mut optimizer = Sgd::new(vec![coef, intercept], self.learning_rate);
        self.losses.clear();
        for _ in 0..self.steps {
            let prediction = tape.constant(x.clone()) * tape.get(coef) + tape.get(intercept);
            let loss = nn::mean_squared_error(prediction, tape.constant(y.clone()));
            self.losses.push(loss.scalar());
            optimizer.step(&tape, &loss.backward());
            tape.reset();
        }
        self.coef = tape.get(coef).scalar();
        self.intercept = tape.get(intercept).scalar();
        self
    }

    /// The fitted line at each `x`.
    pub fn predict(&self, x: &Array1<f64>) -> Array1<f64> {
        x.mapv(|x| self.coef * x + self.intercept)
    }

    /// R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²: 1 for a perfect fit, 0 for predicting the mean.
    pub fn score(&self, x: &Array1<f64>, y: &Array1<f64>) -> f64 {
        let residual = (y - &self.predict(x)).mapv(|r| r * r).sum();
        let mean = y.mean().expect("at least one point");
        let total = y.mapv(|y| (y - mean).powi(2)).sum();
        1.0 - residual / total
    }
}

/// The exact minimiser of the mean squared error: slope = cov(x, y) / var(x), and the line
/// passes through the means.
fn least_squares(x: &Array1<f64>, y: &Array1<f64>) -> (f64, f64) {
    let (mx, my) = (x.mean().expect("points"), y.mean().expect("points"));
    let slope = ((x - mx) * (y - my)).sum() / (x - mx).mapv(|d| d * d).sum();
    (slope, my - slope * mx)
}

/// The data, the fitted model and its scores.
#[derive(Debug, Clone)]
pub struct Report {
    /// The 80 training points `(x, y)`.
    pub train: (Array1<f64>, Array1<f64>),
    /// The 20 held-out points.
    pub test: (Array1<f64>, Array1<f64>),
    /// The model fitted on `train`.
    pub model: LinearRegression,
    /// R² on `train`.
    pub train_score: f64,
    /// R² on `test`.
    pub test_score: f64,
}

/// Draws the data, splits it, fits on the training part and scores both parts.
pub fn report() -> Report {
    let (x, y) = make_data(100, SEED);
    let (train, test) = train_test_split(x.len(), 0.2, SEED).expect("a fraction in [0, 1]");
    let part = |rows: &[usize]| (x.select(Axis(0), rows), y.select(Axis(0), rows));
    let (train, test) = (part(&train), part(&test));

    let mut model = LinearRegression::new(0.1, 1000);
    model.fit(&train.0, &train.1);
    let train_score = model.score(&train.0, &train.1);
    let test_score = model.score(&test.0, &test.1);
    Report { train, test, model, train_score, test_score }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.model;
        writeln!(
            f,
            "{} training and {} test points around y = {TRUE_SLOPE}x + {TRUE_INTERCEPT}",
            self.train.0.len(),
            self.test.0.len()
        )?;
        for step in [0, 1, 2, 5, 10, 20, 50, 100, 200, 500].into_iter().filter(|&s| s < m.losses.len()) {
            writeln!(f, "step {step:>4}  mean squared error {:.6}", m.losses[step])?;
        }
        writeln!(f, "fitted by gradient descent:  y = {:.4}x + {:.4}", m.coef, m.intercept)?;
        let (slope, intercept) = least_squares(&self.train.0, &self.train.1);
        writeln!(f, "least squares, closed form:  y = {slope:.4}x + {intercept:.4}")?;
        writeln!(f, "R² train: {:.4}", self.train_score)?;
        writeln!(f, "R² test:  {:.4}", self.test_score)?;
        let x = Array1::from(vec![0.0, 1.0, 2.0]);
        writeln!(f, "predict({}) = {:.4}", x, m.predict(&x))
    }
}

#[allow(dead_code)]
fn main() {
    print!("{}", report());
}
