//! Reductions: sums and means over all or some axes, max/min, `logsumexp`, `softmax`,
//! `log_softmax`, and norms and distances. `logsumexp`, `softmax` and `log_softmax` shift by the
//! maximum, so `softmax([1000, 1000])` is `[0.5, 0.5]` and nothing overflows.

use ndarray::{ArrayD, ArrayViewD, Axis};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::softmax;
use crate::kernels::sum::sum_leading_axes;
use crate::ops::binary::{maximum, minimum};
use crate::ops::{apply, check_axis, try_apply};
use crate::tape::Var;
use crate::tape::op::{Context, Grads, Op};
use crate::value::{Shape, Value};

/// Sums over `axes` (all axes when empty is not meant: pass every axis), keeping them as length
/// 1 when `keepdims`.
#[derive(Debug, Clone)]
pub struct SumAxes {
    /// The axes summed, ascending.
    pub axes: Shape,
    /// Keep the summed axes with length 1.
    pub keepdims: bool,
}

impl<F: Float> Op<F> for SumAxes {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axes("sum", &self.axes, x[0].ndim())?;
        if let (Value::Array(a), true) = (x[0], self.axes.len() == x[0].ndim() && !self.keepdims) {
            return Ok(Value::Scalar(a.sum()));
        }
        if let Some(sum) = sum_leading_axes(&x[0].view(), &self.axes, self.keepdims) {
            return Ok(Value::from(sum));
        }
        Ok(reduce(x[0], &self.axes, self.keepdims, |a, axis| a.sum_axis(axis)))
    }
    // dx = broadcast_to(gy with the axes kept, shape(x))
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let shape = cx.input_shape(0);
        crate::grads![gy.reshape(&kept_shape(&shape, &self.axes)).broadcast_to(&shape)]
    }
}

/// The maximum (`is_max`) or minimum over `axes`, NaN where a NaN is among the values. NOTE:
/// when several entries tie for the extreme, the gradient is split evenly among them; where the
/// result is NaN, among the NaNs.
#[derive(Debug, Clone)]
pub struct Extremum {
    /// The axes reduced, ascending.
    pub axes: Shape,
    /// Keep the reduced axes with length 1.
    pub keepdims: bool,
    /// Maximum rather than minimum.
    pub is_max: bool,
}

impl<F: Float> Op<F> for Extremum {
    fn name(&self) -> &'static str {
        if self.is_max { "max" } else { "min" }
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axes(Op::<F>::name(self), &self.axes, x[0].ndim())?;
        let shape = x[0].shape();
        if let Some(&axis) = self.axes.iter().find(|&&a| shape[a] == 0) {
            let out: Vec<usize> = (0..shape.len())
                .filter(|a| self.keepdims || !self.axes.contains(a))
                .map(|a| if self.axes.contains(&a) { 1 } else { shape[a] })
                .collect();
            if out.iter().product::<usize>() > 0 {
                let message = format!(
                    "axis {axis} of shape {shape:?} has length 0, and the {} of no values is undefined \
                     (the result would have shape {out:?}; only an empty result may come from an empty axis)",
                    if self.is_max { "maximum" } else { "minimum" }
                );
                return Err(Error::argument(Op::<F>::name(self), message));
            }
        }
        let pick = if self.is_max { maximum } else { minimum };
        let start = if self.is_max { F::neg_infinity() } else { F::infinity() };
        Ok(reduce(x[0], &self.axes, self.keepdims, |a, axis| a.fold_axis(axis, start, |&m, &v| pick(m, v))))
    }
    // dx = gy·[x = y] / (number of ties), with NaN = NaN
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let (x, shape) = (cx.input(0), cx.input_shape(0));
        let kept = kept_shape(&shape, &self.axes);
        let is_y = |x: F, y: F| x == y || (x.is_nan() && y.is_nan());
        let at_extreme =
            x.zip_constant(&cx.output().reshape(&kept), |x, y| if is_y(x, y) { F::one() } else { F::zero() });
        let ties = at_extreme.sum_axes(&self.axes, true);
        let share = at_extreme.zip_constant(&ties, |m, n| m / n);
        crate::grads![gy.reshape(&kept) * share]
    }
}

