//! Optimizers, gradient clipping and learning-rate schedules.
//!
//! An optimizer holds the [`Param`]s it updates and their state (momentum, second moments); each
//! [`step`](Optimizer::step) reads their gradients from one backward pass and changes the values
//! on the tape in place. Parameters with no gradient in that pass are left alone. Each parameter
//! is listed once: a constructor panics at a repeat, which would be updated twice per step
//! ([`nn::params`](crate::nn::params) lists a parameter shared by two layers once).
//!
//! ```
//! use tapegrad::optim::{Adam, Optimizer};
//! use tapegrad::Tape;
//!
//! // minimise (w − 3)²
//! let tape = Tape::<f64>::new();
//! let w = tape.param(0.0);
//! let mut opt = Adam::new(vec![w], 0.1);
//! for _ in 0..200 {
//!     let loss = (tape.get(w) - 3.0).square();
//!     let grads = loss.backward();
//!     opt.step(&tape, &grads);
//!     tape.reset();
//! }
//! assert!((tape.get(w).scalar() - 3.0).abs() < 1e-2);
//! ```

use std::collections::HashMap;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, Zip};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::state::{Entry, Mismatch, StateDict, StateError};
use crate::tape::{Gradients, Param, SparseRows, Tape};
use crate::value::Value;

/// Updates parameters from their gradients.
pub trait Optimizer<F: Float> {
    /// One update of every parameter that has a gradient in `grads`.
    fn step(&mut self, tape: &Tape<F>, grads: &Gradients<F>);
    /// The current learning rate.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (for schedules).
    fn set_learning_rate(&mut self, lr: f64);
    /// The parameters it updates, in order (`state.{i}` in its state is the `i`-th).
    fn params(&self) -> &[Param];
    /// The optimizer's state: its settings (`lr`, `weight_decay`, …) as numbers and, for each
    /// parameter `i` it has updated, its buffers as `state.{i}.{name}` (PyTorch's names:
    /// `momentum_buffer`, `sum`, `square_avg`, `exp_avg`, `exp_avg_sq`, and Adam's `step`
    /// count). Saving it beside the model's lets a run resume exactly.
    ///
    /// ```
    /// use tapegrad::optim::{Adam, Optimizer};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let w = tape.param(ndarray::array![1.0, 2.0]);
    /// let mut adam = Adam::new(vec![w], 0.1);
    /// adam.step(&tape, &(tape.get(w) * 3.0).sum().backward());
    /// let state = adam.state_dict();
    /// assert_eq!(state.count("state.0.step"), Some(1));
    /// assert_eq!(state.number("lr"), Some(0.1));
    ///
    /// let mut resumed = Adam::new(vec![w], 0.5);
    /// resumed.load_state_dict(&tape, &state).unwrap();
    /// assert_eq!(resumed.state_dict(), state);
    /// ```
    fn state_dict(&self) -> StateDict<F>;
    /// Reads a state made by [`state_dict`](Self::state_dict) of the same kind of optimizer over
    /// parameters of the same shapes. The error lists every missing, unexpected or misshapen
    /// entry, and then nothing changes.
    fn load_state_dict(
        &mut self,
        tape: &Tape<F>,
        state: &StateDict<F>,
    ) -> std::result::Result<(), StateError>;
}

/// What an optimizer keeps, borrowed to be changed: its settings, and its per-parameter
/// buffers and step counts; [`load_state`] fills it from a [`StateDict`].
struct Fields<'a, F> {
    numbers: Vec<(&'static str, &'a mut f64)>,
    slots: Vec<(&'static str, &'a mut Vec<Option<ArrayD<F>>>)>,
    steps: Option<&'a mut Vec<i32>>,
}

/// The [`Optimizer::state_dict`] of an optimizer with these settings, buffers and step counts.
fn save_state<F: Float>(
    numbers: &[(&str, f64)],
    slots: &[(&str, &[Option<ArrayD<F>>])],
    steps: Option<&[i32]>,
) -> StateDict<F> {
    let mut state = StateDict::new();
    for &(name, x) in numbers {
        state.insert(name, Entry::Number(x));
    }
    for &(name, slots) in slots {
        for (i, slot) in slots.iter().enumerate() {
            if let Some(a) = slot {
                state.insert(format!("state.{i}.{name}"), Entry::Tensor(a.clone()));
            }
        }
    }
    for (i, &n) in steps.unwrap_or_default().iter().enumerate() {
        if n > 0 {
            state.insert(format!("state.{i}.step"), Entry::Count(n as u64));
        }
    }
    state
}

