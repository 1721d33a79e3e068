//! [`Value`]: what a node holds — a scalar kept inline or an n-dimensional array — and the
//! elementwise kernels every op family shares (map, broadcasting zip, accumulation).
//!
//! Scalars are kept out of the heap on purpose: a chain of scalar operations then records and
//! differentiates without one allocation per node, which is where a define-by-run engine loses
//! most of its time against a hand-written loop.

use std::fmt;

use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::{buffers, vector};

/// A shape: the length of each axis. Rank 4 and below stays on the stack.
pub type Shape = SmallVec<[usize; 4]>;

/// A tensor value: a scalar (shape `[]`) stored inline, or an array of any rank.
///
/// An `ArrayD` of rank 0 always becomes [`Value::Scalar`], so the two variants never describe the
/// same thing twice.
///
/// ```
/// use tapegrad::Value;
/// use ndarray::array;
/// let s = Value::from(2.5);
/// assert_eq!(s.shape(), &[] as &[usize]);
/// let a = Value::from(array![[1.0, 2.0], [3.0, 4.0]]);
/// assert_eq!(a.shape(), &[2, 2]);
/// assert_eq!(a.view()[[1, 0]], 3.0);
/// ```
#[derive(Clone, PartialEq)]
pub enum Value<F: Float> {
    /// A rank-0 value.
    Scalar(F),
    /// An array of rank 1 or more, boxed so that a `Value` stays two words: nodes, gradients
    /// and backward temporaries move it around constantly.
    Array(Box<ArrayD<F>>),
}