/// `ln Σ eˣ` along one axis, shifted by the maximum so it never overflows.
#[derive(Debug, Clone, Copy)]
pub struct LogSumExp {
    /// The axis reduced.
    pub axis: usize,
    /// Keep it with length 1.
    pub keepdims: bool,
}

impl<F: Float> Op<F> for LogSumExp {
    fn name(&self) -> &'static str {
        "logsumexp"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axis("logsumexp", self.axis, x[0].ndim())?;
        let lse = softmax::log_sum_exp(&x[0].view(), self.axis);
        Ok(Value::from(if self.keepdims { lse } else { lse.remove_axis(Axis(self.axis)) }))
    }
    // dx = gy·e^(x − y), with gy and y broadcast along the axis
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let kept = kept_shape(&cx.input_shape(0), &[self.axis]);
        crate::grads![gy.reshape(&kept) * (cx.input(0) - cx.output().reshape(&kept)).exp()]
    }
}

/// The running sum along `axis` (PyTorch's `cumsum`): element `i` is the sum of elements
/// `0..=i`, or of `i..` when `reverse`.
#[derive(Debug, Clone, Copy)]
pub struct CumSum {
    /// The axis summed along.
    pub axis: usize,
    /// Sum from the end.
    pub reverse: bool,
}

impl<F: Float> Op<F> for CumSum {
    fn name(&self) -> &'static str {
        "cumsum"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axis("cumsum", self.axis, x[0].ndim())?;
        let mut out = x[0].to_array();
        let mut view = out.view_mut();
        if self.reverse {
            view.invert_axis(Axis(self.axis));
        }
        view.accumulate_axis_inplace(Axis(self.axis), |&before, v| *v += before);
        Ok(Value::from(out))
    }
    // dx = the running sum of gy from the other end: xⱼ is in every yᵢ with i ≥ j
    fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![apply(CumSum { axis: self.axis, reverse: !self.reverse }, [gy])]
    }
}

/// `eˣ / Σ eˣ` along one axis.
#[derive(Debug, Clone, Copy)]
pub struct Softmax(pub usize);

impl<F: Float> Op<F> for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axis("softmax", self.0, x[0].ndim())?;
        Ok(Value::from(softmax::softmax(&x[0].view(), self.0)))
    }
    // dx = y·(gy − Σ gy·y) along the axis
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let y = cx.output();
        let dot = (gy * y).sum_axes(&[self.0], true);
        crate::grads![y * (gy - dot)]
    }
}

/// `x − ln Σ eˣ` along one axis: the log of [`Softmax`], computed without taking a log of 0.
#[derive(Debug, Clone, Copy)]
pub struct LogSoftmax(pub usize);

impl<F: Float> Op<F> for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axis("log_softmax", self.0, x[0].ndim())?;
        Ok(Value::from(softmax::log_softmax(&x[0].view(), self.0)))
    }
    // dx = gy − e^y·Σ gy along the axis
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let total = gy.sum_axes(&[self.0], true);
        crate::grads![gy - cx.output().exp() * total]
    }
}

/// Applies `f` (a one-axis reduction that drops the axis) over `axes`, keeping them if asked.
fn reduce<F: Float>(
    x: &Value<F>,
    axes: &[usize],
    keepdims: bool,
    f: impl Fn(&ArrayViewD<'_, F>, Axis) -> ArrayD<F>,
) -> Value<F> {
    Value::from(reduce_axes(x.view(), axes.iter().rev().map(|&a| (a, keepdims)), f))
}

/// Reduces `x` over each `(axis, keep)` in turn (descending axes), starting from the view so
/// the input is never copied whole.
pub(crate) fn reduce_axes<F: Float>(
    x: ArrayViewD<'_, F>,
    axes: impl Iterator<Item = (usize, bool)>,
    f: impl Fn(&ArrayViewD<'_, F>, Axis) -> ArrayD<F>,
) -> ArrayD<F> {
    let mut out: Option<ArrayD<F>> = None;
    for (axis, keep) in axes {
        let reduced = match &out {
            None => f(&x, Axis(axis)),
            Some(o) => f(&o.view(), Axis(axis)),
        };
        out = Some(if keep { reduced.insert_axis(Axis(axis)) } else { reduced });
    }
    out.unwrap_or_else(|| x.to_owned())
}

/// `shape` with each of `axes` set to 1.
fn kept_shape(shape: &[usize], axes: &[usize]) -> Shape {
    let mut kept = Shape::from_slice(shape);
    for &a in axes {
        kept[a] = 1;
    }
    kept
}

fn check_axes(op: &'static str, axes: &[usize], ndim: usize) -> Result<()> {
    for &a in axes {
        check_axis(op, a, ndim)?;
    }
    if axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::argument(op, format!("axes {axes:?} must be ascending and distinct")));
    }
    Ok(())
}