/// The [`Optimizer::load_state_dict`] of an optimizer with these fields over `params`.
fn load_state<F: Float>(
    tape: &Tape<F>,
    params: &[Param],
    state: &StateDict<F>,
    fields: Fields<'_, F>,
) -> std::result::Result<(), StateError> {
    let slot_names: Vec<&str> = fields.slots.iter().map(|(name, _)| *name).collect();
    let has_steps = fields.steps.is_some();
    let mut expected: Vec<(String, String)> =
        fields.numbers.iter().map(|(name, _)| (name.to_string(), "a number".to_string())).collect();
    let mut mismatches = Vec::new();
    for (name, entry) in state.iter() {
        let Some((i, slot)) = name.strip_prefix("state.").and_then(|rest| rest.split_once('.')) else {
            continue;
        };
        let want = match (i.parse::<usize>().ok().and_then(|i| params.get(i)), slot) {
            (Some(_), "step") if has_steps => "a count".to_string(),
            (Some(&p), slot) if slot_names.contains(&slot) => {
                format!("{} {:?}", F::NAME, tape.get(p).shape().as_slice())
            }
            _ => {
                let found = entry.describe();
                let why = format!(
                    "{found}; the optimizer has {} parameters and keeps {slot_names:?}",
                    params.len()
                );
                mismatches.push(Mismatch::Unexpected { name: name.to_string(), found: why });
                continue;
            }
        };
        expected.push((name.to_string(), want));
    }
    let unexpected: Vec<String> = mismatches.iter().map(|m| m.name().to_string()).collect();
    mismatches.extend(
        state
            .mismatches(expected.iter().map(|(n, d)| (n.as_str(), d.clone())))
            .into_iter()
            .filter(|m| !matches!(m, Mismatch::Unexpected { name, .. } if unexpected.contains(name))),
    );
    if !mismatches.is_empty() {
        return Err(StateError::Mismatch { file: None, mismatches });
    }
    for (name, x) in fields.numbers {
        *x = state.number(name).expect("checked");
    }
    for (name, slots) in fields.slots {
        *slots = (0..params.len()).map(|i| state.tensor(&format!("state.{i}.{name}")).cloned()).collect();
    }
    if let Some(steps) = fields.steps {
        *steps = (0..params.len())
            .map(|i| {
                state.count(&format!("state.{i}.step")).map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX))
            })
            .collect();
    }
    Ok(())
}

/// The two state methods of an optimizer with these settings (fields of type `f64`), buffers
/// (`Vec<Option<ArrayD<F>>>` fields, under their PyTorch names) and step counts.
macro_rules! state_methods {
    (numbers: [$($n:ident),*], slots: [$($s:literal => $f:ident),*] $(, steps: $steps:ident)?) => {
        fn state_dict(&self) -> StateDict<F> {
            let steps: Option<&[i32]> = None $(.or(Some(&self.$steps)))?;
            save_state(&[$((stringify!($n), self.$n)),*], &[$(($s, &self.$f)),*], steps)
        }
        fn load_state_dict(&mut self, tape: &Tape<F>, state: &StateDict<F>) -> std::result::Result<(), StateError> {
            let steps: Option<&mut Vec<i32>> = None $(.or(Some(&mut self.$steps)))?;
            let fields = Fields { numbers: vec![$((stringify!($n), &mut self.$n)),*], slots: vec![$(($s, &mut self.$f)),*], steps };
            load_state(tape, &self.params, state, fields)
        }
    };
}

/// The learning-rate and parameter methods of an optimizer that keeps its rate in a field `lr`
/// and its parameters in `params`.
macro_rules! learning_rate_field {
    () => {
        fn learning_rate(&self) -> f64 {
            self.lr
        }
        fn set_learning_rate(&mut self, lr: f64) {
            self.lr = lr;
        }
        fn params(&self) -> &[Param] {
            &self.params
        }
    };
}

/// An error naming the first parameter `params` lists twice, and what repeating it would do.
fn repeated(op: &'static str, params: &[Param], consequence: &str) -> Option<Error> {
    let mut seen = HashMap::with_capacity(params.len());
    let (first, second) = params.iter().enumerate().find_map(|(j, &p)| seen.insert(p, j).map(|i| (i, j)))?;
    let message = format!(
        "parameter {:?} is listed at positions {first} and {second}; expected each parameter once \
         ({consequence})",
        params[first]
    );
    Some(Error::argument(op, message))
}

