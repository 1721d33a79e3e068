//! Parameter groups: [`Groups`] runs several optimizers as one, each over its own parameters.
//!
//! No parameter is in two groups, and the groups' learning rates keep the ratios they started
//! with.

use super::{Optimizer, distinct};
use crate::float::Float;
use crate::state::{Mismatch, StateDict, StateError};
use crate::tape::{Gradients, Param, Tape};

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
