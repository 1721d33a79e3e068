//! Shape and indexing: reshape, permute, broadcast, `sum_to`, squeeze, flatten, slicing, row
//! selection, flat `take`, `where_cond`, concat and stack.
//!
//! Each indexing op's backward is itself an op whose backward is the original (slice ↔ pad,
//! select ↔ index-add, take ↔ put-add), so every derivative order is available.

use std::rc::Rc;

use ndarray::{ArrayD, Axis, IxDyn, SliceInfoElem};
use smallvec::SmallVec;

use crate::error::or_panic;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::ops::{apply, check_axis, try_apply};
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
        match x[0] {
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
        if from.iter().product::<usize>() != to.iter().product::<usize>() {
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
    // dx += gy at the slice, when x already has a gradient
    fn add_backward_into(&self, gy: &Value<F>, acc: &mut Value<F>) -> bool {
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

/// The entries at `indices` along an axis, in that order (repeats allowed): `a[[2, 0]]`.
#[derive(Debug, Clone)]
pub struct Select {
    /// The axis indexed.
    pub axis: usize,
    /// The positions taken, in order.
    pub indices: Rc<[usize]>,
}

impl<F: Float> Op<F> for Select {
    fn name(&self) -> &'static str {
        "select"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axis("select", self.axis, x[0].ndim())?;
        let len = x[0].shape()[self.axis];
        if let Some(&bad) = self.indices.iter().find(|&&i| i >= len) {
            let message = format!(
                "index {bad} is out of range for axis {} of length {len} (shape {:?})",
                self.axis,
                x[0].shape()
            );
            return Err(Error::argument("select", message));
        }
        Ok(Value::from(x[0].view().select(Axis(self.axis), &self.indices)))
    }
    // dx = index_add(zeros(shape(x)), indices, gy)
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let len = cx.input_shape(0)[self.axis];
        crate::grads![apply(IndexAdd { axis: self.axis, indices: self.indices.clone(), len }, [gy])]
    }
}

/// Adds each entry along an axis into position `indices[k]` of zeros with `len` entries: the
/// gradient of [`Select`].
#[derive(Debug, Clone)]
pub struct IndexAdd {
    /// The axis indexed.
    pub axis: usize,
    /// Where entry `k` goes.
    pub indices: Rc<[usize]>,
    /// The length of the output axis.
    pub len: usize,
}

impl<F: Float> Op<F> for IndexAdd {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_axis("index_add", self.axis, x[0].ndim())?;
        let view = x[0].view();
        if view.shape()[self.axis] != self.indices.len() || self.indices.iter().any(|&i| i >= self.len) {
            let message = format!(
                "{} indices below {} for a value of shape {:?}",
                self.indices.len(),
                self.len,
                view.shape()
            );
            return Err(Error::argument("index_add", message));
        }
        let mut shape = view.shape().to_vec();
        shape[self.axis] = self.len;
        let mut out = ArrayD::zeros(IxDyn(&shape));
        for (k, &i) in self.indices.iter().enumerate() {
            let mut row = out.index_axis_mut(Axis(self.axis), i);
            row += &view.index_axis(Axis(self.axis), k);
        }
        Ok(Value::from(out))
    }
    // dx = select(gy, indices)
    fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![apply(Select { axis: self.axis, indices: self.indices.clone() }, [gy])]
    }
}

/// Flat element positions shared by a gather and its gradients ([`Take`], [`PutAdd`], max
/// pooling). Large ones go back to the thread's recycled buffers when the last op holding them
/// is dropped: max pooling makes one as large as its output every step.
#[derive(Debug, Clone, Default)]
pub struct Indices(Vec<usize>);

impl From<Vec<usize>> for Indices {
    fn from(indices: Vec<usize>) -> Self {
        Indices(indices)
    }
}

