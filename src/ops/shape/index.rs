//! Indexing by position: `select` (whole slices along an axis) and its adjoint `index_add`;
//! flat `take` and its adjoint `put_add`; `gather` along an axis; the embedding lookup, whose
//! gradient for a leaf table is row-sparse; and `rows`.

use std::rc::Rc;

use ndarray::{ArrayD, Axis, IxDyn};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::ops::{apply, check_axis, try_apply};
use crate::tape::SparseRows;
use crate::tape::Var;
use crate::tape::op::{Context, FastBackward, Grads, Op};
use crate::value::{Shape, Value};

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
        let size = buffers::elements::<F>("put_add", &self.shape)?;
        check_flat_indices("put_add", &self.indices, size, x[0].shape(), &self.shape)?;
        let view = x[0].view();
        let input = view.as_standard_layout();
        let mut out = buffers::try_zeros("put_add", size)?;
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
    // dtable = gy's rows at their ids, as rows, when the table is a leaf: the gradient never
    // takes the table's size
    fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
        if !fast.takes_rows(0) {
            return false;
        }
        let view = fast.gy().view();
        let values = view.as_standard_layout().as_slice().expect("standard layout").to_vec();
        fast.add_rows(0, SparseRows::new(fast.input(0).shape(), self.ids.to_vec(), values));
        true
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
    let values = buffers::elements::<f64>(op, taken)?;
    if indices.len() != values {
        let message = format!("{} indices for {values} values of shape {taken:?}", indices.len());
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

var_methods! {
    /// The entries at `indices` along `axis`, in that order; repeats allowed.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(x.select(1, &[1, 1]).to_array(), ndarray::array![[2.0, 2.0], [4.0, 4.0]].into_dyn());
    /// ```
    pub fn select / try_select(self, axis: usize, indices: &[usize]) -> Self {
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
    pub fn take / try_take(self, indices: &[usize], shape: &[usize]) -> Self {
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
    pub fn gather / try_gather(self, axis: usize, index: &ArrayD<usize>) -> Self {
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
    pub fn embedding / try_embedding(self, ids: &ArrayD<usize>) -> Self {
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
    pub fn put_add / try_put_add(self, indices: &[usize], shape: &[usize]) -> Self {
        try_apply(
            PutAdd { indices: Rc::new(indices.to_vec().into()), shape: Shape::from_slice(shape) },
            [self],
        )
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
    pub fn rows / try_rows(self, indices: &[usize]) -> Self {
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

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![
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
