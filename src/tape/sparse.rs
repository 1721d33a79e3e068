//! [`SparseRows`]: a gradient that touches only some rows of its value, the second form a
//! gradient may take beside a dense [`Value`].
//!
//! An embedding lookup of 1,000 rows of a 10,000-row table has a gradient that is zero outside
//! those rows. Its op delivers it as rows (through [`FastBackward::add_rows`]), the pass keeps
//! them as rows for leaves, and [`Gradients`] hands them to the optimizers that update only
//! those rows ([`Sgd`](crate::optim::Sgd), [`Adam`](crate::optim::Adam)); anyone who asks for
//! the dense gradient gets it made on first access.
//!
//! Invariant: `values` holds one row of `shape[1..]` per entry of `rows`, every row inside
//! `shape[0]`; a row may appear more than once, and its entries add up.
//!
//! [`FastBackward::add_rows`]: crate::op::FastBackward::add_rows
//! [`Gradients`]: crate::Gradients

use crate::error::Error;
use crate::float::Float;
use crate::value::Value;

/// A gradient that touches only some rows (the first axis) of its value: `rows[k]` gets
/// `values` row `k`; a row may appear more than once, and its entries add up. Made by an
/// embedding lookup; see [`Gradients::sparse_param`](crate::Gradients::sparse_param).
///
/// ```
/// use ndarray::array;
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let table = tape.param(ndarray::Array2::<f64>::zeros((5, 2)));
/// let ids = array![[4, 1], [4, 4]].into_dyn();
/// let y = tape.get(table).embedding(&ids);
/// let grads = (y * tape.constant(ndarray::Array3::<f64>::ones((2, 2, 2)))).sum().backward();
/// let rows = grads.sparse_param(table).unwrap();
/// assert_eq!(rows.shape(), &[5, 2]);
/// let merged = rows.coalesce();
/// assert_eq!(merged.rows(), &[1, 4]);
/// assert_eq!(merged.values(), array![[1.0, 1.0], [3.0, 3.0]]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows<F: Float> {
    shape: crate::value::Shape,
    rows: Vec<usize>,
    values: Vec<F>,
}

impl<F: Float> SparseRows<F> {
    /// Rows `rows` of a value of `shape`, with `values` holding each row's entries in order.
    ///
    /// Panics unless `values` holds one row of `shape[1..]` per entry of `rows` and every row
    /// is inside `shape[0]`.
    #[track_caller]
    pub fn new(shape: &[usize], rows: Vec<usize>, values: Vec<F>) -> Self {
        let width: usize = shape.iter().skip(1).product();
        let fits =
            !shape.is_empty() && values.len() == rows.len() * width && rows.iter().all(|&r| r < shape[0]);
        if !fits {
            let message = format!(
                "{} rows and {} values for a value of shape {shape:?}; expected rows below {} and {width} values \
                 per row",
                rows.len(),
                values.len(),
                shape.first().copied().unwrap_or(0)
            );
            panic!("{}", Error::argument("SparseRows::new", message));
        }
        SparseRows { shape: crate::value::Shape::from_slice(shape), rows, values }
    }

    /// The shape of the whole value.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The rows touched, in order, repeats included.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// The rows' entries, `[rows, width]` (`width` = the product of `shape[1..]`).
    pub fn values(&self) -> ndarray::ArrayView2<'_, F> {
        let width = self.values.len().checked_div(self.rows.len()).unwrap_or(0);
        ndarray::ArrayView2::from_shape((self.rows.len(), width), &self.values).expect("rows·width values")
    }

    /// The same gradient with each row once, ascending, repeats added up.
    pub fn coalesce(&self) -> Self {
        let width: usize = self.shape.iter().skip(1).product();
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_by_key(|&k| self.rows[k]);
        let (mut rows, mut values) = (Vec::new(), Vec::new());
        for k in order {
            let entries = &self.values[k * width..(k + 1) * width];
            if rows.last() == Some(&self.rows[k]) {
                let start = values.len() - width;
                for (v, &e) in values[start..].iter_mut().zip(entries) {
                    *v += e;
                }
            } else {
                rows.push(self.rows[k]);
                values.extend_from_slice(entries);
            }
        }
        SparseRows { shape: self.shape.clone(), rows, values }
    }

    /// The gradient as a dense value of [`shape`](Self::shape): zeros outside the rows.
    pub fn to_dense(&self) -> Value<F> {
        let mut dense = Value::zeros(&self.shape);
        self.add_to(&mut dense);
        dense
    }

    /// Adds the rows into `dense`, a value of [`shape`](Self::shape).
    pub(crate) fn add_to(&self, dense: &mut Value<F>) {
        let width: usize = self.shape.iter().skip(1).product();
        let mut view = dense.view_mut();
        for (k, &row) in self.rows.iter().enumerate() {
            let mut target = view.index_axis_mut(ndarray::Axis(0), row);
            for (d, &v) in target.iter_mut().zip(&self.values[k * width..(k + 1) * width]) {
                *d += v;
            }
        }
    }

    /// Multiplies every entry by `factor`.
    pub(crate) fn scale(&mut self, factor: F) {
        self.values.iter_mut().for_each(|v| *v *= factor);
    }

    /// Appends `other`'s rows (a second lookup into the same table).
    pub(crate) fn append(&mut self, mut other: Self) {
        self.rows.append(&mut other.rows);
        self.values.append(&mut other.values);
    }
}