/// `params`, checked to list each parameter once.
#[track_caller]
fn distinct(optimizer: &'static str, params: Vec<Param>) -> Vec<Param> {
    if let Some(error) = repeated(optimizer, &params, "a repeated one would be updated twice per step") {
        panic!("{error}");
    }
    params
}

/// Calls `f(i, w, g)` for each parameter `i` with a gradient (a row-sparse one made dense).
fn each<F: Float>(
    tape: &Tape<F>,
    params: &[Param],
    grads: &Gradients<F>,
    f: impl FnMut(usize, ArrayViewMutD<'_, F>, ArrayViewD<'_, F>),
) {
    each_dense(tape, params, grads, false, f);
}

/// Like [`each`]; with `skip_sparse`, leaves out the parameters whose gradient is row-sparse.
fn each_dense<F: Float>(
    tape: &Tape<F>,
    params: &[Param],
    grads: &Gradients<F>,
    skip_sparse: bool,
    mut f: impl FnMut(usize, ArrayViewMutD<'_, F>, ArrayViewD<'_, F>),
) {
    for (i, &p) in params.iter().enumerate() {
        if skip_sparse && grads.sparse_param(p).is_some() {
            continue;
        }
        if let Some(g) = grads.param(p) {
            tape.get(p).update(|w| f(i, w, g.view()));
        }
    }
}

/// Calls `f(i, w, rows)` for each parameter `i` whose gradient is row-sparse, with the rows
/// coalesced (each once, repeats added up): an update touches only them.
fn each_sparse<F: Float>(
    tape: &Tape<F>,
    params: &[Param],
    grads: &Gradients<F>,
    mut f: impl FnMut(usize, ArrayViewMutD<'_, F>, &SparseRows<F>),
) {
    for (i, &p) in params.iter().enumerate() {
        if let Some(rows) = grads.sparse_param(p) {
            let rows = rows.coalesce();
            tape.get(p).update(|w| f(i, w, &rows));
        }
    }
}

/// Calls `f(row, entries of w's row, entries of the gradient's row)` for each touched row, as
/// slices: a step touches a few rows of a large table, and plain loops over them run far
/// faster than n-dimensional iterators. A table stored in another layout than row-major (made
/// from a transposed array) goes through a copy of each row.
fn rows_of<F: Float>(
    mut w: ArrayViewMutD<'_, F>,
    rows: &SparseRows<F>,
    mut f: impl FnMut(usize, &mut [F], &[F]),
) {
    let values = rows.values();
    let width = values.ncols();
    if width == 0 {
        return;
    }
    let gradient = values.as_slice().expect("row-major rows").chunks_exact(width);
    if let Some(table) = w.as_slice_mut() {
        for (&row, g) in rows.rows().iter().zip(gradient) {
            f(row, &mut table[row * width..(row + 1) * width], g);
        }
        return;
    }
    for (&row, g) in rows.rows().iter().zip(gradient) {
        let mut target = w.index_axis_mut(Axis(0), row);
        let mut entries: Vec<F> = target.iter().copied().collect();
        f(row, &mut entries, g);
        target.iter_mut().zip(entries).for_each(|(t, e)| *t = e);
    }
}

/// Per-parameter state, zeros of the parameter's shape until first used.
fn state<'s, F: Float>(
    slots: &'s mut Vec<Option<ArrayD<F>>>,
    i: usize,
    shape: &[usize],
) -> &'s mut ArrayD<F> {
    if slots.len() <= i {
        slots.resize(i + 1, None);
    }
    slots[i].get_or_insert_with(|| ArrayD::zeros(IxDyn(shape)))
}

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
            steps[i] += 1;
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

