//! Fused ops of neural networks: softmax cross-entropy, one op with log-softmax inside, so it is
//! stable for logits of any size and its gradient is the textbook `softmax(x) − t`. The `nn`
//! module re-exports it beside the other losses.

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::ops::apply;
use crate::tape::Var;
use crate::tape::op::{Context, Grads, Op};
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
    fn backward<'t>(&self, cx: &Context<'t, F>, gy: Var<'t, F>) -> Grads<'t, F> {
        let (x, t) = (cx.input(0), cx.input(1));
        let scale = gy / F::of(cx.input_shape(0)[0].max(1) as f64);
        let dx = cx.grad_if(0, || (x.softmax(1) * t.sum_axes(&[1], true) - t) * scale);
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
    apply(SoftmaxCrossEntropy, [logits, targets])
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![crate::case!("softmax_cross_entropy", logits_and_targets(), |x, _p| {
        apply(SoftmaxCrossEntropy, [x[0], x[1]])
    })]
}
