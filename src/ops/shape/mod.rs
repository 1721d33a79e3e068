//! Shape: reshape, permute, transpose, squeeze and unsqueeze, flatten, broadcasting and its
//! inverse `sum_to`; and, in the files beside this one, slicing (`slice.rs`), indexing by
//! position (`index.rs`: select, take, gather, embedding, rows) and joining (`join.rs`:
//! where_cond, concat, stack).
//!
//! Each indexing op's backward is itself an op whose backward is the original (slice ↔ pad,
//! select ↔ index-add, take ↔ put-add), so every derivative order is available.

mod index;
mod join;
mod slice;

pub use index::{Embedding, IndexAdd, Indices, PutAdd, Select, Take};
pub use join::{Concat, WhereCond, concat, stack, try_concat, try_stack, where_cond};
pub use slice::{Slice, SliceGrad};

use ndarray::IxDyn;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::ops::{check_axis, try_apply};
use crate::tape::Var;
use crate::tape::op::{Context, Grads, Op};
use crate::value::{Shape, Value, broadcast_shape};

/// Sums over broadcast axes so that the result has `shape`: the inverse of broadcasting.
#[derive(Debug, Clone)]
pub struct SumTo(pub Shape);

impl<F: Float> Op<F> for SumTo {
    fn name(&self) -> &'static str {
        "sum_to"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        sum_to(x[0], &self.0)
    }
    // dx = broadcast_to(gy, shape(x))
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![gy.broadcast_to(&cx.input_shape(0))]
    }
}

fn sum_to<F: Float>(x: &Value<F>, shape: &[usize]) -> Result<Value<F>> {
    let from = x.shape();
    if from == shape {
        return Ok(x.clone());
    }
    if broadcast_shape(from, shape).as_deref() != Some(from) {
        return Err(Error::shape(
            "sum_to",
            &[from, shape],
            "a target shape that broadcasts to the value's shape",
        ));
    }
    let lead = from.len() - shape.len();
    let leading: Shape = (0..lead).collect();
    if shape.iter().all(|&n| n != 1)
        && let Some(sum) = crate::kernels::sum::sum_leading_axes(&x.view(), &leading, false)
    {
        return Ok(Value::from(sum));
    }
    let axes = (0..from.len()).rev().filter_map(|axis| match axis.checked_sub(lead) {
        None => Some((axis, false)),
        Some(a) => (shape[a] == 1 && from[axis] != 1).then_some((axis, true)),
    });
    Ok(Value::from(crate::ops::reduce::reduce_axes(x.view(), axes, |v, axis| v.sum_axis(axis))))
}

/// Repeats the value along axes of length 1 (and new leading axes) to reach a shape.
#[derive(Debug, Clone)]
pub struct BroadcastTo(pub Shape);

impl<F: Float> Op<F> for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let len = buffers::elements::<F>("broadcast_to", &self.0)?;
        // NOTE: ndarray's `to_owned` copies a broadcast view by whole rows; an element iterator
        // over it was most of the CBOW step (`cargo bench --bench cbow_step`), so the room is checked
        // first and the copy left to ndarray.
        buffers::check_room::<F>("broadcast_to", len)?;
        match x[0] {
            Value::Scalar(s) if self.0.is_empty() => Ok(Value::Scalar(*s)),
            Value::Scalar(s) => Ok(Value::full(&self.0, *s)),
            Value::Array(a) => match a.broadcast(IxDyn(&self.0)) {
                Some(b) => Ok(Value::from(b.to_owned())),
                None => Err(Error::shape(
                    "broadcast_to",
                    &[a.shape(), &self.0],
                    "a target shape the value broadcasts to (each axis equal, or 1 in the value)",
                )),
            },
        }
    }
    // dx = sum_to(gy, shape(x))
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![gy.sum_to(&cx.input_shape(0))]
    }
}

/// The same elements in a new shape (row-major order).
#[derive(Debug, Clone)]
pub struct Reshape(pub Shape);