impl std::ops::Deref for Indices {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl Drop for Indices {
    fn drop(&mut self) {
        buffers::recycle(std::mem::take(&mut self.0));
    }
}

/// The elements at flat positions `indices` of the input (read in row-major order), as an
/// array of `shape`: NumPy's and PyTorch's `take`. Max pooling is a `take` of each window's
/// largest element.
#[derive(Debug, Clone)]
pub struct Take {
    /// The flat position of each output element.
    pub indices: Rc<Indices>,
    /// The output's shape; its size is the number of indices.
    pub shape: Shape,
}

impl<F: Float> Op<F> for Take {
    fn name(&self) -> &'static str {
        "take"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        check_flat_indices("take", &self.indices, x[0].len(), &self.shape, x[0].shape())?;
        let view = x[0].view();
        let input = view.as_standard_layout();
        let input = input.as_slice().expect("standard layout");
        let mut out = buffers::buffer(self.indices.len());
        out.extend(self.indices.iter().map(|&i| input[i]));
        Ok(Value::from_buffer(&self.shape, out))
    }
    // dx = put_add(gy, indices, shape(x))
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![apply(PutAdd { indices: self.indices.clone(), shape: cx.input_shape(0) }, [gy])]
    }
}

/// Adds input element `k` (row-major) into flat position `indices[k]` of zeros of `shape`: the
/// adjoint of [`Take`], and its gradient.
#[derive(Debug, Clone)]
pub struct PutAdd {
    /// Where each input element goes.
    pub indices: Rc<Indices>,
    /// The output's shape.
    pub shape: Shape,
}

impl<F: Float> Op<F> for PutAdd {
    fn name(&self) -> &'static str {
        "put_add"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let size = self.shape.iter().product();
        check_flat_indices("put_add", &self.indices, size, x[0].shape(), &self.shape)?;
        let view = x[0].view();
        let input = view.as_standard_layout();
        let mut out = buffers::zeros(size);
        for (&i, &v) in self.indices.iter().zip(input.as_slice().expect("standard layout")) {
            out[i] += v;
        }
        Ok(Value::from_buffer(&self.shape, out))
    }
    // dx = take(gy, indices)
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![apply(Take { indices: self.indices.clone(), shape: cx.input_shape(0) }, [gy])]
    }
}

/// An embedding lookup: the rows of a table `[V, …]` that `ids` name (any shape, repeats
/// allowed), as `[ids…, …]`. Its gradient adds each row of `gy` into the row it came from; in
/// a plain backward pass into a leaf table it stays row-sparse ([`SparseRows`]), so a step
/// that touches a thousand of ten thousand rows writes a thousand.
///
/// [`SparseRows`]: crate::SparseRows
#[derive(Debug, Clone)]
pub struct Embedding {
    /// The rows looked up, in order.
    pub ids: Rc<[usize]>,
    /// The shape of `ids`.
    pub shape: Shape,
}

impl Embedding {
    /// The flat positions of the looked-up rows' entries in a table of rows of `width`.
    fn flat(&self, width: usize) -> Vec<usize> {
        self.ids.iter().flat_map(|&id| id * width..(id + 1) * width).collect()
    }
}

impl<F: Float> Op<F> for Embedding {
    fn name(&self) -> &'static str {
        "embedding"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let table = x[0].shape();
        let Some(&rows) = table.first() else {
            return Err(Error::shape("embedding", &[table], "a table [V, …] of rank ≥ 1"));
        };
        if let Some(bad) = self.ids.iter().find(|&&id| id >= rows) {
            let message = format!("id {bad} is out of range for a table of {rows} rows (shape {table:?})");
            return Err(Error::argument("embedding", message));
        }
        let width: usize = table[1..].iter().product();
        let view = x[0].view();
        let values = view.as_standard_layout();
        let values = values.as_slice().expect("standard layout");
        let mut out = buffers::buffer(self.ids.len() * width);
        for &id in self.ids.iter() {
            out.extend_from_slice(&values[id * width..(id + 1) * width]);
        }
        let shape: Vec<usize> = self.shape.iter().chain(&table[1..]).copied().collect();
        Ok(Value::from_buffer(&shape, out))
    }
    // dtable = put_add(gy): each row of gy added into the row it was read from
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let table = cx.input_shape(0);
        let flat = self.flat(table[1..].iter().product());
        crate::grads![apply(PutAdd { indices: Rc::new(flat.into()), shape: table }, [gy])]
    }
    fn sparse_backward(&self, gy: &Value<F>, table: &[usize]) -> Option<crate::SparseRows<F>> {
        let view = gy.view();
        let values = view.as_standard_layout().as_slice().expect("standard layout").to_vec();
        Some(crate::SparseRows::new(table, self.ids.to_vec(), values))
    }
}

