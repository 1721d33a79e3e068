//! Losses and metrics. Softmax cross-entropy is one fused op, defined with the ops in
//! [`ops::nn`](crate::ops::nn) and re-exported here; the others are compositions of stable ops.

use ndarray::{ArrayD, Axis};

use crate::error::Error;
use crate::float::Float;
use crate::tape::Var;

/// The mean of `(y − t)²`.
///
/// ```
/// use tapegrad::{nn, Tape};
/// let tape = Tape::<f64>::new();
/// let (y, t) = (tape.var(vec![1.0, 3.0]), tape.constant(vec![0.0, 1.0]));
/// assert_eq!(nn::mean_squared_error(y, t).scalar(), 2.5);
/// ```
#[track_caller]
pub fn mean_squared_error<'t, F: Float>(y: Var<'t, F>, t: Var<'t, F>) -> Var<'t, F> {
    (y - t).square().mean()
}

/// `½·Σ (y − t)²`: the textbook's sum of squared errors.
///
/// ```
/// use tapegrad::{nn, Tape};
/// let tape = Tape::<f64>::new();
/// // the textbook's example: one-hot 2, prediction mostly on 2
/// let t = tape.constant(vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
/// let y = tape.var(vec![0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]);
/// assert!((nn::sum_squared_error(y, t).scalar() - 0.0975).abs() < 1e-12);
/// ```
#[track_caller]
pub fn sum_squared_error<'t, F: Float>(y: Var<'t, F>, t: Var<'t, F>) -> Var<'t, F> {
    (y - t).square().sum() * F::of(0.5)
}

/// The mean of `|y − t|`.
///
/// ```
/// use tapegrad::{nn, Tape};
/// let tape = Tape::<f64>::new();
/// let (y, t) = (tape.var(vec![1.0, -3.0]), tape.constant(vec![0.0, 1.0]));
/// assert_eq!(nn::mean_absolute_error(y, t).scalar(), 2.5);
/// ```
#[track_caller]
pub fn mean_absolute_error<'t, F: Float>(y: Var<'t, F>, t: Var<'t, F>) -> Var<'t, F> {
    (y - t).abs().mean()
}

/// Binary cross-entropy of logits against targets in `[0, 1]`, averaged: the mean of
/// `softplus(x) − x·t`, which equals `−t·ln σ(x) − (1 − t)·ln(1 − σ(x))` without its overflow.
///
/// ```
/// use tapegrad::{nn, Tape};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(vec![1000.0, -1000.0, 0.0]);
/// let t = tape.constant(vec![1.0, 0.0, 1.0]);
/// assert!((nn::binary_cross_entropy_with_logits(x, t).scalar() - 2f64.ln() / 3.0).abs() < 1e-12);
/// ```
#[track_caller]
pub fn binary_cross_entropy_with_logits<'t, F: Float>(x: Var<'t, F>, t: Var<'t, F>) -> Var<'t, F> {
    (x.softplus() - x * t).mean()
}

/// The class of each row of `(batch, classes)` scores: the index of its largest score (ties: the
/// first largest), the textbook's `np.argmax(y, axis=1)`. A NaN counts as the largest, as in
/// NumPy and PyTorch, so a broken model is not scored as if it were fine.
///
/// ```
/// use tapegrad::nn::predicted_classes;
/// let scores = ndarray::array![[0.1, 0.9], [0.8, 0.2], [0.5, 0.5], [0.3, f64::NAN]].into_dyn();
/// assert_eq!(predicted_classes(&scores), [1, 0, 0, 1]);
/// ```
#[track_caller]
pub fn predicted_classes<F: Float>(scores: &ArrayD<F>) -> Vec<usize> {
    if scores.ndim() != 2 {
        let message = format!("scores of shape {:?}; expected (batch, classes)", scores.shape());
        panic!("{}", Error::argument("predicted_classes", message));
    }
    let best = |row: ndarray::ArrayViewD<'_, F>| {
        let (mut best, mut largest) = (0, F::neg_infinity());
        for (i, &v) in row.iter().enumerate() {
            if v.is_nan() {
                return i;
            }
            if v > largest {
                (best, largest) = (i, v);
            }
        }
        best
    };
    scores.axis_iter(Axis(0)).map(best).collect()
}

/// The fraction of rows whose largest score is at the label (ties: the first largest).
///
/// ```
/// use tapegrad::nn::accuracy;
/// let scores = ndarray::array![[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]].into_dyn();
/// assert_eq!(accuracy(&scores, &[1, 0, 0]), 2.0 / 3.0);
/// ```
#[track_caller]
pub fn accuracy<F: Float>(scores: &ArrayD<F>, labels: &[usize]) -> f64 {
    if scores.ndim() != 2 || scores.shape()[0] != labels.len() {
        let message = format!(
            "{} labels for scores of shape {:?}; expected (batch, classes) with one label per row",
            labels.len(),
            scores.shape()
        );
        panic!("{}", Error::argument("accuracy", message));
    }
    if labels.is_empty() {
        return 0.0;
    }
    let correct = predicted_classes(scores).iter().zip(labels).filter(|(p, l)| p == l).count();
    correct as f64 / labels.len() as f64
}