impl<F: Float> Op<F> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (from, to) = (x[0].shape(), self.0.as_slice());
        if buffers::elements::<F>("reshape", to)? != x[0].len() {
            let expected = format!("a shape with the same number of elements ({})", x[0].len());
            return Err(Error::shape("reshape", &[from, to], expected));
        }
        let view = x[0].view();
        let mut out = buffers::buffer(view.len());
        match view.as_slice() {
            Some(values) => out.extend_from_slice(values),
            None => out.extend(view.iter().copied()),
        }
        Ok(Value::from_buffer(to, out))
    }
    // dx = reshape(gy, shape(x))
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![gy.reshape(&cx.input_shape(0))]
    }
}

/// Reorders the axes: output axis `i` is input axis `axes[i]`.
#[derive(Debug, Clone)]
pub struct Permute(pub Shape);

impl<F: Float> Op<F> for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let ndim = x[0].ndim();
        let mut seen = vec![false; ndim];
        let valid = self.0.len() == ndim
            && self.0.iter().all(|&a| a < ndim && !std::mem::replace(&mut seen[a], true));
        if !valid {
            let message =
                format!("axes {:?} are not a permutation of 0..{ndim} for shape {:?}", self.0, x[0].shape());
            return Err(Error::argument("permute", message));
        }
        let view = x[0].view().permuted_axes(IxDyn(&self.0));
        let mut out = buffers::buffer(view.len());
        out.extend(view.iter().copied());
        Ok(Value::from_buffer(view.shape(), out))
    }
    // dx = permute(gy, inverse(axes))
    fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let mut inverse = self.0.clone();
        for (i, &a) in self.0.iter().enumerate() {
            inverse[a] = i;
        }
        crate::grads![gy.permute(&inverse)]
    }
}