/// Checks flat `indices` (one per element of `taken`) against the `len` elements of `from`.
fn check_flat_indices(
    op: &'static str,
    indices: &[usize],
    len: usize,
    taken: &[usize],
    from: &[usize],
) -> Result<()> {
    if indices.len() != taken.iter().product::<usize>() {
        let message = format!(
            "{} indices for {} values of shape {taken:?}",
            indices.len(),
            taken.iter().product::<usize>()
        );
        return Err(Error::argument(op, message));
    }
    match indices.iter().find(|&&i| i >= len) {
        Some(bad) => Err(Error::argument(
            op,
            format!("flat index {bad} is out of range for shape {from:?} ({len} elements)"),
        )),
        None => Ok(()),
    }
}

/// `a` where `cond` is true, `b` elsewhere; all three broadcast together.
#[derive(Debug, Clone)]
pub struct WhereCond(pub Rc<ArrayD<bool>>);

impl<F: Float> Op<F> for WhereCond {
    fn name(&self) -> &'static str {
        "where_cond"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (cond, a, b) = (&*self.0, x[0].view(), x[1].view());
        let shape = broadcast_shape(cond.shape(), a.shape())
            .and_then(|s| broadcast_shape(&s, b.shape()))
            .ok_or_else(|| {
                Error::shape(
                    "where_cond",
                    &[cond.shape(), a.shape(), b.shape()],
                    "shapes that broadcast together",
                )
            })?;
        let dim = IxDyn(&shape);
        let (c, a, b) = (cond.broadcast(dim.clone()), a.broadcast(dim.clone()), b.broadcast(dim));
        let (c, a, b) = (c.expect("checked"), a.expect("checked"), b.expect("checked"));
        Ok(Value::from(
            ndarray::Zip::from(&c).and(&a).and(&b).map_collect(|&c, &a, &b| if c { a } else { b }),
        ))
    }
    // da = where(cond, gy, 0), db = where(cond, 0, gy)
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let zero = cx.tape().constant(F::zero());
        let da = cx.grad_if(0, || apply(self.clone(), [gy, zero]).sum_to(&cx.input_shape(0)));
        let db = cx.grad_if(1, || apply(self.clone(), [zero, gy]).sum_to(&cx.input_shape(1)));
        crate::grads![da, db]
    }
}

/// Joins values along an existing axis.
#[derive(Debug, Clone, Copy)]
pub struct Concat(pub usize);

impl<F: Float> Op<F> for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let views: Vec<_> = x.iter().map(|v| v.view()).collect();
        let shapes: Vec<&[usize]> = x.iter().map(|v| v.shape()).collect();
        check_axis("concat", self.0, shapes[0].len())?;
        let fits = shapes.iter().all(|s| {
            s.len() == shapes[0].len()
                && s.iter().zip(shapes[0]).enumerate().all(|(i, (a, b))| i == self.0 || a == b)
        });
        if !fits {
            let expected = format!("equal ranks and equal lengths on every axis but axis {}", self.0);
            return Err(Error::shape("concat", &shapes, expected));
        }
        let out = ndarray::concatenate(Axis(self.0), &views)
            .map_err(|e| Error::argument("concat", e.to_string()))?;
        Ok(Value::from(out))
    }
    // dxᵢ = gy[.., offsetᵢ..offsetᵢ + lenᵢ, ..]
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let mut start = 0;
        (0..cx.num_inputs())
            .map(|i| {
                let len = cx.input_shape(i)[self.0];
                start += len;
                cx.grad_if(i, || gy.narrow(self.0, start - len, len))
            })
            .collect()
    }
}

impl<'t, F: Float> Var<'t, F> {
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
    #[track_caller]
    pub fn sum_to(self, shape: &[usize]) -> Self {
        or_panic(self.try_sum_to(shape))
    }