fn sorted_axes(op: &'static str, axes: &[usize], ndim: usize) -> Result<Shape> {
    let mut sorted = Shape::from_slice(axes);
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::argument(op, format!("axis listed twice in {axes:?}")));
    }
    check_axes(op, &sorted, ndim)?;
    Ok(sorted)
}

/// Which norm [`Var::norm`](crate::Var::norm) computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Norm {
    /// `Σ |x|`.
    L1,
    /// `√(Σ x²)`, the Euclidean norm. NOTE: its gradient at 0 is taken as 0.
    L2,
    /// `max |x|`; ties split the gradient evenly.
    Inf,
    /// `(Σ |x|ᵖ)^(1/p)` for `p ≥ 1`; `P(∞)` is [`Inf`](Norm::Inf).
    P(f64),
}

var_methods! {
    /// The running sum along `axis`: element `i` is the sum of elements `0..=i` (PyTorch's
    /// `cumsum`).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.cumsum(1).to_array(), ndarray::array![[1.0, 3.0, 6.0], [4.0, 9.0, 15.0]].into_dyn());
    /// // xⱼ is in every sum from j on: its gradient counts them
    /// assert_eq!(x.cumsum(1).sum().backward()[x].to_array(), ndarray::array![[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]].into_dyn());
    /// assert!(x.try_cumsum(2).is_err());
    /// ```
    pub fn cumsum / try_cumsum(self, axis: usize) -> Self {
        try_apply(CumSum { axis, reverse: false }, [self])
    }

    /// The sum of all elements: a scalar.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(x.sum().scalar(), 10.0);
    /// ```
    #[track_caller]
    pub fn sum(self) -> Self {
        let axes: Shape = (0..self.ndim()).collect();
        apply(SumAxes { axes, keepdims: false }, [self])
    }

    /// Sums over `axes`, keeping them as length 1 when `keepdims`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(x.sum_axes(&[0], false).to_array(), ndarray::array![4.0, 6.0].into_dyn());
    /// assert_eq!(x.sum_axes(&[1], true).to_array(), ndarray::array![[3.0], [7.0]].into_dyn());
    /// ```
    pub fn sum_axes / try_sum_axes(self, axes: &[usize], keepdims: bool) -> Self {
        let axes = sorted_axes("sum", axes, self.ndim())?;
        try_apply(SumAxes { axes, keepdims }, [self])
    }

    /// The mean of all elements.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 2.0, 6.0]);
    /// assert_eq!(x.mean().scalar(), 3.0);
    /// ```
    #[track_caller]
    pub fn mean(self) -> Self {
        let n = self.shape().iter().product::<usize>();
        crate::ops::binary::div_scalar(self.sum(), F::of(n as f64))
    }

    /// The mean over `axes`, keeping them as length 1 when `keepdims`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(x.mean_axes(&[0], false).to_array(), ndarray::array![2.0, 3.0].into_dyn());
    /// ```
    pub fn mean_axes / try_mean_axes(self, axes: &[usize], keepdims: bool) -> Self {
        sorted_axes("mean_axes", axes, self.ndim())?;
        let shape = self.shape();
        let n: usize = axes.iter().map(|&a| shape.get(a).copied().unwrap_or(1)).product();
        Ok(crate::ops::binary::div_scalar(self.try_sum_axes(axes, keepdims)?, F::of(n as f64)))
    }

    /// The largest element. Ties split the gradient evenly.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 3.0, 3.0]);
    /// let m = x.max();
    /// assert_eq!(m.scalar(), 3.0);
    /// assert_eq!(m.backward()[x].to_array().into_raw_vec_and_offset().0, vec![0.0, 0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn max(self) -> Self {
        let axes: Shape = (0..self.ndim()).collect();
        apply(Extremum { axes, keepdims: false, is_max: true }, [self])
    }

    /// The smallest element. Ties split the gradient evenly.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.var(vec![1.0, -3.0]).min().scalar(), -3.0);
    /// ```
    #[track_caller]
    pub fn min(self) -> Self {
        let axes: Shape = (0..self.ndim()).collect();
        apply(Extremum { axes, keepdims: false, is_max: false }, [self])
    }

    /// The maximum along `axis`. Ties split the gradient evenly.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 5.0], [7.0, 2.0]]);
    /// assert_eq!(x.max_axis(1, false).to_array(), ndarray::array![5.0, 7.0].into_dyn());
    /// ```
    pub fn max_axis / try_max_axis(self, axis: usize, keepdims: bool) -> Self {
        try_apply(Extremum { axes: Shape::from_slice(&[axis]), keepdims, is_max: true }, [self])
    }

    /// The minimum along `axis`. Ties split the gradient evenly.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 5.0], [7.0, 2.0]]);
    /// assert_eq!(x.min_axis(0, true).to_array(), ndarray::array![[1.0, 2.0]].into_dyn());
    /// ```
    pub fn min_axis / try_min_axis(self, axis: usize, keepdims: bool) -> Self {
        try_apply(Extremum { axes: Shape::from_slice(&[axis]), keepdims, is_max: false }, [self])
    }

    /// `ln Σ eˣ` along `axis`, computed without overflow.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1000.0, 1000.0]);
    /// assert!((x.logsumexp(0, false).scalar() - (1000.0 + 2f64.ln())).abs() < 1e-9);
    /// ```
    pub fn logsumexp / try_logsumexp(self, axis: usize, keepdims: bool) -> Self {
        try_apply(LogSumExp { axis, keepdims }, [self])
    }

    /// `eˣ / Σ eˣ` along `axis`, computed without overflow.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1000.0, 1000.0]);
    /// assert_eq!(x.softmax(0).to_array().into_raw_vec_and_offset().0, vec![0.5, 0.5]);
    /// ```
    pub fn softmax / try_softmax(self, axis: usize) -> Self {
        try_apply(Softmax(axis), [self])
    }

    /// `ln softmax(x)` along `axis`, computed without taking the log of 0.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let y = tape.var(vec![0.0, -1000.0]).log_softmax(0).to_array();
    /// assert_eq!(y[[1]], -1000.0);
    /// ```
    pub fn log_softmax / try_log_softmax(self, axis: usize) -> Self {
        try_apply(LogSoftmax(axis), [self])
    }

    /// The norm of all elements.
    ///
    /// ```
    /// use tapegrad::{Norm, Tape};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![3.0, -4.0]);
    /// assert_eq!(x.norm(Norm::L1).scalar(), 7.0);
    /// assert_eq!(x.norm(Norm::L2).scalar(), 5.0);
    /// assert_eq!(x.norm(Norm::Inf).scalar(), 4.0);
    /// assert!((x.norm(Norm::P(3.0)).scalar() - 91f64.cbrt()).abs() < 1e-12);
    /// ```
    pub fn norm / try_norm(self, p: Norm) -> Self {
        let axes: Shape = (0..self.ndim()).collect();
        self.try_norm_axes(p, &axes, false)
    }

    /// The norm over `axes` (per row of a batch with `&[1]`).
    ///
    /// ```
    /// use tapegrad::{Norm, Tape};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[3.0, 4.0], [6.0, 8.0]]);
    /// assert_eq!(x.norm_axes(Norm::L2, &[1], false).to_array(), ndarray::array![5.0, 10.0].into_dyn());
    /// ```
    pub fn norm_axes / try_norm_axes(self, p: Norm, axes: &[usize], keepdims: bool) -> Self {
        let axes = sorted_axes("norm", axes, self.ndim())?;
        let p = if p == Norm::P(f64::INFINITY) { Norm::Inf } else { p };
        Ok(match p {
            Norm::P(p) if p.is_nan() || p < 1.0 => {
                return Err(Error::argument("norm", format!("p = {p}; expected p ≥ 1")));
            }
            Norm::L1 => self.abs().try_sum_axes(&axes, keepdims)?,
            Norm::Inf => try_apply(Extremum { axes, keepdims, is_max: true }, [self.abs()])?,
            // the norm of no values is 0 (and there is no largest magnitude to scale by)
            Norm::L2 | Norm::P(_) if self.shape().contains(&0) => self.try_sum_axes(&axes, keepdims)?,
            // NOTE: ‖x‖ = m·‖x/m‖ with m the largest |x|, held constant (as logsumexp's shift): no
            // power overflows or underflows, and the gradient is the norm's own. √ and the p-th
            // root have no gradient at 0; the mask makes the gradient of the zero vector 0.
            Norm::L2 | Norm::P(_) => {
                let abs = self.abs();
                let largest = Extremum { axes: axes.clone(), keepdims: true, is_max: true };
                let largest = try_apply(largest, [abs])?;
                let m = largest.map_constant(|m| if m > F::zero() && m.is_finite() { m } else { F::one() });
                let scaled = abs / m;
                let powers = if let Norm::P(p) = p { scaled.powf(F::of(p)) } else { scaled.square() };
                let sum = powers.try_sum_axes(&axes, keepdims)?;
                let zero = sum.map_constant(|s| if s == F::zero() { F::one() } else { F::zero() });
                let shape = sum.shape();
                let nonzero = sum + zero;
                let root = if let Norm::P(p) = p { nonzero.powf(F::of(1.0 / p)) } else { nonzero.sqrt() };
                (root - zero) * m.try_reshape(&shape)?
            }
        })
    }

    /// The distance `‖a − b‖` in the given norm (shapes broadcast).
    ///
    /// ```
    /// use tapegrad::{Norm, Tape};
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(vec![1.0, 1.0]), tape.var(vec![4.0, 5.0]));
    /// assert_eq!(a.distance(b, Norm::L2).scalar(), 5.0);
    /// assert_eq!(a.distance(b, Norm::L1).scalar(), 7.0);
    /// ```
    pub fn distance / try_distance(self, other: Self, p: Norm) -> Self {
        let diff = try_apply(crate::ops::binary::Sub, [self, other])?;
        diff.try_norm(p)
    }
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![
        crate::case!("sum", axes_and_keepdims(ANY), |x, p| x[0].sum_axes(&p.ints[1..], p.ints[0] == 1)),
        crate::case!("sum_all", unary(ANY), |x, _p| x[0].sum()),
        crate::case!("mean", axes_and_keepdims(ANY), |x, p| x[0].mean_axes(&p.ints[1..], p.ints[0] == 1)),
        crate::case!("max", distinct_with_axes(), |x, p| {
            apply(
                Extremum { axes: Shape::from_slice(&p.ints[1..]), keepdims: p.ints[0] == 1, is_max: true },
                [x[0]],
            )
        }),
        crate::case!("min", distinct_with_axes(), |x, p| {
            apply(
                Extremum { axes: Shape::from_slice(&p.ints[1..]), keepdims: p.ints[0] == 1, is_max: false },
                [x[0]],
            )
        }),
        crate::case!("cumsum", axes_and_keepdims(ANY), |x, p| x[0].cumsum(p.ints[1])),
        crate::case!("logsumexp", axes_and_keepdims(WIDE), |x, p| x[0].logsumexp(p.ints[1], p.ints[0] == 1)),
        crate::case!("softmax", axes_and_keepdims(WIDE), |x, p| x[0].softmax(p.ints[1])),
        crate::case!("log_softmax", axes_and_keepdims(WIDE), |x, p| x[0].log_softmax(p.ints[1])),
        crate::case!("norm_l1", axes_and_keepdims(NONZERO), |x, p| x[0].norm_axes(
            Norm::L1,
            &p.ints[1..],
            p.ints[0] == 1
        )),
        crate::case!("norm_l2", axes_and_keepdims(NONZERO), |x, p| x[0].norm_axes(
            Norm::L2,
            &p.ints[1..],
            p.ints[0] == 1
        )),
        crate::case!("norm_inf", distinct_with_axes(), |x, p| x[0].norm_axes(
            Norm::Inf,
            &p.ints[1..],
            p.ints[0] == 1
        )),
        crate::case!("norm_p", axes_and_keepdims(NONZERO), |x, p| x[0].norm_axes(
            Norm::P(1.0 + p.scalar.abs()),
            &p.ints[1..],
            p.ints[0] == 1
        )),
        crate::case!("distance", binary(GRID, GRID_SHIFTED), |x, _p| x[0].distance(x[1], Norm::L2)),
    ]
}

