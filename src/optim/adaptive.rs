//! Optimizers that scale each entry's step by its own gradient history: [`AdaGrad`],
//! [`RmsProp`] and [`Adam`] (AdamW with decoupled weight decay).
//!
//! Their buffers are zeros of the parameter's shape until its first gradient; Adam counts each
//! parameter's own steps for its bias correction.

use ndarray::{ArrayD, Zip};

use super::{
    Optimizer, distinct, each, each_dense, each_sparse, learning_rate_field, rows_of, state, state_methods,
};
use crate::float::Float;
use crate::tape::{Gradients, Param, Tape};

/// AdaGrad: `h ← h + g²`, `w ← w − lr·g / (√h + ε)`.
#[derive(Debug, Clone)]
pub struct AdaGrad<F> {
    params: Vec<Param>,
    lr: f64,
    /// `ε`, default 1e-7 (the textbook's).
    pub eps: f64,
    sums: Vec<Option<ArrayD<F>>>,
}

impl<F: Float> AdaGrad<F> {
    /// AdaGrad over `params`.
    ///
    /// Panics if a parameter is listed twice.
    ///
    /// ```
    /// use tapegrad::optim::{AdaGrad, Optimizer};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let w = tape.param(1.0);
    /// let grads = (tape.get(w) * 3.0).backward();     // g = 3, h = 9
    /// AdaGrad::new(vec![w], 0.5).step(&tape, &grads);
    /// assert!((tape.get(w).scalar() - (1.0 - 0.5 * 3.0 / (3.0 + 1e-7))).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn new(params: Vec<Param>, lr: f64) -> Self {
        AdaGrad { params: distinct("AdaGrad", params), lr, eps: 1e-7, sums: Vec::new() }
    }
}

impl<F: Float> Optimizer<F> for AdaGrad<F> {
    fn step(&mut self, tape: &Tape<F>, grads: &Gradients<F>) {
        let (lr, eps) = (F::of(self.lr), F::of(self.eps));
        let sums = &mut self.sums;
        each(tape, &self.params, grads, |i, mut w, g| {
            let h = state(sums, i, w.shape());
            Zip::from(&mut w).and(&g).and(h).for_each(|w, &g, h| {
                *h += g * g;
                *w -= lr * g / (h.sqrt() + eps);
            });
        });
    }
    learning_rate_field!();
    state_methods!(numbers: [lr, eps], slots: ["sum" => sums]);
}

/// RMSProp: `h ← ρ·h + (1 − ρ)·g²`, `w ← w − lr·g / (√h + ε)`.
#[derive(Debug, Clone)]
pub struct RmsProp<F> {
    params: Vec<Param>,
    lr: f64,
    /// The decay `ρ`, default 0.99.
    pub decay: f64,
    /// `ε`, default 1e-8.
    pub eps: f64,
    averages: Vec<Option<ArrayD<F>>>,
}

impl<F: Float> RmsProp<F> {
    /// RMSProp over `params`.
    ///
    /// Panics if a parameter is listed twice.
    ///
    /// ```
    /// use tapegrad::optim::{Optimizer, RmsProp};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let w = tape.param(1.0);
    /// let grads = (tape.get(w) * 2.0).backward();     // g = 2, h = 0.01·4
    /// RmsProp::new(vec![w], 0.01).step(&tape, &grads);
    /// assert!((tape.get(w).scalar() - (1.0 - 0.01 * 2.0 / (0.04f64.sqrt() + 1e-8))).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn new(params: Vec<Param>, lr: f64) -> Self {
        RmsProp { params: distinct("RmsProp", params), lr, decay: 0.99, eps: 1e-8, averages: Vec::new() }
    }
}

impl<F: Float> Optimizer<F> for RmsProp<F> {
    fn step(&mut self, tape: &Tape<F>, grads: &Gradients<F>) {
        let (lr, rho, eps) = (F::of(self.lr), F::of(self.decay), F::of(self.eps));
        let averages = &mut self.averages;
        each(tape, &self.params, grads, |i, mut w, g| {
            let h = state(averages, i, w.shape());
            Zip::from(&mut w).and(&g).and(h).for_each(|w, &g, h| {
                *h = rho * *h + (F::one() - rho) * g * g;
                *w -= lr * g / (h.sqrt() + eps);
            });
        });
    }
    learning_rate_field!();
    state_methods!(numbers: [lr, decay, eps], slots: ["square_avg" => averages]);
}