var_methods! {
    /// Sums over broadcast axes so the result has `shape` (leading axes dropped, axes of
    /// length 1 in `shape` summed): how every binary op undoes broadcasting in its gradient.
    /// Returns `self` unchanged when the shape already matches.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(x.sum_to(&[1, 2]).to_array(), ndarray::array![[4.0, 6.0]].into_dyn());
    /// assert_eq!(x.sum_to(&[]).scalar(), 10.0);
    /// ```
    pub fn sum_to / try_sum_to(self, shape: &[usize]) -> Self {
        if self.shape().as_slice() == shape {
            return Ok(self);
        }
        try_apply(SumTo(Shape::from_slice(shape)), [self])
    }

    /// Repeats the value to `shape` by NumPy broadcasting; `self` unchanged when it matches.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 2.0]);
    /// let y = x.broadcast_to(&[3, 2]);
    /// assert_eq!(y.shape().as_slice(), &[3, 2]);
    /// assert_eq!(y.sum().backward()[x].to_array().into_raw_vec_and_offset().0, vec![3.0, 3.0]);
    /// ```
    pub fn broadcast_to / try_broadcast_to(self, shape: &[usize]) -> Self {
        if self.shape().as_slice() == shape {
            return Ok(self);
        }
        try_apply(BroadcastTo(Shape::from_slice(shape)), [self])
    }

    /// The same elements in a new shape, read in row-major order.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// assert_eq!(x.reshape(&[2, 3]).to_array(), ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    /// assert!(x.try_reshape(&[4, 2]).is_err());
    /// ```
    pub fn reshape / try_reshape(self, shape: &[usize]) -> Self {
        if self.shape().as_slice() == shape {
            return Ok(self);
        }
        try_apply(Reshape(Shape::from_slice(shape)), [self])
    }

    /// Reorders the axes: output axis `i` is input axis `axes[i]`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::Array3::<f64>::zeros((2, 3, 4)));
    /// assert_eq!(x.permute(&[2, 0, 1]).shape().as_slice(), &[4, 2, 3]);
    /// ```
    pub fn permute / try_permute(self, axes: &[usize]) -> Self {
        try_apply(Permute(Shape::from_slice(axes)), [self])
    }

    /// Reverses the axes (NumPy's `.T`): the matrix transpose for 2-D values.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0, 3.0]]);
    /// assert_eq!(x.transpose().to_array(), ndarray::array![[1.0], [2.0], [3.0]].into_dyn());
    /// ```
    #[track_caller]
    pub fn transpose(self) -> Self {
        let axes: Shape = (0..self.ndim()).rev().collect();
        self.permute(&axes)
    }

    /// Swaps two axes.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::Array3::<f64>::zeros((2, 3, 4)));
    /// assert_eq!(x.swap_axes(1, 2).shape().as_slice(), &[2, 4, 3]);
    /// ```
    pub fn swap_axes / try_swap_axes(self, a: usize, b: usize) -> Self {
        let ndim = self.ndim();
        check_axis("swap_axes", a.max(b), ndim)?;
        let mut axes: Shape = (0..ndim).collect();
        axes.swap(a, b);
        self.try_permute(&axes)
    }

    /// Removes an axis of length 1.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::Array3::<f64>::zeros((2, 1, 4)));
    /// assert_eq!(x.squeeze(1).shape().as_slice(), &[2, 4]);
    /// assert!(x.try_squeeze(0).is_err());
    /// ```
    pub fn squeeze / try_squeeze(self, axis: usize) -> Self {
        let mut shape = self.shape();
        check_axis("squeeze", axis, shape.len())?;
        if shape[axis] != 1 {
            let message = format!("axis {axis} has length {}, expected 1 (shape {shape:?})", shape[axis]);
            return Err(Error::argument("squeeze", message));
        }
        shape.remove(axis);
        self.try_reshape(&shape)
    }

    /// Inserts an axis of length 1 at position `axis` (`0..=ndim`).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 2.0]);
    /// assert_eq!(x.unsqueeze(0).shape().as_slice(), &[1, 2]);
    /// assert_eq!(x.unsqueeze(1).shape().as_slice(), &[2, 1]);
    /// ```
    pub fn unsqueeze / try_unsqueeze(self, axis: usize) -> Self {
        let mut shape = self.shape();
        check_axis("unsqueeze", axis, shape.len() + 1)?;
        shape.insert(axis, 1);
        self.try_reshape(&shape)
    }

    /// Merges the axes from `start` on into one (PyTorch's `flatten(x, start_dim)`): an image
    /// batch `[N, C, H, W]` flattened from 1 is `[N, C·H·W]`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::Array4::<f64>::zeros((2, 3, 4, 5)));
    /// assert_eq!(x.flatten(1).shape().as_slice(), &[2, 60]);
    /// assert_eq!(x.flatten(0).shape().as_slice(), &[120]);
    /// ```
    pub fn flatten / try_flatten(self, start: usize) -> Self {
        let shape = self.shape();
        if start >= shape.len().max(1) {
            let message = format!("start axis {start} is out of range for shape {:?}", shape.as_slice());
            return Err(Error::argument("flatten", message));
        }
        let mut merged: Vec<usize> = shape[..start].to_vec();
        merged.push(shape[start..].iter().product());
        self.try_reshape(&merged)
    }
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::apply;
    use crate::ops::cases::*;
    use proptest::prelude::*;
    let mut cases = vec![
        crate::case!("sum_to", broadcast_source(ANY), |x, p| apply(
            SumTo(Shape::from_slice(&p.ints)),
            [x[0]]
        )),
        crate::case!("broadcast_to", broadcast_source(ANY).prop_map(Sample::swap_shape), |x, p| {
            apply(BroadcastTo(Shape::from_slice(&p.ints)), [x[0]])
        }),
        crate::case!("reshape", unary(ANY), |x, _p| {
            let n = x[0].shape().iter().product::<usize>();
            apply(Reshape(Shape::from_slice(&[n])), [x[0]]).reshape(&x[0].shape())
        }),
        crate::case!("permute", permutation(ANY), |x, p| apply(Permute(Shape::from_slice(&p.ints)), [x[0]])),
    ];
    cases.extend(slice::cases());
    cases.extend(index::cases());
    cases.extend(join::cases());
    cases
}
