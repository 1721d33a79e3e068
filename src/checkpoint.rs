//! Training runs that stop and resume: a [`Checkpoint`] holds a model's state, its optimizer's
//! state and a few notes (the epoch, the seeds) in one safetensors file.
//!
//! This layer sits on top of `nn` and `optim` and uses both.

use std::path::Path;

use crate::float::Float;
use crate::nn::{self, Module};
use crate::optim::Optimizer;
use crate::state::{Notes, StateDict, StateError, listed};
use crate::tape::Tape;

/// A model's parameters and buffers, its optimizer's state (moments, step counts, learning
/// rate) and notes such as the epoch and the seeds: everything a run needs to resume exactly.
///
/// In the file, the model's entries are prefixed `model.`, the optimizer's `optimizer.`, and
/// the notes are the header's metadata.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{self, Activation, Init, Mlp, Module};
/// use tapegrad::optim::{Adam, Optimizer};
/// use tapegrad::checkpoint::Checkpoint;
/// use tapegrad::Tape;
///
/// let tape = Tape::<f32>::new();
/// let model = Mlp::new(&tape, &[2, 4, 2], Activation::Tanh, Init::Xavier, &mut rand::rngs::StdRng::seed_from_u64(1));
/// let mut adam = Adam::new(nn::params(&model), 0.01);
/// let x = tape.constant(ndarray::array![[1.0f32, 2.0]]);
/// adam.step(&tape, &nn::softmax_cross_entropy(model.forward(x), &[1]).backward());
///
/// let path = std::env::temp_dir().join("tapegrad-doc-checkpoint.safetensors");
/// Checkpoint::capture(&tape, &model, &adam).unwrap().note("epoch", 1).save(&path).unwrap();
///
/// // later, in a fresh model and optimizer
/// let other = Tape::<f32>::new();
/// let fresh = Mlp::new(&other, &[2, 4, 2], Activation::Tanh, Init::Xavier, &mut rand::rngs::StdRng::seed_from_u64(2));
/// let mut resumed = Adam::new(nn::params(&fresh), 0.01);
/// let checkpoint = Checkpoint::load(&path).unwrap();
/// checkpoint.restore(&other, &fresh, &mut resumed).unwrap();
/// assert_eq!(checkpoint.notes["epoch"], "1");
/// assert_eq!(nn::state_dict(&other, &fresh).unwrap(), nn::state_dict(&tape, &model).unwrap());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<F> {
    /// The model's parameters and buffers, as [`nn::state_dict`] gives them.
    pub model: StateDict<F>,
    /// The optimizer's state, as [`Optimizer::state_dict`] gives it.
    pub optimizer: StateDict<F>,
    /// Free-form notes: the epoch, the seeds, the command line.
    pub notes: Notes,
}

impl<F: Float> Checkpoint<F> {
    /// The current state of `model` (values on `tape`) and `optimizer`.
    pub fn capture(
        tape: &Tape<F>,
        model: &impl Module<F>,
        optimizer: &(impl Optimizer<F> + ?Sized),
    ) -> Result<Self, StateError> {
        Ok(Checkpoint {
            model: nn::state_dict(tape, model)?,
            optimizer: optimizer.state_dict(),
            notes: Notes::new(),
        })
    }

    /// Adds the note `key` = `value`. The key `tapegrad.numbers` is reserved:
    /// [`save`](Self::save) refuses a checkpoint that uses it.
    pub fn note(mut self, key: &str, value: impl ToString) -> Self {
        self.notes.insert(key.to_string(), value.to_string());
        self
    }

    /// Writes the checkpoint to one safetensors file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), StateError> {
        let mut all = self.model.clone().prefixed("model");
        all.extend(self.optimizer.clone().prefixed("optimizer"));
        all.save(path, &self.notes)
    }

    /// Reads a checkpoint written by [`save`](Self::save). Every entry must be under
    /// `model.` or `optimizer.`: a file with others is refused rather than read in part.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, StateError> {
        let path = path.as_ref();
        let (all, notes) = StateDict::load(path)?;
        let stray: Vec<&str> = all
            .names()
            .into_iter()
            .filter(|name| !name.starts_with("model.") && !name.starts_with("optimizer."))
            .collect();
        if !stray.is_empty() {
            return Err(StateError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "entries {} are under neither `model.` nor `optimizer.`: expected a checkpoint \
                     written by Checkpoint::save",
                    listed(&stray)
                ),
            });
        }
        Ok(Checkpoint { model: all.under("model"), optimizer: all.under("optimizer"), notes })
    }

    /// Puts the checkpoint's state into `model` (on `tape`) and `optimizer`. If anything does
    /// not fit (a name, a shape, an element type, in the model or the optimizer), the error
    /// lists every mismatch, prefixed `model.` or `optimizer.`, and neither changes.
    pub fn restore(
        &self,
        tape: &Tape<F>,
        model: &impl Module<F>,
        optimizer: &mut (impl Optimizer<F> + ?Sized),
    ) -> Result<(), StateError> {
        let mut mismatches: Vec<_> = nn::save::state_mismatches(tape, model, &self.model)?
            .into_iter()
            .map(|m| m.prefixed("model"))
            .collect();
        let before = optimizer.state_dict();
        if let Err(error) = optimizer.load_state_dict(tape, &self.optimizer) {
            let StateError::Mismatch { mismatches: found, .. } = error else { return Err(error) };
            mismatches.extend(found.into_iter().map(|m| m.prefixed("optimizer")));
        }
        if !mismatches.is_empty() {
            optimizer.load_state_dict(tape, &before).expect("its own state fits an optimizer");
            return Err(StateError::Mismatch { file: None, mismatches });
        }
        nn::load_state_dict(tape, model, &self.model)
    }
}
