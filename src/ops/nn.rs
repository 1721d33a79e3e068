//! Fused ops of neural networks: softmax cross-entropy, one op with log-softmax inside, so it is
//! stable for logits of any size and its gradient is the textbook `softmax(x) − t`; against
//! target distributions ([`SoftmaxCrossEntropy`]) or against class labels
//! ([`SoftmaxCrossEntropyLabels`], whose logits' gradient is one op of its own,
//! [`SoftmaxCrossEntropyLabelsGrad`]). The `nn` module re-exports them beside the other losses.

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::kernels::softmax::{Normaliser, label_gradient, label_losses};
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
            let lse = Normaliser::of(row).log_sum_exp();
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

/// The mean over the rows of `ln Σ eˣ − x[label]` for logits `x` `(batch, classes)` and one
/// class label per row: [`SoftmaxCrossEntropy`] against one-hot targets, without making them.
/// Each row is read once (the max-shifted log-sum-exp and the label's logit); large batches
/// share their rows between threads, and the rows' losses are added in order, so the result
/// does not depend on the thread count. The forward keeps each row's shift and sum of
/// exponentials, so that the gradient reads each row once more, not twice.
#[derive(Debug, Clone)]
pub struct SoftmaxCrossEntropyLabels<F> {
    labels: Arc<[usize]>,
    rows: OnceCell<Rc<[Normaliser<F>]>>,
}

impl<F: Float> Op<F> for SoftmaxCrossEntropyLabels<F> {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy_labels"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let logits = check_labels("softmax_cross_entropy_labels", x[0], &self.labels)?;
        let classes = logits.shape()[1].max(1);
        let losses = label_losses(logits.as_slice().expect("standard layout"), classes, &self.labels);
        let n = self.labels.len().max(1);
        let _ = self.rows.set(losses.iter().map(|&(_, normaliser)| normaliser).collect());
        Ok(Value::Scalar(losses.into_iter().fold(F::zero(), |a, (b, _)| a + b) / F::of(n as f64)))
    }
    // dx = gy·(softmax(x) − onehot(labels))/n
    fn backward<'t>(&self, cx: &Context<'t, F>, gy: Var<'t, F>) -> Grads<'t, F> {
        let grad =
            SoftmaxCrossEntropyLabelsGrad { labels: self.labels.clone(), rows: self.rows.get().cloned() };
        crate::grads![apply(grad, [cx.input(0), gy])]
    }
}

/// The logits' gradient of [`SoftmaxCrossEntropyLabels`], `(softmax(x) − onehot(labels))·g/n`
/// for logits `x` `(batch, classes)` and the loss's gradient `g` (a scalar), written in one pass
/// per row (on several threads for large batches), from the rows' shifts and sums when the
/// loss's forward kept them.
#[derive(Debug, Clone)]
pub struct SoftmaxCrossEntropyLabelsGrad<F> {
    labels: Arc<[usize]>,
    rows: Option<Rc<[Normaliser<F>]>>,
}

impl<F: Float> Op<F> for SoftmaxCrossEntropyLabelsGrad<F> {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy_labels_grad"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let name = "softmax_cross_entropy_labels_grad";
        let logits = check_labels(name, x[0], &self.labels)?;
        let Some(g) = x[1].scalar().filter(|_| x[1].ndim() == 0) else {
            return Err(Error::shape(
                name,
                &[logits.shape(), x[1].shape()],
                "logits (batch, classes) and a scalar",
            ));
        };
        let (shape, classes) = (logits.shape().to_vec(), logits.shape()[1].max(1));
        let scale = g / F::of(self.labels.len().max(1) as f64);
        let mut out = buffers::to_overwrite(logits.len());
        let rows = logits.as_slice().expect("standard layout");
        label_gradient(&mut out, rows, classes, &self.labels, self.rows.as_deref(), scale);
        Ok(Value::from_buffer(&shape, out))
    }
    // Z = (s − T)·g/n with s = softmax(x): dx = s·(gz − Σ gz·s)·g/n along the row,
    // dg = Σ gz·(s − T)/n, the op itself at g = 1 weighted by gz
    fn backward<'t>(&self, cx: &Context<'t, F>, gz: Var<'t, F>) -> Grads<'t, F> {
        let (x, g) = (cx.input(0), cx.input(1));
        let n = F::of(self.labels.len().max(1) as f64);
        let dx = cx.grad_if(0, || {
            let s = x.softmax(1);
            s * (gz - (gz * s).sum_axes(&[1], true)) * (g / n)
        });
        let dg = cx.grad_if(1, || (gz * apply(self.clone(), [x, x.tape().constant(F::one())])).sum());
        crate::grads![dx, dg]
    }
}

/// The logits as a standard-layout `(batch, classes)` matrix, checked to have one row per label
/// and every label below `classes`.
fn check_labels<'v, F: Float>(
    op: &'static str,
    logits: &'v Value<F>,
    labels: &[usize],
) -> Result<ndarray::CowArray<'v, F, ndarray::IxDyn>> {
    let shape = logits.shape();
    if shape.len() != 2 || shape[0] != labels.len() {
        let expected = format!("logits (batch, classes) with one row per label ({} labels)", labels.len());
        return Err(Error::shape(op, &[shape], expected));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= shape[1]) {
        return Err(Error::argument(op, format!("label {bad} is out of range for {} classes", shape[1])));
    }
    let view = logits.view();
    Ok(if view.is_standard_layout() { view.into() } else { view.to_owned().into() })
}

/// Softmax cross-entropy of logits `(batch, classes)` against integer class labels, averaged
/// over the batch ([`SoftmaxCrossEntropyLabels`]).
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
    apply(SoftmaxCrossEntropyLabels { labels: labels.into(), rows: OnceCell::new() }, [logits])
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
    vec![
        crate::case!("softmax_cross_entropy", logits_and_targets(), |x, _p| {
            apply(SoftmaxCrossEntropy, [x[0], x[1]])
        }),
        crate::case!("softmax_cross_entropy_labels", logits_and_labels(false), |x, p| {
            softmax_cross_entropy(x[0], &p.ints)
        }),
        crate::case!("softmax_cross_entropy_labels_grad", logits_and_labels(true), |x, p| {
            apply(SoftmaxCrossEntropyLabelsGrad { labels: p.ints.clone().into(), rows: None }, [x[0], x[1]])
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;

    /// The gradient from the rows' normalisers the loss kept equals, to the bit, the gradient
    /// that computes them again: each row gets its own (rows of 7 and 37 classes, so the 16
    /// running sums end part-way, and a row of equal logits).
    #[test]
    fn kept_normalisers_give_the_same_gradient_bits() {
        for classes in [7usize, 37] {
            let tape = Tape::<f32>::new();
            let values = (0..3 * classes).map(|k| ((k * 7919) % 101) as f32 / 9.0 - 5.0);
            let mut logits = ndarray::Array2::from_shape_vec((3, classes), values.collect()).unwrap();
            logits.row_mut(2).fill(1.5);
            let x = tape.var(logits);
            let labels = [0, classes - 1, 3];
            let kept = softmax_cross_entropy(x, &labels).backward()[x].to_array();
            let again = SoftmaxCrossEntropyLabelsGrad::<f32> { labels: labels.into(), rows: None };
            let again = apply(again, [x, tape.constant(1.0f32)]).to_array();
            assert_eq!(kept.mapv(f32::to_bits), again.mapv(f32::to_bits), "{classes} classes");
        }
    }
}
