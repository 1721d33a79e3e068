//! Slicing: `slice` (ndarray's `s![..]`) and `narrow`, and the gradient that places a slice
//! back into zeros of its input's shape. A slice whose input already has a gradient adds into
//! it in place (its `fast_backward`), so the many steps an LSTM cuts from one sequence's gates
//! share one gradient buffer.

use std::rc::Rc;

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::ops::{apply, check_axis, try_apply};
use crate::tape::Var;
use crate::tape::op::{Context, FastBackward, Grads, Op};
use crate::value::{Shape, Value};

/// The elements selected by per-axis slices (ndarray's `s![..]`).
#[derive(Debug, Clone)]
pub struct Slice(pub Rc<[SliceInfoElem]>);

impl<F: Float> Op<F> for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_slice(&self.0, x[0].shape())?;
        Ok(Value::from(x[0].view().slice(&*self.0).to_owned()))
    }
    // dx = gy placed into zeros of shape(x)
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![apply(SliceGrad(self.0.clone(), cx.input_shape(0)), [gy])]
    }
    // dx += gy at the slice, in place, when x already has a gradient: many slices of one value
    // (an LSTM's steps cut from its whole sequence's gates) add into one buffer, instead of each
    // making a gradient of the whole value's size
    fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
        let gy = fast.gy();
        let Some(acc) = fast.gradient_so_far(0).filter(|_| matches!(gy, Value::Array(_))) else {
            return false;
        };
        let mut acc = acc.view_mut();
        let mut target = acc.slice_mut(&*self.0);
        target += &gy.view();
        true
    }
}

/// Places a value into zeros of a larger shape at a slice: the gradient of [`Slice`].
#[derive(Debug, Clone)]
pub struct SliceGrad(pub Rc<[SliceInfoElem]>, pub Shape);

impl<F: Float> Op<F> for SliceGrad {
    fn name(&self) -> &'static str {
        "slice_grad"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_slice(&self.0, &self.1)?;
        // zeros from the recycled buffers: an LSTM's step takes its gates from the whole
        // sequence's, so its backward makes one such gradient per step, which freshly allocated
        // would also crowd the larger recycled buffers out of the pool
        let zeros = buffers::zeros(self.1.iter().product());
        let mut out = ArrayD::from_shape_vec(IxDyn(&self.1), zeros).expect("one zero per element");
        let mut target = out.slice_mut(&*self.0);
        if target.shape() != x[0].shape() {
            return Err(Error::shape("slice_grad", &[x[0].shape(), target.shape()], "the slice's shape"));
        }
        target.assign(&x[0].view());
        Ok(Value::from(out))
    }
    // dx = slice(gy)
    fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![apply(Slice(self.0.clone()), [gy])]
    }
}

/// Checks slice elements against a shape, the way NumPy reads them (negative indices count from
/// the end); ndarray would panic on what this reports.
fn check_slice(elems: &[SliceInfoElem], shape: &[usize]) -> Result<()> {
    let axes = elems.iter().filter(|e| !matches!(e, SliceInfoElem::NewAxis)).count();
    if axes != shape.len() {
        let message =
            format!("{axes} slice entries for shape {shape:?}; expected one per axis ({})", shape.len());
        return Err(Error::argument("slice", message));
    }
    let mut axis = 0;
    for elem in elems {
        let len = shape.get(axis).copied().unwrap_or(0) as isize;
        let in_range = |i: isize, hi: isize| -len <= i && i <= hi;
        let ok = match *elem {
            SliceInfoElem::NewAxis => continue,
            SliceInfoElem::Index(i) => in_range(i, len - 1),
            SliceInfoElem::Slice { start, end, step } => {
                step != 0 && in_range(start, len) && end.is_none_or(|e| in_range(e, len))
            }
        };
        if !ok {
            let message =
                format!("{elem:?} is out of range for axis {axis} of length {len} (shape {shape:?})");
            return Err(Error::argument("slice", message));
        }
        axis += 1;
    }
    Ok(())
}

var_methods! {
    /// Slices with one entry per axis, NumPy-style, written with [`s!`](crate::s): the NumPy
    /// `a[:2, 1:]` is `a.slice(s![..2, 1..])`. Steps, negative indices, single indices (which
    /// drop the axis) and new axes are supported.
    ///
    /// ```
    /// use tapegrad::{s, Tape};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]);
    /// let b = a.slice(s![..2, 1..]);
    /// assert_eq!(b.to_array(), ndarray::array![[2.0, 3.0], [5.0, 6.0]].into_dyn());
    /// let g = b.sum().backward();
    /// assert_eq!(g[a].to_array(), ndarray::array![[0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]].into_dyn());
    /// ```
    pub fn slice / try_slice(self, info: impl AsRef<[SliceInfoElem]>) -> Self {
        try_apply(Slice(info.as_ref().into()), [self])
    }

    /// `len` entries along `axis` starting at `start`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 2.0, 3.0, 4.0]);
    /// assert_eq!(x.narrow(0, 1, 2).to_array().into_raw_vec_and_offset().0, vec![2.0, 3.0]);
    /// ```
    pub fn narrow / try_narrow(self, axis: usize, start: usize, len: usize) -> Self {
        let shape = self.shape();
        let ndim = shape.len();
        check_axis("narrow", axis, ndim)?;
        // every axis length is at most isize::MAX, so the ends convert below
        if start.checked_add(len).is_none_or(|end| end > shape[axis]) {
            let message = format!(
                "start {start} and length {len} reach past axis {axis} of length {} (shape {:?}); expected \
                 start + length ≤ {}",
                shape[axis],
                shape.as_slice(),
                shape[axis]
            );
            return Err(Error::argument("narrow", message));
        }
        let full = SliceInfoElem::Slice { start: 0, end: None, step: 1 };
        let mut elems: SmallVec<[SliceInfoElem; 4]> = SmallVec::from_elem(full, ndim);
        elems[axis] =
            SliceInfoElem::Slice { start: start as isize, end: Some((start + len) as isize), step: 1 };
        self.try_slice(elems)
    }
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![
        crate::case!("slice", slicing(ANY), |x, p| x[0].slice(p.slice())),
        crate::case!("slice_grad", slicing(ANY), |x, p| {
            let elems: Rc<[SliceInfoElem]> = p.slice().into();
            apply(SliceGrad(elems.clone(), x[0].shape()), [apply(Slice(elems), [x[0]])])
        }),
    ]
}