/// Adam, and AdamW when `decoupled_weight_decay` is set: `m ← β₁m + (1 − β₁)g`,
/// `v ← β₂v + (1 − β₂)g²`, `w ← w − lr·m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`.
#[derive(Debug, Clone)]
pub struct Adam<F> {
    params: Vec<Param>,
    lr: f64,
    /// `β₁`, default 0.9.
    pub beta1: f64,
    /// `β₂`, default 0.999.
    pub beta2: f64,
    /// `ε`, default 1e-8.
    pub eps: f64,
    /// Weight decay `λ`: added to the gradient (Adam), or applied as `w ← w − lr·λ·w` (AdamW).
    pub weight_decay: f64,
    /// Decouple the weight decay from the gradient (AdamW).
    pub decoupled_weight_decay: bool,
    steps: Vec<i32>,
    moments: Vec<Option<ArrayD<F>>>,
    squares: Vec<Option<ArrayD<F>>>,
}

impl<F: Float> Adam<F> {
    /// Adam over `params` with the usual defaults.
    ///
    /// Panics if a parameter is listed twice.
    ///
    /// ```
    /// use tapegrad::optim::{Adam, Optimizer};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let w = tape.param(1.0);
    /// let grads = (tape.get(w) * 5.0).backward();
    /// Adam::new(vec![w], 0.1).step(&tape, &grads);
    /// // the first step moves by lr·sign(g), whatever |g|: m̂ = g, v̂ = g²
    /// assert!((tape.get(w).scalar() - (1.0 - 0.1 * 5.0 / (5.0 + 1e-8))).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn new(params: Vec<Param>, lr: f64) -> Self {
        Adam {
            params: distinct("Adam", params),
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            steps: Vec::new(),
            moments: Vec::new(),
            squares: Vec::new(),
        }
    }

    /// AdamW: Adam with decoupled weight decay `λ`.
    ///
    /// Panics if a parameter is listed twice.
    ///
    /// ```
    /// use tapegrad::optim::{Adam, Optimizer};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let w = tape.param(2.0);
    /// let grads = (tape.get(w) * 0.0).sum().backward();   // g = 0: only the decay acts
    /// Adam::adamw(vec![w], 0.1, 0.5).step(&tape, &grads);
    /// assert!((tape.get(w).scalar() - 2.0 * (1.0 - 0.1 * 0.5)).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn adamw(params: Vec<Param>, lr: f64, weight_decay: f64) -> Self {
        Adam { weight_decay, decoupled_weight_decay: true, ..Self::new(params, lr) }
    }
}

impl<F: Float> Optimizer<F> for Adam<F> {
    fn step(&mut self, tape: &Tape<F>, grads: &Gradients<F>) {
        let (b1, b2) = (F::of(self.beta1), F::of(self.beta2));
        let lr = F::of(self.lr);
        let (eps, wd, decoupled) = (F::of(self.eps), F::of(self.weight_decay), self.decoupled_weight_decay);
        let (moments, squares, steps) = (&mut self.moments, &mut self.squares, &mut self.steps);
        // NOTE: the bias correction counts this parameter's own updates, so one that first gets
        // a gradient late starts with the right correction.
        let mut corrections = |i: usize| {
            if steps.len() <= i {
                steps.resize(i + 1, 0);
            }
            // saturating: see `MAX_STEPS`
            steps[i] = steps[i].saturating_add(1);
            (F::one() - b1.powi(steps[i]), F::one() - b2.powi(steps[i]))
        };
        let update = |w: &mut F, g: F, m: &mut F, v: &mut F, (c1, c2): (F, F)| {
            let g = if decoupled { g } else { g + wd * *w };
            if decoupled {
                *w -= lr * wd * *w;
            }
            *m = b1 * *m + (F::one() - b1) * g;
            *v = b2 * *v + (F::one() - b2) * g * g;
            *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        };
        each_sparse(tape, &self.params, grads, |i, w, rows| {
            let c = corrections(i);
            let m = state(moments, i, w.shape());
            let v = state(squares, i, w.shape());
            let (m, v) = (m.as_slice_mut().expect("owned state"), v.as_slice_mut().expect("owned state"));
            rows_of(w, rows, |row, w, g| {
                let at = row * w.len()..(row + 1) * w.len();
                let state = m[at.clone()].iter_mut().zip(&mut v[at]);
                w.iter_mut().zip(g).zip(state).for_each(|((w, &g), (m, v))| update(w, g, m, v, c));
            });
        });
        each_dense(tape, &self.params, grads, true, |i, mut w, g| {
            let c = corrections(i);
            let m = state(moments, i, w.shape());
            let v = state(squares, i, w.shape());
            Zip::from(&mut w).and(&g).and(m).and(v).for_each(|w, &g, m, v| update(w, g, m, v, c));
        });
    }
    learning_rate_field!();
    state_methods!(numbers: [lr, beta1, beta2, eps, weight_decay], slots: ["exp_avg" => moments, "exp_avg_sq" => squares], steps: steps);
}
