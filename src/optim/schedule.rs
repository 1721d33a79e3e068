//! Learning-rate schedules: the [`Schedule`] trait, [`StepLr`] and [`CosineLr`].
//!
//! A schedule is a pure function of the epoch; it holds no state, so resuming at epoch `e` needs
//! only `e`.

use super::Optimizer;
use crate::float::Float;

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