impl<F: Float> Value<F> {
    /// The shape; `[]` for a scalar.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Scalar(_) => &NO_AXES[..0],
            Value::Array(a) => a.shape(),
        }
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Value::Scalar(_) => 1,
            Value::Array(a) => a.len(),
        }
    }

    /// Whether there are no elements (an axis of length 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only array view, rank 0 for a scalar.
    pub fn view(&self) -> ArrayViewD<'_, F> {
        match self {
            Value::Scalar(x) => ndarray::aview0(x).into_dyn(),
            Value::Array(a) => a.view(),
        }
    }

    /// A writable array view, rank 0 for a scalar.
    ///
    /// ```
    /// use tapegrad::Value;
    /// let mut v = Value::from(vec![1.0, 2.0]);
    /// v.view_mut()[[1]] = 5.0;
    /// assert_eq!(v.view()[[1]], 5.0);
    /// ```
    pub fn view_mut(&mut self) -> ndarray::ArrayViewMutD<'_, F> {
        match self {
            Value::Scalar(x) => {
                ndarray::ArrayViewMut::from_shape(ndarray::IxDyn(&[]), std::slice::from_mut(x))
                    .expect("one element")
            }
            Value::Array(a) => a.view_mut(),
        }
    }

    /// The value as an owned array (rank 0 for a scalar).
    pub fn into_array(mut self) -> ArrayD<F> {
        match &mut self {
            Value::Scalar(x) => ndarray::arr0(*x).into_dyn(),
            Value::Array(a) => std::mem::replace(&mut **a, empty()),
        }
    }

    /// An array of `shape` from a buffer filled in order (a recycled one, from the kernels).
    pub(crate) fn from_buffer(shape: &[usize], data: Vec<F>) -> Self {
        Value::from(ArrayD::from_shape_vec(IxDyn(shape), data).expect("one element per position"))
    }

    /// Fills a recycled buffer from an iterator of exactly `len` elements.
    fn collect(len: usize, values: impl Iterator<Item = F>) -> Vec<F> {
        let mut data = buffers::buffer(len);
        data.extend(values);
        data
    }

    /// The value as an owned array, copied.
    pub fn to_array(&self) -> ArrayD<F> {
        self.clone().into_array()
    }

    /// The single element of a scalar or of a one-element array; `None` otherwise.
    ///
    /// ```
    /// use tapegrad::Value;
    /// assert_eq!(Value::from(3.0).scalar(), Some(3.0));
    /// assert_eq!(Value::from(vec![1.0, 2.0]).scalar(), None);
    /// ```
    pub fn scalar(&self) -> Option<F> {
        match self {
            Value::Scalar(x) => Some(*x),
            Value::Array(a) if a.len() == 1 => a.iter().next().copied(),
            Value::Array(_) => None,
        }
    }

    /// A value of `shape` with every element `x`.
    pub fn full(shape: &[usize], x: F) -> Self {
        if shape.is_empty() {
            Value::Scalar(x)
        } else {
            Value::Array(Box::new(ArrayD::from_elem(IxDyn(shape), x)))
        }
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, F::zero())
    }

    /// Applies `f` to every element.
    #[inline]
    pub fn map(&self, f: impl Fn(F) -> F) -> Self {
        match self {
            Value::Scalar(x) => Value::Scalar(f(*x)),
            Value::Array(a) => match a.as_slice_memory_order() {
                Some(xs) if a.is_standard_layout() => {
                    Value::from_buffer(a.shape(), Self::collect(xs.len(), xs.iter().map(|&x| f(x))))
                }
                _ => Value::Array(Box::new(a.mapv(f))),
            },
        }
    }

    /// [`map`](Self::map) compiled for the widest vectors the CPU has (`kernels::vector`): for
    /// an `f` in arithmetic only (`tanh` and the sigmoid of `f32`), 8 or 16 lanes instead of the
    /// baseline's 4.
    pub(crate) fn map_widest(&self, f: impl Fn(F) -> F) -> Self {
        match self {
            Value::Array(a) if a.is_standard_layout() => {
                let xs = a.as_slice().expect("standard layout");
                let mut out = buffers::to_overwrite(xs.len());
                vector::map_into(&mut out, xs, f);
                Value::from_buffer(a.shape(), out)
            }
            _ => self.map(f),
        }
    }

    /// Applies `f` to every element in place.
    pub fn map_inplace(&mut self, f: impl Fn(F) -> F) {
        match self {
            Value::Scalar(x) => *x = f(*x),
            Value::Array(a) => a.mapv_inplace(f),
        }
    }

    /// Combines `a` and `b` elementwise with NumPy broadcasting; `op` names the operation in the
    /// error when the shapes cannot be broadcast together.
    #[inline]
    pub fn zip(op: &'static str, a: &Self, b: &Self, f: impl Fn(F, F) -> F) -> Result<Self> {
        match (a, b) {
            (Value::Scalar(x), Value::Scalar(y)) => Ok(Value::Scalar(f(*x, *y))),
            _ => Self::zip_arrays(op, a, b, f),
        }
    }

    fn zip_arrays(op: &'static str, a: &Self, b: &Self, f: impl Fn(F, F) -> F) -> Result<Self> {
        match (a, b) {
            (Value::Scalar(x), Value::Scalar(y)) => Ok(Value::Scalar(f(*x, *y))),
            (Value::Array(_), Value::Scalar(y)) => Ok(a.map(|x| f(x, *y))),
            (Value::Scalar(x), Value::Array(_)) => Ok(b.map(|y| f(*x, y))),
            (Value::Array(x), Value::Array(y)) => {
                if let (true, Some(xs), Some(ys)) = (x.shape() == y.shape(), x.as_slice(), y.as_slice()) {
                    let data = Self::collect(xs.len(), xs.iter().zip(ys).map(|(&x, &y)| f(x, y)));
                    return Ok(Value::from_buffer(x.shape(), data));
                }
                let shape = broadcast_shape(x.shape(), y.shape())
                    .ok_or_else(|| broadcast_error(op, x.shape(), y.shape()))?;
                if let Some(out) = zip_trailing(x, y, &shape, &f) {
                    return Ok(Value::Array(Box::new(out)));
                }
                let (xb, yb) = (x.broadcast(IxDyn(&shape)), y.broadcast(IxDyn(&shape)));
                let (xb, yb) = (xb.expect("checked"), yb.expect("checked"));
                Ok(Value::Array(Box::new(Zip::from(&xb).and(&yb).map_collect(|&x, &y| f(x, y)))))
            }
        }
    }

    /// Adds `other` (of the same shape) into `self`, taking it: gradient accumulation. Two
    /// scalars are added right here, without the call and the drop of `add_assign`'s path (a
    /// chain of scalar ops accumulates one gradient per op).
    #[inline]
    pub(crate) fn accumulate(&mut self, other: Self) {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => *a += b,
            (acc, g) => acc.add_assign(&g),
        }
    }

    /// Adds `other` (of the same shape) into `self`: gradient accumulation.
    pub(crate) fn add_assign(&mut self, other: &Self) {
        match (self, other) {
            (Value::Scalar(x), Value::Scalar(y)) => *x += *y,
            (Value::Array(x), y) => **x += &y.view(),
            (x @ Value::Scalar(_), y) => *x = Value::zip("add", x, y, |a, b| a + b).expect("shape"),
        }
    }
}

/// An array with no elements and no allocation.
fn empty<F>() -> ArrayD<F> {
    ArrayD::from_shape_vec(IxDyn(&[0]), Vec::new()).expect("no elements")
}

/// A large array's buffer goes back to the thread's recycled buffers (`kernels::buffers`) for the
/// next op that needs one.
impl<F: Float> Drop for Value<F> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Value::Array(a) = self {
            recycle(a);
        }
    }
}

/// Hands a large array's buffer to the recycled buffers (out of line: scalar values never come
/// here).
#[inline(never)]
fn recycle<F: Float>(a: &mut ArrayD<F>) {
    if a.len() * size_of::<F>() >= buffers::MIN_BYTES {
        let array = std::mem::replace(a, empty());
        buffers::recycle(array.into_raw_vec_and_offset().0);
    }
}

impl<F: Float> fmt::Display for Value<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(x) => fmt::Display::fmt(x, f),
            Value::Array(a) => fmt::Display::fmt(a, f),
        }
    }
}