    /// Like [`sum_to`](Self::sum_to), returning the error instead of panicking.
    #[track_caller]
    pub fn try_sum_to(self, shape: &[usize]) -> Result<Self> {
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
    #[track_caller]
    pub fn broadcast_to(self, shape: &[usize]) -> Self {
        or_panic(self.try_broadcast_to(shape))
    }

    /// Like [`broadcast_to`](Self::broadcast_to), returning the error instead of panicking.
    #[track_caller]
    pub fn try_broadcast_to(self, shape: &[usize]) -> Result<Self> {
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
    #[track_caller]
    pub fn reshape(self, shape: &[usize]) -> Self {
        or_panic(self.try_reshape(shape))
    }

    /// Like [`reshape`](Self::reshape), returning the error instead of panicking.
    #[track_caller]
    pub fn try_reshape(self, shape: &[usize]) -> Result<Self> {
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
    #[track_caller]
    pub fn permute(self, axes: &[usize]) -> Self {
        or_panic(self.try_permute(axes))
    }

    /// Like [`permute`](Self::permute), returning the error instead of panicking.
    #[track_caller]
    pub fn try_permute(self, axes: &[usize]) -> Result<Self> {
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
    #[track_caller]
    pub fn swap_axes(self, a: usize, b: usize) -> Self {
        or_panic(self.try_swap_axes(a, b))
    }

    /// Like [`swap_axes`](Self::swap_axes), returning the error instead of panicking.
    #[track_caller]
    pub fn try_swap_axes(self, a: usize, b: usize) -> Result<Self> {
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
    #[track_caller]
    pub fn squeeze(self, axis: usize) -> Self {
        or_panic(self.try_squeeze(axis))
    }

    /// Like [`squeeze`](Self::squeeze), returning the error instead of panicking.
    #[track_caller]
    pub fn try_squeeze(self, axis: usize) -> Result<Self> {
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
    #[track_caller]
    pub fn unsqueeze(self, axis: usize) -> Self {
        or_panic(self.try_unsqueeze(axis))
    }

    /// Like [`unsqueeze`](Self::unsqueeze), returning the error instead of panicking.
    #[track_caller]
    pub fn try_unsqueeze(self, axis: usize) -> Result<Self> {
        let mut shape = self.shape();
        check_axis("unsqueeze", axis, shape.len() + 1)?;
        shape.insert(axis, 1);
        self.try_reshape(&shape)
    }

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
    #[track_caller]
    pub fn slice(self, info: impl AsRef<[SliceInfoElem]>) -> Self {
        or_panic(self.try_slice(info))
    }

    /// Like [`slice`](Self::slice), returning the error instead of panicking.
    #[track_caller]
    pub fn try_slice(self, info: impl AsRef<[SliceInfoElem]>) -> Result<Self> {
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
    #[track_caller]
    pub fn narrow(self, axis: usize, start: usize, len: usize) -> Self {
        or_panic(self.try_narrow(axis, start, len))
    }

    /// Like [`narrow`](Self::narrow), returning the error instead of panicking.
    #[track_caller]
    pub fn try_narrow(self, axis: usize, start: usize, len: usize) -> Result<Self> {
        let ndim = self.ndim();
        check_axis("narrow", axis, ndim)?;
        let full = SliceInfoElem::Slice { start: 0, end: None, step: 1 };
        let mut elems: SmallVec<[SliceInfoElem; 4]> = SmallVec::from_elem(full, ndim);
        elems[axis] =
            SliceInfoElem::Slice { start: start as isize, end: Some((start + len) as isize), step: 1 };
        self.try_slice(elems)
    }

    /// The entries at `indices` along `axis`, in that order; repeats allowed.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(x.select(1, &[1, 1]).to_array(), ndarray::array![[2.0, 2.0], [4.0, 4.0]].into_dyn());
    /// ```
    #[track_caller]
    pub fn select(self, axis: usize, indices: &[usize]) -> Self {
        or_panic(self.try_select(axis, indices))
    }

    /// Like [`select`](Self::select), returning the error instead of panicking.
    #[track_caller]
    pub fn try_select(self, axis: usize, indices: &[usize]) -> Result<Self> {
        try_apply(Select { axis, indices: indices.into() }, [self])
    }

    /// The elements at flat (row-major) positions `indices`, as an array of `shape` (NumPy's
    /// and PyTorch's `take`); an element taken twice gets both gradients.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// let b = a.take(&[3, 0, 3], &[3]);
    /// assert_eq!(b.to_array(), ndarray::array![4.0, 1.0, 4.0].into_dyn());
    /// let g = b.sum().backward();
    /// assert_eq!(g[a].to_array(), ndarray::array![[1.0, 0.0], [0.0, 2.0]].into_dyn());
    /// ```
    #[track_caller]
    pub fn take(self, indices: &[usize], shape: &[usize]) -> Self {
        or_panic(self.try_take(indices, shape))
    }

    /// Like [`take`](Self::take), returning the error instead of panicking.
    #[track_caller]
    pub fn try_take(self, indices: &[usize], shape: &[usize]) -> Result<Self> {
        try_apply(Take { indices: Rc::new(indices.to_vec().into()), shape: Shape::from_slice(shape) }, [self])
    }

    /// PyTorch's `gather`: along `axis`, the entries that `index` names; `index` has this
    /// value's rank, no axis longer than this value's (except along `axis`), and the result has
    /// its shape: `out[i][j] = self[i][index[i][j]]` for `axis = 1`. Picking one logit per row
    /// is `logits.gather(1, &labels)` with labels of shape `[N, 1]`. A `take` underneath, so
    /// repeated picks add up their gradients.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// let picked = x.gather(1, &array![[2], [0]].into_dyn());
    /// assert_eq!(picked.to_array(), array![[3.0], [4.0]].into_dyn());
    /// let g = picked.sum().backward();
    /// assert_eq!(g[x].to_array(), array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]].into_dyn());
    /// ```
    #[track_caller]
    pub fn gather(self, axis: usize, index: &ArrayD<usize>) -> Self {
        or_panic(self.try_gather(axis, index))
    }

    /// Like [`gather`](Self::gather), returning the error instead of panicking.
    #[track_caller]
    pub fn try_gather(self, axis: usize, index: &ArrayD<usize>) -> Result<Self> {
        let shape = self.shape();
        check_axis("gather", axis, shape.len())?;
        let fits = index.ndim() == shape.len()
            && index.shape().iter().zip(&shape).enumerate().all(|(a, (&i, &n))| a == axis || i <= n);
        if !fits {
            let expected =
                format!("an index of the same rank, no longer than the value along any axis but {axis}");
            return Err(Error::shape("gather", &[&shape, index.shape()], expected));
        }
        if let Some(bad) = index.iter().find(|&&i| i >= shape[axis]) {
            let message = format!(
                "index {bad} is out of range for axis {axis} of length {} (shape {shape:?})",
                shape[axis]
            );
            return Err(Error::argument("gather", message));
        }
        // the row-major strides of this value, and each index entry's flat position
        let mut strides = vec![1; shape.len()];
        for a in (0..shape.len().saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * shape[a + 1];
        }
        let flat: Vec<usize> = index
            .indexed_iter()
            .map(|(at, &i)| (0..shape.len()).map(|a| if a == axis { i } else { at[a] } * strides[a]).sum())
            .collect();
        self.try_take(&flat, index.shape())
    }

    /// An embedding lookup on this table `[V, …]`: the rows `ids` names, as `[ids…, …]`
    /// (PyTorch's `F.embedding(ids, table)`). In a plain backward pass the table's gradient is
    /// row-sparse ([`Gradients::sparse_param`](crate::Gradients::sparse_param)).
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let table = tape.var(array![[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]]);
    /// let words = table.embedding(&array![[2, 0], [2, 2]].into_dyn());
    /// assert_eq!(words.shape().as_slice(), &[2, 2, 2]);
    /// assert_eq!(words.to_array().index_axis(ndarray::Axis(0), 0), array![[2.0, 2.5], [0.0, 0.5]].into_dyn());
    /// let g = words.sum().backward();
    /// assert_eq!(g[table].to_array(), array![[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]].into_dyn());
    /// ```
    #[track_caller]
    pub fn embedding(self, ids: &ArrayD<usize>) -> Self {
        or_panic(self.try_embedding(ids))
    }

    /// Like [`embedding`](Self::embedding), returning the error instead of panicking.
    #[track_caller]
    pub fn try_embedding(self, ids: &ArrayD<usize>) -> Result<Self> {
        let op = Embedding { ids: ids.iter().copied().collect(), shape: Shape::from_slice(ids.shape()) };
        try_apply(op, [self])
    }

    /// Adds element `k` of this value (row-major) into flat position `indices[k]` of zeros of
    /// `shape`: the adjoint of [`take`](Self::take) (PyTorch's `put` with `accumulate=True`
    /// into zeros).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let v = tape.var(ndarray::array![1.0, 2.0, 3.0]);
    /// let out = v.put_add(&[3, 0, 3], &[2, 2]);
    /// assert_eq!(out.to_array(), ndarray::array![[2.0, 0.0], [0.0, 4.0]].into_dyn());
    /// ```
    #[track_caller]
    pub fn put_add(self, indices: &[usize], shape: &[usize]) -> Self {
        or_panic(self.try_put_add(indices, shape))
    }

    /// Like [`put_add`](Self::put_add), returning the error instead of panicking.
    #[track_caller]
    pub fn try_put_add(self, indices: &[usize], shape: &[usize]) -> Result<Self> {
        try_apply(
            PutAdd { indices: Rc::new(indices.to_vec().into()), shape: Shape::from_slice(shape) },
            [self],
        )
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
    #[track_caller]
    pub fn flatten(self, start: usize) -> Self {
        or_panic(self.try_flatten(start))
    }

    /// Like [`flatten`](Self::flatten), returning the error instead of panicking.
    #[track_caller]
    pub fn try_flatten(self, start: usize) -> Result<Self> {
        let shape = self.shape();
        if start >= shape.len().max(1) {
            let message = format!("start axis {start} is out of range for shape {:?}", shape.as_slice());
            return Err(Error::argument("flatten", message));
        }
        let mut merged: Vec<usize> = shape[..start].to_vec();
        merged.push(shape[start..].iter().product());
        self.try_reshape(&merged)
    }

    /// The rows at `indices`, in that order (NumPy's `a[[2, 0]]`); repeated rows add up their
    /// gradients.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    /// let b = a.rows(&[2, 0, 2]);
    /// assert_eq!(b.to_array(), ndarray::array![[5.0, 6.0], [1.0, 2.0], [5.0, 6.0]].into_dyn());
    /// let g = b.sum().backward();
    /// assert_eq!(g[a].to_array(), ndarray::array![[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]].into_dyn());
    /// ```
    #[track_caller]
    pub fn rows(self, indices: &[usize]) -> Self {
        or_panic(self.try_rows(indices))
    }

    /// Like [`rows`](Self::rows), returning the error instead of panicking.
    #[track_caller]
    pub fn try_rows(self, indices: &[usize]) -> Result<Self> {
        check_rows(&self.shape(), indices)?;
        self.try_select(0, indices)
    }
}

/// Checks row indices against a shape, in the words of [`rows`](crate::Var::rows).
fn check_rows(shape: &[usize], indices: &[usize]) -> Result<()> {
    let Some(&n) = shape.first() else {
        return Err(Error::argument(
            "rows",
            format!("a value of shape {shape:?} has no rows; expected rank ≥ 1"),
        ));
    };
    match indices.iter().find(|&&i| i >= n) {
        Some(bad) => Err(Error::argument(
            "rows",
            format!("index {bad} is out of range for {n} rows (shape {shape:?})"),
        )),
        None => Ok(()),
    }
}

/// `a` where `cond` is true and `b` elsewhere, elementwise; `cond`, `a` and `b` broadcast
/// together. Gradients flow to the branch that was taken.
///
/// ```
/// use tapegrad::{where_cond, Tape};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(vec![-1.0, 2.0, -3.0]);
/// let cond = x.to_array().mapv(|v| v > 0.0);
/// let y = where_cond(&cond, x, x * 10.0);
/// assert_eq!(y.to_array().into_raw_vec_and_offset().0, vec![-10.0, 2.0, -30.0]);
/// assert_eq!(y.sum().backward()[x].to_array().into_raw_vec_and_offset().0, vec![10.0, 1.0, 10.0]);
/// ```
#[track_caller]
pub fn where_cond<'t, F: Float>(cond: &ArrayD<bool>, a: Var<'t, F>, b: Var<'t, F>) -> Var<'t, F> {
    apply(WhereCond(Rc::new(cond.clone())), [a, b])
}

/// Joins values along an existing axis; every other axis must match.
///
/// ```
/// use tapegrad::{concat, Tape};
/// let tape = Tape::<f64>::new();
/// let a = tape.var(ndarray::array![[1.0, 2.0]]);
/// let b = tape.var(ndarray::array![[3.0, 4.0], [5.0, 6.0]]);
/// let c = concat(&[a, b], 0);
/// assert_eq!(c.shape().as_slice(), &[3, 2]);
/// assert!(tapegrad::ops::shape::try_concat(&[a, b], 1).is_err());
/// ```
#[track_caller]
pub fn concat<'t, F: Float>(values: &[Var<'t, F>], axis: usize) -> Var<'t, F> {
    or_panic(try_concat(values, axis))
}

/// Like [`concat()`], returning the error.
#[track_caller]
pub fn try_concat<'t, F: Float>(values: &[Var<'t, F>], axis: usize) -> Result<Var<'t, F>> {
    if values.is_empty() {
        return Err(Error::argument("concat", "no values to join"));
    }
    values[0].tape().record(Concat(axis), values)
}

/// Joins values of equal shape along a new axis at position `axis`.
///
/// ```
/// use tapegrad::{stack, Tape};
/// let tape = Tape::<f64>::new();
/// let (a, b) = (tape.var(vec![1.0, 2.0]), tape.var(vec![3.0, 4.0]));
/// assert_eq!(stack(&[a, b], 0).to_array(), ndarray::array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
/// assert_eq!(stack(&[a, b], 1).to_array(), ndarray::array![[1.0, 3.0], [2.0, 4.0]].into_dyn());
/// ```
#[track_caller]
pub fn stack<'t, F: Float>(values: &[Var<'t, F>], axis: usize) -> Var<'t, F> {
    or_panic(try_stack(values, axis))
}

