//! Losses and metrics. Softmax cross-entropy is one fused op (log-softmax inside, stable for
//! logits of any size); the others are compositions of stable ops.

use ndarray::{Array2, ArrayD, Axis};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::op::{Context, Grads, Op, Tensor};
use crate::tape::Var;
use crate::value::Value;

/// The mean over the batch of `−Σ t·log softmax(x)` for logits `x` and targets `t` of shape
/// `(batch, classes)`: softmax and cross-entropy fused, computed through a max-shifted
/// log-sum-exp so logits of ±1000 give finite values and gradients.
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxCrossEntropy;

impl<F: Float> Op<F> for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (logits, targets) = (x[0].view(), x[1].view());
        if logits.ndim() != 2 || logits.shape() != targets.shape() {
            let expected = "logits and targets of one shape (batch, classes)";
            return Err(Error::shape("softmax_cross_entropy", &[logits.shape(), targets.shape()], expected));
        }
        let n = logits.shape()[0].max(1);
        let (logits, targets) = (logits.as_standard_layout(), targets.as_standard_layout());
        let classes = logits.shape()[1].max(1);
        let rows = logits.as_slice().expect("standard layout").chunks_exact(classes);
        let mut total = F::zero();
        for (row, t) in rows.zip(targets.as_slice().expect("standard layout").chunks_exact(classes)) {
            let max = row.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
            let shift = if max.is_finite() { max } else { F::zero() };
            let lse = row.iter().map(|&v| (v - shift).exp()).sum::<F>().ln() + shift;
            total += row
                .iter()
                .zip(t)
                .map(|(&v, &t)| if t == F::zero() { F::zero() } else { t * (lse - v) })
                .sum::<F>();
        }
        Ok(Value::Scalar(total / F::of(n as f64)))
    }
    // dx = gy·(softmax(x)·Σt − t)/n, dt = −gy·log_softmax(x)/n
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Tensor<'a, F>) -> Grads<'a, F> {
        let (x, t) = (cx.input(0), cx.input(1));
        let scale = gy / cx.input_shape(0)[0].max(1) as f64;
        let dx = cx.grad_if(0, || {
            (x.clone().softmax(1) * t.clone().sum_axes(&[1], true) - t.clone()) * scale.clone()
        });
        let dt = cx.grad_if(1, || -(x.log_softmax(1) * scale));
        crate::grads![dx, dt]
    }
}

/// Softmax cross-entropy of logits `(batch, classes)` against integer class labels, averaged
/// over the batch.
///
/// Panics if the labels do not match the batch or a label is out of range.
///
/// ```
/// use tapegrad::{nn, Tape};
/// let tape = Tape::<f64>::new();
/// let logits = tape.var(ndarray::array![[1000.0, 0.0], [0.0, 0.0]]);
/// let loss = nn::softmax_cross_entropy(logits, &[0, 1]);
/// assert!((loss.scalar() - 0.5 * 2f64.ln()).abs() < 1e-12);   // (0 + ln 2) / 2
/// let g = loss.backward()[logits].to_array();
/// assert_eq!(g, ndarray::array![[0.0, 0.0], [0.25, -0.25]].into_dyn());
/// ```
#[track_caller]
pub fn softmax_cross_entropy<'t, F: Float>(logits: Var<'t, F>, labels: &[usize]) -> Var<'t, F> {
    let shape = logits.shape();
    if shape.len() != 2 || shape[0] != labels.len() {
        panic!(
            "{}",
            Error::argument(
                "softmax_cross_entropy",
                format!(
                    "{} labels for logits of shape {shape:?}; expected one label per row of (batch, classes)",
                    labels.len()
                )
            )
        );
    }
    let classes = shape[1];
    if let Some(bad) = labels.iter().find(|&&l| l >= classes) {
        panic!(
            "{}",
            Error::argument(
                "softmax_cross_entropy",
                format!("label {bad} is out of range for {classes} classes")
            )
        );
    }
    let mut one_hot = Array2::<F>::zeros((labels.len(), classes));
    for (mut row, &l) in one_hot.outer_iter_mut().zip(labels) {
        row[l] = F::one();
    }
    softmax_cross_entropy_with_targets(logits, logits.tape().constant(one_hot))
}

/// Softmax cross-entropy against target distributions (one-hot rows, or soft labels) of the
/// logits' shape, averaged over the batch.
///
/// ```
/// use tapegrad::{nn, Tape};
/// let tape = Tape::<f64>::new();
/// let logits = tape.var(ndarray::array![[0.0, 0.0]]);
/// let t = tape.constant(ndarray::array![[0.5, 0.5]]);
/// assert!((nn::softmax_cross_entropy_with_targets(logits, t).scalar() - 2f64.ln()).abs() < 1e-12);
/// ```
#[track_caller]
pub fn softmax_cross_entropy_with_targets<'t, F: Float>(
    logits: Var<'t, F>,
    targets: Var<'t, F>,
) -> Var<'t, F> {
    logits.tape().apply(SoftmaxCrossEntropy, &[logits, targets])
}

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
/// first largest), the textbook's `np.argmax(y, axis=1)`.
///
/// ```
/// use tapegrad::nn::predicted_classes;
/// let scores = ndarray::array![[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]].into_dyn();
/// assert_eq!(predicted_classes(&scores), [1, 0, 0]);
/// ```
#[track_caller]
pub fn predicted_classes<F: Float>(scores: &ArrayD<F>) -> Vec<usize> {
    if scores.ndim() != 2 {
        let message = format!("scores of shape {:?}; expected (batch, classes)", scores.shape());
        panic!("{}", Error::argument("predicted_classes", message));
    }
    let best = |row: ndarray::ArrayViewD<'_, F>| {
        row.iter().enumerate().fold((0, F::neg_infinity()), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
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

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![crate::case!("softmax_cross_entropy", logits_and_targets(), |x, _p| {
        x[0].tape().apply(SoftmaxCrossEntropy, &[x[0], x[1]])
    })]
}