/// Several optimizers as one, each over its own group of parameters with its own settings:
/// PyTorch's parameter groups. The usual use: weight decay on the weights, none on biases and
/// normalisation parameters ([`nn::decay_split`](crate::nn::decay_split) makes the two lists).
///
/// The learning rate is the first group's; [`set_learning_rate`](Optimizer::set_learning_rate)
/// (a schedule) sets it and scales every other group's by the same factor, keeping the ratios
/// the groups started with. The state of group `k` is under `group.{k}.`.
///
/// Panics, at the caller's line, if a parameter is in two groups or there are none.
///
/// ```
/// use tapegrad::optim::{Adam, Groups, Optimizer};
/// let tape = tapegrad::Tape::<f64>::new();
/// let (w, b) = (tape.param(ndarray::array![[1.0]]), tape.param(ndarray::array![1.0]));
/// let mut opt = Groups::new(vec![
///     Box::new(Adam::adamw(vec![w], 0.1, 0.5)),
///     Box::new(Adam::adamw(vec![b], 0.01, 0.0)),   // a tenth of the rate, no decay
/// ]);
/// opt.set_learning_rate(0.2);
/// assert_eq!(opt.groups()[1].learning_rate(), 0.02);
/// let loss = (tape.get(w).sum() + tape.get(b).sum()) * 0.0;
/// opt.step(&tape, &loss.backward());
/// assert!((tape.get(w).to_array()[[0, 0]] - (1.0 - 0.2 * 0.5)).abs() < 1e-12, "decayed");
/// assert_eq!(tape.get(b).to_array()[[0]], 1.0, "not decayed");
/// ```
pub struct Groups<F: Float> {
    groups: Vec<Box<dyn Optimizer<F>>>,
    /// Each group's rate over the first's, as they were built.
    ratios: Vec<f64>,
    params: Vec<Param>,
}

impl<F: Float> Groups<F> {
    /// The groups, each an optimizer over its own parameters.
    #[track_caller]
    pub fn new(groups: Vec<Box<dyn Optimizer<F>>>) -> Self {
        assert!(!groups.is_empty(), "Groups::new: no groups; expected at least one optimizer");
        let params: Vec<Param> = groups.iter().flat_map(|g| g.params().iter().copied()).collect();
        let params = distinct("Groups", params);
        let first = groups[0].learning_rate();
        let ratios =
            groups.iter().map(|g| if first == 0.0 { 1.0 } else { g.learning_rate() / first }).collect();
        Groups { groups, ratios, params }
    }

    /// The groups' optimizers.
    pub fn groups(&self) -> &[Box<dyn Optimizer<F>>] {
        &self.groups
    }
}

impl<F: Float> std::fmt::Debug for Groups<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rates: Vec<f64> = self.groups.iter().map(|g| g.learning_rate()).collect();
        f.debug_struct("Groups").field("learning_rates", &rates).field("params", &self.params.len()).finish()
    }
}

impl<F: Float> Optimizer<F> for Groups<F> {
    fn step(&mut self, tape: &Tape<F>, grads: &Gradients<F>) {
        self.groups.iter_mut().for_each(|g| g.step(tape, grads));
    }
    fn learning_rate(&self) -> f64 {
        self.groups[0].learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.groups.iter_mut().zip(&self.ratios).for_each(|(g, r)| g.set_learning_rate(lr * r));
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn state_dict(&self) -> StateDict<F> {
        let mut state = StateDict::new();
        for (k, g) in self.groups.iter().enumerate() {
            state.extend(g.state_dict().prefixed(&format!("group.{k}")));
        }
        state
    }
    /// All groups' states are checked before any changes.
    fn load_state_dict(
        &mut self,
        tape: &Tape<F>,
        state: &StateDict<F>,
    ) -> std::result::Result<(), StateError> {
        let before: Vec<StateDict<F>> = self.groups.iter().map(|g| g.state_dict()).collect();
        let mut mismatches = Vec::new();
        let known: Vec<String> = (0..self.groups.len()).map(|k| format!("group.{k}.")).collect();
        for (name, entry) in state.iter() {
            if !known.iter().any(|k| name.starts_with(k.as_str())) {
                let found = format!("{}; there are {} groups", entry.describe(), self.groups.len());
                mismatches.push(Mismatch::Unexpected { name: name.to_string(), found });
            }
        }
        for (k, g) in self.groups.iter_mut().enumerate() {
            let prefix = format!("group.{k}");
            if let Err(e) = g.load_state_dict(tape, &state.under(&prefix)) {
                let StateError::Mismatch { mismatches: found, .. } = e else { return Err(e) };
                mismatches.extend(found.into_iter().map(|m| m.prefixed(&prefix)));
            }
        }
        if mismatches.is_empty() {
            return Ok(());
        }
        for (g, state) in self.groups.iter_mut().zip(&before) {
            g.load_state_dict(tape, state).expect("its own state fits an optimizer");
        }
        Err(StateError::Mismatch { file: None, mismatches })
    }
}

/// Options of [`clip_grad_norm`].
///
/// ```
/// use tapegrad::optim::{clip_grad_norm, ClipOptions};
/// let tape = tapegrad::Tape::<f64>::new();
/// let w = tape.param(1.0);
/// let mut grads = (tape.get(w) * f64::NAN).backward();
/// let strict = ClipOptions { error_if_nonfinite: true };
/// assert!(clip_grad_norm(&[w], &mut grads, 1.0, strict).is_err());
/// assert!(clip_grad_norm(&[w], &mut grads, 1.0, ClipOptions::default()).unwrap().is_nan());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClipOptions {
    /// Return an error, changing nothing, when the total norm is NaN or infinite (PyTorch's
    /// `error_if_nonfinite`). Off by default: the gradients are then scaled by
    /// `max_norm / norm` all the same, which makes them all NaN for a NaN norm, and zero (NaN
    /// where infinite) for an infinite one, as in PyTorch.
    pub error_if_nonfinite: bool,
}

