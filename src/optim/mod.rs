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
//!
//! This module holds the [`Optimizer`] trait and what every optimizer shares: saving and
//! loading its state, the walk over the parameters that have gradients, and the check that each
//! parameter is listed once. The optimizers are [`Sgd`], [`Momentum`], [`AdaGrad`], [`RmsProp`],
//! [`Adam`] and [`Groups`]; [`clip_grad_norm`] clips gradients and a [`Schedule`] sets the
//! learning rate by epoch.

mod adaptive;
mod clip;
mod groups;
mod schedule;
mod sgd;

use std::collections::HashMap;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn};

pub use self::adaptive::{AdaGrad, Adam, RmsProp};
pub use self::clip::{ClipOptions, clip_grad_norm};
pub use self::groups::Groups;
pub use self::schedule::{CosineLr, Schedule, StepLr};
pub use self::sgd::{Momentum, Sgd};
use crate::error::Error;
use crate::float::Float;
use crate::state::{Entry, Mismatch, StateDict, StateError};
use crate::tape::{Gradients, Param, SparseRows, Tape};

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

/// The most steps an optimizer counts per parameter (Adam's bias correction raises `β` to
/// this power): a saved count above it is refused, and a count that reaches it stays there
/// (by then `1 − β^t` is 1 to within rounding for any `β` an optimizer uses).
const MAX_STEPS: u64 = i32::MAX as u64;

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
        // Only the index as `state_dict` writes it: `state.00.step` or `state.+0.step` would
        // pass as parameter 0 here and then be dropped, since the copy below looks its entries
        // up under their canonical names.
        let index = i.parse::<usize>().ok().filter(|n| n.to_string() == i);
        let want = match (index.and_then(|i| params.get(i)), slot) {
            (Some(_), "step") if has_steps => {
                if let Entry::Count(n) = entry
                    && !(1..=MAX_STEPS).contains(n)
                {
                    mismatches.push(Mismatch::Differs {
                        name: name.to_string(),
                        expected: format!("a count from 1 to {MAX_STEPS}"),
                        found: format!("a count of {n}"),
                    });
                    continue;
                }
                "a count".to_string()
            }
            (Some(&p), slot) if slot_names.contains(&slot) => {
                format!("{} {:?}", F::NAME, tape.get(p).shape().as_slice())
            }
            _ => {
                let found = entry.describe();
                let why = format!(
                    "{found}; the optimizer has {} parameters and keeps {slot_names:?} under \
                     `state.{{i}}.` with i written plainly (0, 1, … 10, no leading zeros)",
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
                state.count(&format!("state.{i}.step")).map_or(0, |n| i32::try_from(n).expect("checked"))
            })
            .collect();
    }
    Ok(())
}

/// The two state methods of an optimizer with these settings (fields of type `f64`), buffers
/// (`Vec<Option<ArrayD<F>>>` fields, under their PyTorch names) and step counts.
macro_rules! state_methods {
    (numbers: [$($n:ident),*], slots: [$($s:literal => $f:ident),*] $(, steps: $steps:ident)?) => {
        fn state_dict(&self) -> $crate::state::StateDict<F> {
            let steps: Option<&[i32]> = None $(.or(Some(&self.$steps)))?;
            $crate::optim::save_state(&[$((stringify!($n), self.$n)),*], &[$(($s, &self.$f)),*], steps)
        }
        fn load_state_dict(
            &mut self,
            tape: &$crate::tape::Tape<F>,
            state: &$crate::state::StateDict<F>,
        ) -> std::result::Result<(), $crate::state::StateError> {
            let steps: Option<&mut Vec<i32>> = None $(.or(Some(&mut self.$steps)))?;
            let fields = $crate::optim::Fields { numbers: vec![$((stringify!($n), &mut self.$n)),*], slots: vec![$(($s, &mut self.$f)),*], steps };
            $crate::optim::load_state(tape, &self.params, state, fields)
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
        fn params(&self) -> &[$crate::tape::Param] {
            &self.params
        }
    };
}

// The optimizers' files import both macros by name from here.
use {learning_rate_field, state_methods};

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
