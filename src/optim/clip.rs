//! Gradient clipping by the joint L2 norm: [`clip_grad_norm`] and its [`ClipOptions`].
//!
//! Clipping changes only the gradients of the parameters it is given, and changes nothing when
//! it returns an error.

use super::repeated;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tape::{Gradients, Param};
use crate::value::Value;

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
/// `max_norm` may be `f64::INFINITY`, as in PyTorch: nothing is then scaled (not even for an
/// infinite or NaN norm), and the call only measures the norm.
///
/// Returns an error, changing nothing, if `max_norm` is negative or NaN, if a parameter is
/// listed twice, or if the norm is not finite and
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
///
/// // an infinite max_norm clips nothing and returns the norm (now 1)
/// assert_eq!(clip_grad_norm(&[a, b], &mut grads, f64::INFINITY, ClipOptions::default()), Ok(1.0));
/// assert!((grads[a].scalar().unwrap() - 0.6).abs() < 1e-12);
/// ```
#[track_caller]
pub fn clip_grad_norm<F: Float>(
    params: &[Param],
    grads: &mut Gradients<F>,
    max_norm: f64,
    options: ClipOptions,
) -> Result<f64> {
    const OP: &str = "clip_grad_norm";
    if max_norm.is_nan() || max_norm < 0.0 {
        let message = format!("max_norm = {max_norm}; expected a number ≥ 0 (or infinity: no clipping)");
        return Err(Error::argument(OP, message));
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
    if norm <= max_norm || max_norm == f64::INFINITY {
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