/// Scales the gradients of `params` so that their joint L2 norm is at most `max_norm`, and
/// returns that norm before clipping (PyTorch's `clip_grad_norm_`). Other gradients in `grads`
/// (inputs, parameters not listed) are left alone; a parameter without a gradient counts as
/// zero. The clipped norm is `max_norm` exactly, where PyTorch divides by `norm + 1e-6`.
///
/// Returns an error, changing nothing, if `max_norm` is negative, NaN or infinite, if a
/// parameter is listed twice, or if the norm is not finite and
/// [`error_if_nonfinite`](ClipOptions::error_if_nonfinite) is set. Panics if a parameter
/// belongs to another tape than `grads`.
///
/// ```
/// use tapegrad::optim::{clip_grad_norm, ClipOptions};
/// let tape = tapegrad::Tape::<f64>::new();
/// let (a, b, x) = (tape.param(1.0), tape.param(1.0), tape.var(1.0));
/// let mut grads = (tape.get(a) * 3.0 + tape.get(b) * 4.0 + x * 10.0).backward();
/// // the parameters' gradient is (3, 4), of norm 5
/// assert_eq!(clip_grad_norm(&[a, b], &mut grads, 1.0, ClipOptions::default()), Ok(5.0));
/// assert!((grads[a].scalar().unwrap() - 0.6).abs() < 1e-12);
/// assert!((grads[b].scalar().unwrap() - 0.8).abs() < 1e-12);
/// assert_eq!(grads[x].scalar(), Some(10.0));
/// ```
#[track_caller]
pub fn clip_grad_norm<F: Float>(
    params: &[Param],
    grads: &mut Gradients<F>,
    max_norm: f64,
    options: ClipOptions,
) -> Result<f64> {
    const OP: &str = "clip_grad_norm";
    if !(max_norm.is_finite() && max_norm >= 0.0) {
        return Err(Error::argument(OP, format!("max_norm = {max_norm}; expected a finite number ≥ 0")));
    }
    let twice = "a repeated one would count twice in the norm and be scaled twice";
    if let Some(error) = repeated(OP, params, twice) {
        return Err(error);
    }
    // a row-sparse gradient counts its rows, repeats added up, and stays sparse
    let coalesced: Vec<Value<F>> = params
        .iter()
        .filter_map(|&p| grads.sparse_param(p))
        .map(|rows| Value::from(rows.coalesce().values().to_owned()))
        .collect();
    let dense = params.iter().filter(|&&p| grads.sparse_param(p).is_none()).filter_map(|&p| grads.param(p));
    let clipped: Vec<&Value<F>> = dense.chain(&coalesced).collect();
    let norm = l2_norm(&clipped);
    if options.error_if_nonfinite && !norm.is_finite() {
        let message = format!(
            "the total norm of the gradients of {} parameters is {norm}; expected a finite norm \
             (error_if_nonfinite is set)",
            clipped.len()
        );
        return Err(Error::argument(OP, message));
    }
    if norm <= max_norm {
        return Ok(norm);
    }
    let scale = F::of(max_norm / norm);
    for &p in params {
        if let Some(rows) = grads.sparse_param_mut(p) {
            rows.scale(scale);
        } else if let Some(g) = grads.param_mut(p) {
            g.map_inplace(|x| x * scale);
        }
    }
    Ok(norm)
}

