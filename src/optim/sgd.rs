//! Plain and momentum stochastic gradient descent: [`Sgd`] and [`Momentum`].
//!
//! [`Sgd`] updates only the rows of a row-sparse gradient (an embedding's); [`Momentum`] makes
//! such a gradient dense, since its buffer decays every row.

use ndarray::{ArrayD, Zip};

use super::{
    Optimizer, distinct, each, each_dense, each_sparse, learning_rate_field, rows_of, state, state_methods,
};
use crate::float::Float;
use crate::tape::{Gradients, Param, Tape};

/// Stochastic gradient descent: `w ← w − lr·(g + λ·w)`.
#[derive(Debug, Clone)]
pub struct Sgd {
    params: Vec<Param>,
    lr: f64,
    /// L2 weight decay `λ` (added to the gradient).
    pub weight_decay: f64,
}

impl Sgd {
    /// SGD over `params` with learning rate `lr`.
    ///
    /// Panics if a parameter is listed twice.
    ///
    /// ```
    /// use tapegrad::optim::{Optimizer, Sgd};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let w = tape.param(2.0);
    /// let grads = tape.get(w).square().backward();   // g = 2w = 4
    /// Sgd::new(vec![w], 0.1).step(&tape, &grads);
    /// assert_eq!(tape.get(w).scalar(), 2.0 - 0.1 * 4.0);
    /// ```
    #[track_caller]
    pub fn new(params: Vec<Param>, lr: f64) -> Self {
        Sgd { params: distinct("Sgd", params), lr, weight_decay: 0.0 }
    }
}

impl<F: Float> Optimizer<F> for Sgd {
    /// A row-sparse gradient (an embedding's) updates only its rows; weight decay then applies
    /// to those rows only.
    fn step(&mut self, tape: &Tape<F>, grads: &Gradients<F>) {
        let (lr, wd) = (F::of(self.lr), F::of(self.weight_decay));
        let update = |w: &mut F, g: F| *w -= lr * (g + wd * *w);
        each_sparse(tape, &self.params, grads, |_, w, rows| {
            rows_of(w, rows, |_, w, g| w.iter_mut().zip(g).for_each(|(w, &g)| update(w, g)));
        });
        each_dense(tape, &self.params, grads, true, |_, mut w, g| {
            Zip::from(&mut w).and(&g).for_each(|w, &g| update(w, g));
        });
    }
    learning_rate_field!();
    state_methods!(numbers: [lr, weight_decay], slots: []);
}

/// SGD with momentum `μ` (PyTorch's form): `b ← μ·b + g`, then `w ← w − lr·b`, or with
/// `nesterov`, `w ← w − lr·(g + μ·b)`.
#[derive(Debug, Clone)]
pub struct Momentum<F> {
    params: Vec<Param>,
    lr: f64,
    /// The momentum `μ`, default 0.9.
    pub momentum: f64,
    /// Nesterov's look-ahead.
    pub nesterov: bool,
    /// L2 weight decay `λ`.
    pub weight_decay: f64,
    buffers: Vec<Option<ArrayD<F>>>,
}

impl<F: Float> Momentum<F> {
    /// Momentum SGD (μ = 0.9) over `params`.
    ///
    /// Panics if a parameter is listed twice.
    ///
    /// ```
    /// use tapegrad::optim::{Momentum, Optimizer};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let w = tape.param(1.0);
    /// let mut opt = Momentum::new(vec![w], 0.1);
    /// for _ in 0..2 {
    ///     let grads = (tape.get(w) * 2.0).backward();  // g = 2 always
    ///     opt.step(&tape, &grads);
    /// }
    /// // b₁ = 2, w₁ = 1 − 0.2 = 0.8; b₂ = 0.9·2 + 2 = 3.8, w₂ = 0.8 − 0.38 = 0.42
    /// assert!((tape.get(w).scalar() - 0.42).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn new(params: Vec<Param>, lr: f64) -> Self {
        Momentum {
            params: distinct("Momentum", params),
            lr,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            buffers: Vec::new(),
        }
    }

    /// Nesterov momentum (μ = 0.9) over `params`.
    ///
    /// Panics if a parameter is listed twice.
    #[track_caller]
    pub fn nesterov(params: Vec<Param>, lr: f64) -> Self {
        Momentum { nesterov: true, ..Self::new(params, lr) }
    }
}

impl<F: Float> Optimizer<F> for Momentum<F> {
    fn step(&mut self, tape: &Tape<F>, grads: &Gradients<F>) {
        let (lr, mu, wd, nesterov) =
            (F::of(self.lr), F::of(self.momentum), F::of(self.weight_decay), self.nesterov);
        let buffers = &mut self.buffers;
        each(tape, &self.params, grads, |i, mut w, g| {
            let b = state(buffers, i, w.shape());
            Zip::from(&mut w).and(&g).and(b).for_each(|w, &g, b| {
                let g = g + wd * *w;
                *b = mu * *b + g;
                *w -= lr * if nesterov { g + mu * *b } else { *b };
            });
        });
    }
    learning_rate_field!();
    state_methods!(numbers: [lr, momentum, weight_decay], slots: ["momentum_buffer" => buffers]);
}