#[cfg(test)]
mod tests {
    use crate::{Norm, Tape};

    #[test]
    fn softmax_of_huge_equal_logits_is_uniform() {
        let tape = Tape::<f32>::new();
        let x = tape.var(ndarray::array![[1000.0, 1000.0], [-1000.0, -1000.0]]);
        let y = x.softmax(1).to_array();
        assert!(y.iter().all(|&v| v == 0.5), "{y}");
        let l = x.log_softmax(1).to_array();
        assert!(l.iter().all(|&v| (v + std::f32::consts::LN_2).abs() < 1e-6), "{l}");
    }

    #[test]
    fn logsumexp_of_minus_infinity_is_minus_infinity() {
        let tape = Tape::<f64>::new();
        let x = tape.var(vec![f64::NEG_INFINITY, f64::NEG_INFINITY]);
        assert_eq!(x.logsumexp(0, false).scalar(), f64::NEG_INFINITY);
    }

    #[test]
    fn max_ties_split_the_gradient_evenly() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ndarray::array![[2.0, 2.0, 1.0], [0.0, 3.0, 3.0]]);
        let g = x.max_axis(1, false).sum().backward();
        assert_eq!(g[x].to_array(), ndarray::array![[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]].into_dyn());
    }

    /// NumPy's `max`/`min` and PyTorch's return NaN for values containing NaN, and so does the
    /// ∞-norm; the gradient goes to the NaN entries, as in PyTorch.
    #[test]
    fn max_min_and_the_inf_norm_propagate_nan() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ndarray::array![[1.0, f64::NAN, -3.0], [4.0, 5.0, -6.0]]);
        assert!(x.max().scalar().is_nan() && x.min().scalar().is_nan());
        assert!(x.norm(Norm::Inf).scalar().is_nan());
        let rows = [x.max_axis(1, false), x.min_axis(1, false), x.norm_axes(Norm::Inf, &[1], false)];
        for (y, second) in rows.into_iter().zip([5.0, -6.0, 6.0]) {
            let v = y.to_array();
            assert!(v[0].is_nan() && v[1] == second, "{v}");
        }
        let columns = x.max_axis(0, false).to_array();
        assert!(columns[1].is_nan() && columns[0] == 4.0 && columns[2] == -3.0, "{columns}");
        let g = x.max_axis(1, false).sum().backward()[x].to_array();
        assert_eq!(g, ndarray::array![[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]].into_dyn());
        let g = x.norm_axes(Norm::Inf, &[1], false).sum().backward()[x].to_array();
        assert!(g[[0, 1]].is_nan(), "{g}"); // d|x|/dx at NaN is sign(NaN), NaN
        assert_eq!(
            g.index_axis(ndarray::Axis(0), 1).iter().copied().collect::<Vec<_>>(),
            vec![0.0, 0.0, -1.0]
        );
    }

    /// Reducing an axis of length 0 gives an empty result when the other axes leave nothing
    /// (NumPy: `np.zeros((0, 3)).max(axis=1)` has shape `(0,)`); otherwise each result would be
    /// the maximum of no values, which NumPy and PyTorch refuse too.
    #[test]
    fn max_and_min_over_an_empty_axis() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[0, 3])));
        let y = x.max_axis(1, false);
        assert_eq!(y.shape().as_slice(), &[0]);
        assert_eq!(x.min_axis(1, true).shape().as_slice(), &[0, 1]);
        assert_eq!(y.sum().backward()[x].shape(), &[0, 3]);
        let e = x.try_max_axis(0, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "max: axis 0 of shape [0, 3] has length 0, and the maximum of no values is undefined (the \
             result would have shape [3]; only an empty result may come from an empty axis)"
        );
        let e = tape.var(ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[2, 0]))).try_min_axis(1, true);
        let e = e.unwrap_err().to_string();
        assert!(
            e.starts_with("min: axis 1 of shape [2, 0] has length 0, and the minimum of no values"),
            "{e}"
        );
        assert!(e.contains("the result would have shape [2, 1]"), "{e}");
    }

    #[test]
    fn l2_norm_of_zero_has_zero_gradient() {
        let tape = Tape::<f64>::new();
        let x = tape.var(vec![0.0, 0.0]);
        let n = x.norm(Norm::L2);
        assert_eq!(n.scalar(), 0.0);
        assert_eq!(n.backward()[x].to_array().into_raw_vec_and_offset().0, vec![0.0, 0.0]);
    }

    #[test]
    fn p_norm_of_order_infinity_is_the_inf_norm() {
        let tape = Tape::<f64>::new();
        let x = tape.var(vec![2.0, -3.0]);
        // ‖[2, −3]‖_∞ = max(|2|, |−3|) = 3, the gradient sign(−3) at the largest entry
        let n = x.norm(Norm::P(f64::INFINITY));
        assert_eq!(n.scalar(), 3.0);
        assert_eq!(n.backward()[x].to_array().into_raw_vec_and_offset().0, vec![0.0, -1.0]);
    }

    #[test]
    fn p_norms_of_large_orders_do_not_overflow() {
        let tape = Tape::<f64>::new();
        let x = tape.var(vec![3.0, 4.0]);
        // ‖[3, 4]‖₁₀₀₀ = (3¹⁰⁰⁰ + 4¹⁰⁰⁰)^(1/1000) = 4·(1 + 0.75¹⁰⁰⁰)^(1/1000)
        //             = 4 + 4.606e-128 (to 200 digits), which is 4 in f64; 4¹⁰⁰⁰ alone overflows.
        let n = x.norm(Norm::P(1000.0));
        assert_eq!(n.scalar(), 4.0);
        // ∂‖x‖/∂xᵢ = (|xᵢ|/‖x‖)^(p−1)·sign(xᵢ): 0.75⁹⁹⁹ and 1
        let g = n.backward()[x].to_array();
        assert!((g[0] / 0.75f64.powi(999) - 1.0).abs() < 1e-12 && g[1] == 1.0, "{g}");
    }

    #[test]
    fn two_norms_of_huge_and_tiny_values_neither_overflow_nor_underflow() {
        let tape = Tape::<f32>::new();
        // squares of 1e30 overflow f32 (max 3.4e38) and squares of 1e-30 underflow to 0; each row
        // is scaled by its own largest magnitude
        let x = tape.var(ndarray::array![[1e30f32, -1e30], [1e-30, 1e-30]]);
        let expected = [std::f32::consts::SQRT_2 * 1e30, std::f32::consts::SQRT_2 * 1e-30];
        for p in [Norm::L2, Norm::P(2.0)] {
            let n = x.norm_axes(p, &[1], false);
            let v = n.to_array();
            for (v, e) in v.iter().zip(expected) {
                assert!((v / e - 1.0).abs() < 1e-6, "{p:?}: {v} vs {e}");
            }
            // ∂‖x‖/∂xᵢ = xᵢ/‖x‖ = ±1/√2
            let g = n.sum().backward()[x].to_array();
            for (g, sign) in g.iter().zip([1.0, -1.0, 1.0, 1.0]) {
                assert!((g * sign - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6, "{p:?}: {g}");
            }
        }
    }

    #[test]
    fn norms_of_no_values_are_zero() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[2, 0])));
        for p in [Norm::L1, Norm::L2, Norm::P(3.0)] {
            assert_eq!(x.norm(p).scalar(), 0.0);
            assert_eq!(x.norm_axes(p, &[1], false).to_array(), ndarray::array![0.0, 0.0].into_dyn());
        }
    }

    #[test]
    fn bad_axes_and_norm_orders_are_reported() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ndarray::array![[1.0, 2.0]]);
        let e = x.try_sum_axes(&[2], false).unwrap_err().to_string();
        assert_eq!(e, "sum: axis 2 is out of range for a value of rank 2 (axes 0..2)");
        // mean_axes is a sum and a division, but its errors name it
        let e = x.try_mean_axes(&[2], false).unwrap_err().to_string();
        assert_eq!(e, "mean_axes: axis 2 is out of range for a value of rank 2 (axes 0..2)");
        let e = x.try_mean_axes(&[1, 1], true).unwrap_err().to_string();
        assert_eq!(e, "mean_axes: axis listed twice in [1, 1]");
        let e = x.try_norm(Norm::P(0.5)).unwrap_err().to_string();
        assert_eq!(e, "norm: p = 0.5; expected p ≥ 1");
        let e = x.try_norm(Norm::P(f64::NAN)).unwrap_err().to_string();
        assert_eq!(e, "norm: p = NaN; expected p ≥ 1");
    }
}