impl<F: Float> fmt::Debug for Value<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(x) => write!(f, "Scalar({x:?})"),
            Value::Array(a) => write!(f, "Array({a:?})"),
        }
    }
}

/// Approximate comparison with the `approx` crate, element by element (shapes must match):
///
/// ```
/// use approx::assert_relative_eq;
/// use tapegrad::{Tape, Value};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(vec![0.1, 0.2]);
/// let g = (x * 3.0).sum().backward();
/// assert_relative_eq!(g[x], Value::from(vec![3.0, 3.0]));
/// ```
impl<F: Float + approx::AbsDiffEq<Epsilon = F>> approx::AbsDiffEq for Value<F> {
    type Epsilon = F;
    fn default_epsilon() -> F {
        F::default_epsilon()
    }
    fn abs_diff_eq(&self, other: &Self, epsilon: F) -> bool {
        self.shape() == other.shape()
            && self.view().iter().zip(other.view().iter()).all(|(a, b)| a.abs_diff_eq(b, epsilon))
    }
}

impl<F: Float + approx::RelativeEq<Epsilon = F>> approx::RelativeEq for Value<F> {
    fn default_max_relative() -> F {
        F::default_max_relative()
    }
    fn relative_eq(&self, other: &Self, epsilon: F, max_relative: F) -> bool {
        self.shape() == other.shape()
            && self
                .view()
                .iter()
                .zip(other.view().iter())
                .all(|(a, b)| a.relative_eq(b, epsilon, max_relative))
    }
}

impl<F: Float> From<F> for Value<F> {
    fn from(x: F) -> Self {
        Value::Scalar(x)
    }
}

impl<F: Float, D: ndarray::Dimension> From<ndarray::Array<F, D>> for Value<F> {
    fn from(a: ndarray::Array<F, D>) -> Self {
        if a.ndim() == 0 {
            Value::Scalar(a.iter().next().copied().unwrap_or_else(F::zero))
        } else {
            Value::Array(Box::new(a.into_dyn()))
        }
    }
}

impl<F: Float> From<Vec<F>> for Value<F> {
    fn from(v: Vec<F>) -> Self {
        Value::Array(Box::new(ndarray::Array1::from(v).into_dyn()))
    }
}

impl<F: Float, const N: usize> From<[F; N]> for Value<F> {
    fn from(v: [F; N]) -> Self {
        Value::from(v.to_vec())
    }
}

impl<F: Float> From<&Value<F>> for Value<F> {
    fn from(v: &Value<F>) -> Self {
        v.clone()
    }
}

/// The common broadcast of a contiguous array with a contiguous array of its trailing axes (a
/// bias added to a batch): the smaller one is cycled over the larger one's rows, without the
/// general indexed walk. `None` when the operands are not of that form.
fn zip_trailing<F: Float>(
    x: &ArrayD<F>,
    y: &ArrayD<F>,
    shape: &[usize],
    f: &impl Fn(F, F) -> F,
) -> Option<ArrayD<F>> {
    let (xs, ys) = (x.as_slice()?, y.as_slice()?);
    let trailing = |small: &ArrayD<F>, big: &ArrayD<F>| {
        let axes = small.shape().iter().skip_while(|&&n| n == 1).count();
        big.shape() == shape && small.shape()[small.ndim() - axes..] == big.shape()[big.ndim() - axes..]
    };
    let mut data = buffers::buffer(shape.iter().product());
    if !ys.is_empty() && trailing(y, x) {
        data.extend(xs.chunks_exact(ys.len()).flat_map(|row| row.iter().zip(ys).map(|(&a, &b)| f(a, b))));
    } else if !xs.is_empty() && trailing(x, y) {
        data.extend(ys.chunks_exact(xs.len()).flat_map(|row| xs.iter().zip(row).map(|(&a, &b)| f(a, b))));
    } else {
        return None;
    }
    ArrayD::from_shape_vec(IxDyn(shape), data).ok()
}

/// The shape of a scalar: an empty slice at a real address.
///
/// NOTE: `&[]` points at a dangling address, and glibc's AVX-512 `memcmp` (which `==` on
/// `[usize]` calls, even for length 0) reads through a masked load there that takes a
/// fault-suppression assist of hundreds of cycles: comparing two scalar shapes with `&[]` cost
/// more than the rest of a scalar op (`cargo bench --bench scalar_chain`, with the fast
/// gradients off so that every node runs its rule and checks shapes).
static NO_AXES: [usize; 1] = [0];

/// The NumPy broadcast of two shapes, or `None` when an axis differs and neither is 1.
///
/// ```
/// use tapegrad::broadcast_shape;
/// assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]).unwrap().as_slice(), &[2, 4, 3]);
/// assert!(broadcast_shape(&[2, 3], &[2]).is_none());
/// ```
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Shape> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() < n { 1 } else { s[i + s.len() - n] };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

pub(crate) fn broadcast_error(op: &'static str, a: &[usize], b: &[usize]) -> Error {
    Error::shape(op, &[a, b], "shapes that broadcast (each axis, aligned from the right, equal or 1)")
}
