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

/// Softmax cross-entropy of logits `[..., C]` (any leading shape: `[N, C]`, or `[N, T, C]` for
/// a sequence) against one label per row, skipping the rows whose label is `ignore` (the course
/// marks padding with −1), averaged over the rows kept: PyTorch's `cross_entropy` with
/// `ignore_index`. When every row is ignored the loss is NaN, as in PyTorch.
///
/// Panics, at the caller's line, if the labels do not match the rows or a kept label is not a
/// class.
///
/// ```
/// use ndarray::array;
/// use tapegrad::{nn, Tape};
/// let tape = Tape::<f64>::new();
/// // two sequences of two steps, three classes; the last step of the second is padding
/// let logits = tape.var(array![[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], [[0.0, 0.0, 5.0], [9.0, 9.0, 9.0]]]);
/// let loss = nn::softmax_cross_entropy_ignoring(logits, &[0, 0, 2, -1], -1);
/// let expected = (3f64.ln() + (1.0 + 2.0 * (-2f64).exp()).ln() + (1.0 + 2.0 * (-5f64).exp()).ln()) / 3.0;
/// assert!((loss.scalar() - expected).abs() < 1e-12);
/// // the ignored row gets no gradient
/// let g = loss.backward()[logits].to_array();
/// assert!(g.index_axis(ndarray::Axis(0), 1).index_axis(ndarray::Axis(0), 1).iter().all(|&v| v == 0.0));
/// ```
#[track_caller]
pub fn softmax_cross_entropy_ignoring<'t, F: Float>(
    logits: Var<'t, F>,
    labels: &[i64],
    ignore: i64,
) -> Var<'t, F> {
    let shape = logits.shape();
    let classes = shape.last().copied().unwrap_or(0);
    let rows = shape.iter().product::<usize>().checked_div(classes).unwrap_or(0);
    if shape.len() < 2 || rows != labels.len() {
        let message = format!(
            "{} labels for logits of shape {:?}; expected one label per row of [..., classes]",
            labels.len(),
            shape.as_slice()
        );
        panic!("{}", crate::Error::argument("softmax_cross_entropy_ignoring", message));
    }
    let (kept, kept_labels): (Vec<usize>, Vec<usize>) = labels
        .iter()
        .enumerate()
        .filter(|&(_, &l)| l != ignore)
        .map(|(row, &l)| match usize::try_from(l).ok().filter(|&l| l < classes) {
            Some(l) => (row, l),
            None => {
                let message =
                    format!("label {l} at row {row} is neither a class (0..{classes}) nor ignore = {ignore}");
                panic!("{}", crate::Error::argument("softmax_cross_entropy_ignoring", message))
            }
        })
        .unzip();
    if kept.is_empty() {
        return logits.tape().constant(F::nan());
    }
    let flat = logits.reshape(&[rows, classes]);
    crate::nn::softmax_cross_entropy(flat.rows(&kept), &kept_labels)
}