/// Like [`stack`], returning the error.
#[track_caller]
pub fn try_stack<'t, F: Float>(values: &[Var<'t, F>], axis: usize) -> Result<Var<'t, F>> {
    let first = values.first().ok_or_else(|| Error::argument("stack", "no values to join"))?.shape();
    if let Some(other) = values.iter().map(Var::shape).find(|s| *s != first) {
        return Err(Error::shape("stack", &[&first, &other], "values of equal shape"));
    }
    check_axis("stack", axis, first.len() + 1)?;
    let expanded: Result<Vec<_>> = values.iter().map(|v| v.try_unsqueeze(axis)).collect();
    try_concat(&expanded?, axis)
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    use proptest::prelude::*;
    vec![
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
        crate::case!("slice", slicing(ANY), |x, p| x[0].slice(p.slice())),
        crate::case!("slice_grad", slicing(ANY), |x, p| {
            let elems: Rc<[SliceInfoElem]> = p.slice().into();
            apply(SliceGrad(elems.clone(), x[0].shape()), [apply(Slice(elems), [x[0]])])
        }),
        crate::case!("select", selection(ANY), |x, p| x[0].select(p.ints[0], &p.ints[1..])),
        crate::case!("index_add", selection(ANY), |x, p| {
            let (axis, len) = (p.ints[0], x[0].shape()[p.ints[0]]);
            let indices: Rc<[usize]> = p.ints[1..].into();
            apply(IndexAdd { axis, indices: indices.clone(), len }, [apply(Select { axis, indices }, [x[0]])])
        }),
        crate::case!("take", flat_indices(ANY), |x, p| x[0].take(&p.ints, &[p.ints.len()])),
        crate::case!("gather", gather_indices(ANY), |x, p| {
            let (axis, index) = gather_index(x[0].shape().as_slice(), &p.ints);
            x[0].gather(axis, &index)
        }),
        crate::case!("embedding", embedding_ids(ANY), |x, p| {
            let ids = ArrayD::from_shape_vec(IxDyn(&p.ints[..2]), p.ints[2..].to_vec()).expect("ids");
            x[0].embedding(&ids)
        }),
        crate::case!("put_add", flat_indices(ANY), |x, p| {
            x[0].take(&p.ints, &[p.ints.len()]).put_add(&p.ints, &x[0].shape())
        }),
        crate::case!("where_cond", masked(ANY), |x, p| where_cond(&p.mask(), x[0], x[1])),
        crate::case!("concat", joinable(ANY), |x, p| concat(x, p.ints[0])),
        crate::case!("stack", stackable(ANY), |x, p| stack(x, p.ints[0])),
    ]
}

#[cfg(test)]
mod tests {
    use crate::Tape;

    #[test]
    fn rows_errors_name_rows_and_the_callers_shape() {
        let tape = Tape::<f64>::new();
        let a = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
        let e = a.try_rows(&[0, 3]).unwrap_err().to_string();
        assert_eq!(e, "rows: index 3 is out of range for 3 rows (shape [3, 2])");
        let e = tape.var(2.0).try_rows(&[0]).unwrap_err().to_string();
        assert_eq!(e, "rows: a value of shape [] has no rows; expected rank ≥ 1");
    }
}