/// The L2 norm of all the elements of `values`, in `f64`: NaN if an element is NaN, else
/// infinite if one is. One pass adds the squares; only when that sum overflowed or came out
/// tiny (possible for `f64` elements, never for `f32` ones) are they added again scaled by the
/// largest magnitude.
fn l2_norm<F: Float>(values: &[&Value<F>]) -> f64 {
    // Eight running sums, so that the pass is not one long chain of dependent additions.
    let mut sums = [0.0f64; 8];
    for value in values {
        let view = value.view();
        let mut add = |chunk: &[F]| {
            for (sum, &x) in sums.iter_mut().zip(chunk) {
                *sum += x.as_f64() * x.as_f64();
            }
        };
        match view.as_slice_memory_order() {
            Some(slice) => slice.chunks(8).for_each(add),
            None => view.iter().for_each(|&x| add(&[x])),
        }
    }
    let sum: f64 = sums.iter().sum();
    if sum.is_finite() && sum >= 1e-200 {
        return sum.sqrt();
    }
    let magnitudes = || values.iter().flat_map(|v| v.view().into_iter().map(|x| x.as_f64().abs()));
    let mut largest = 0.0f64;
    for m in magnitudes() {
        if m.is_nan() {
            return f64::NAN;
        }
        largest = largest.max(m);
    }
    if largest == 0.0 || largest.is_infinite() {
        return largest;
    }
    largest * magnitudes().map(|m| (m / largest).powi(2)).sum::<f64>().sqrt()
}

/// A learning rate as a function of the epoch.
pub trait Schedule {
    /// The learning rate for `epoch` (counting from 0).
    fn rate(&self, epoch: usize) -> f64;

    /// Sets `optimizer`'s learning rate to the rate for `epoch`: call it at the start of each
    /// epoch. (After resuming from a checkpoint at epoch `e`, the next call with `e` puts the
    /// schedule where it was.)
    ///
    /// ```
    /// use tapegrad::optim::{Adam, Optimizer, Schedule, StepLr};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let mut adam = Adam::<f64>::new(vec![tape.param(1.0)], 0.1);
    /// StepLr { initial: 0.1, step_size: 2, gamma: 0.5 }.apply(&mut adam, 3);
    /// assert_eq!(adam.learning_rate(), 0.05);
    /// ```
    fn apply<F: Float>(&self, optimizer: &mut (impl Optimizer<F> + ?Sized), epoch: usize)
    where
        Self: Sized,
    {
        optimizer.set_learning_rate(self.rate(epoch));
    }
}

/// Multiplies the rate by `gamma` every `step_size` epochs.
///
/// ```
/// use tapegrad::optim::{Schedule, StepLr};
/// let s = StepLr { initial: 0.1, step_size: 2, gamma: 0.5 };
/// assert_eq!([s.rate(0), s.rate(1), s.rate(2), s.rate(5)], [0.1, 0.1, 0.05, 0.025]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StepLr {
    /// The rate at epoch 0.
    pub initial: f64,
    /// Epochs between decays.
    pub step_size: usize,
    /// The factor at each decay.
    pub gamma: f64,
}

impl Schedule for StepLr {
    fn rate(&self, epoch: usize) -> f64 {
        self.initial * self.gamma.powi((epoch / self.step_size.max(1)) as i32)
    }
}

/// Cosine annealing from `initial` at epoch 0 to `min` at epoch `epochs`.
///
/// ```
/// use tapegrad::optim::{CosineLr, Schedule};
/// let s = CosineLr { initial: 1.0, min: 0.0, epochs: 10 };
/// assert_eq!(s.rate(0), 1.0);
/// assert!((s.rate(5) - 0.5).abs() < 1e-12);
/// assert!(s.rate(10).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CosineLr {
    /// The rate at epoch 0.
    pub initial: f64,
    /// The rate at the end.
    pub min: f64,
    /// The length of the schedule.
    pub epochs: usize,
}

impl Schedule for CosineLr {
    fn rate(&self, epoch: usize) -> f64 {
        let t = (epoch.min(self.epochs) as f64) / (self.epochs.max(1) as f64);
        self.min + 0.5 * (self.initial - self.min) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}
