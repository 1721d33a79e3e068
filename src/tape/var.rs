//! [`Var`]: a `Copy` handle to one node, and what it reads and writes on its tape. The math on
//! `Var`s (operators, `matmul`, `sum`, …) is defined by the op families in `ops`, not here.
//!
//! Invariant: every access goes through the tape's lookup, so a freed or foreign handle is
//! reported with the operation's name instead of reading another node.

use std::fmt;

use ndarray::ArrayViewMutD;
use slotmap::Key;

use crate::error::{Error, Result, or_panic};
use crate::float::Float;
use crate::tape::op::Op;
use crate::tape::{Gradients, NodeId, Tape};
use crate::value::{Shape, Value};

/// A handle to a node on a [`Tape`]: cheap to copy, used like a number.
///
/// Operators work between `Var`s and with `f32`/`f64` scalars on either side (`2.0 * x`,
/// `x - 1.0`); the operations are methods (`x.tanh()`, `a.matmul(b)`, `x.sum()`). Each method
/// that can fail on its arguments has a `try_` twin returning the [`Error`] instead of
/// panicking at the caller's line.
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let x = tape.var(0.5);
/// let y = 2.0 * x * x + x.tanh();
/// let g = y.backward()[x].scalar().unwrap();
/// assert!((g - (4.0 * 0.5 + 1.0 - 0.5f64.tanh().powi(2))).abs() < 1e-12);
/// ```
#[derive(Clone, Copy)]
pub struct Var<'t, F: Float> {
    tape: &'t Tape<F>,
    id: NodeId,
}

impl<'t, F: Float> Var<'t, F> {
    pub(crate) fn new(tape: &'t Tape<F>, id: NodeId) -> Self {
        Var { tape, id }
    }

    /// The tape this handle points into.
    pub fn tape(&self) -> &'t Tape<F> {
        self.tape
    }

    /// The node's key on its tape.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// A short description for messages: `Var#index(vversion)`.
    pub(crate) fn key(&self) -> String {
        let ffi = self.id.data().as_ffi();
        format!("Var#{}v{}", ffi & 0xffff_ffff, ffi >> 32)
    }

    /// The value (a copy).
    ///
    /// ```
    /// use tapegrad::{Tape, Value};
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.var(2.0).value(), Value::Scalar(2.0));
    /// ```
    #[track_caller]
    pub fn value(&self) -> Value<F> {
        self.tape.with_node(*self, "value", |n| n.value.clone())
    }

    /// The value, or an error if the node was freed.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let y = tape.var(2.0) * 3.0;
    /// tape.reset();
    /// assert!(y.try_value().unwrap_err().to_string().contains("was freed (by Tape::reset()"));
    /// ```
    pub fn try_value(&self) -> Result<Value<F>> {
        let inner = self.tape.inner.borrow();
        self.tape.lookup(&inner, *self, "value", 0).map(|n| n.value.clone())
    }

    /// The value as an owned `ndarray` array.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.var(vec![1.0, 2.0]).to_array(), ndarray::array![1.0, 2.0].into_dyn());
    /// ```
    #[track_caller]
    pub fn to_array(&self) -> ndarray::ArrayD<F> {
        self.value().into_array()
    }

    /// The single element of a scalar (or one-element) value; panics otherwise.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// assert_eq!((tape.var(1.5) * 2.0).scalar(), 3.0);
    /// ```
    #[track_caller]
    pub fn scalar(&self) -> F {
        let value =
            self.tape.with_node(*self, "scalar", |n| n.value.scalar().ok_or(n.value.shape().to_vec()));
        match value {
            Ok(x) => x,
            Err(shape) => panic!("scalar: the value has shape {shape:?}, expected a single element"),
        }
    }

    /// The shape.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.var(ndarray::Array2::<f64>::zeros((2, 3))).shape().as_slice(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn shape(&self) -> Shape {
        self.tape.with_node(*self, "shape", |n| Shape::from_slice(n.value.shape()))
    }

    /// The number of axes.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.var(1.0).ndim(), 0);
    /// ```
    #[track_caller]
    pub fn ndim(&self) -> usize {
        self.tape.with_node(*self, "ndim", |n| n.value.ndim())
    }

    /// Whether gradients flow to this node (a leaf made by [`Tape::var`] or [`Tape::param`], or
    /// the result of recording on such).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// assert!(tape.var(1.0).requires_grad());
    /// assert!(!tape.constant(1.0).requires_grad());
    /// ```
    #[track_caller]
    pub fn requires_grad(&self) -> bool {
        self.tape.with_node(*self, "requires_grad", |n| n.requires_grad)
    }

    /// A constant with the same value: gradients stop here.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let y = x * x.detach();          // d/dx = x, not 2x
    /// assert_eq!(y.backward()[x].scalar(), Some(3.0));
    /// ```
    #[track_caller]
    pub fn detach(self) -> Self {
        self.tape.constant(self.value())
    }

    /// A constant computed elementwise from this value: no gradient flows through it. Backward
    /// rules use it for masks, such as the derivative of `relu`. `f` runs while the tape is
    /// borrowed: it may read other `Var`s but not make new ones.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![-1.0, 2.0]);
    /// let mask = x.map_constant(|v| if v > 0.0 { 1.0 } else { 0.0 });
    /// assert!(!mask.requires_grad());
    /// assert_eq!(mask.to_array(), ndarray::array![0.0, 1.0].into_dyn());
    /// ```
    #[track_caller]
    pub fn map_constant(&self, f: impl Fn(F) -> F) -> Self {
        let value = self.tape.with_node(*self, "map_constant", |n| n.value.map(f));
        self.tape.constant(value)
    }

    /// A constant computed elementwise from two values (broadcasting): no gradient flows
    /// through it. `f` runs while the tape is borrowed: it may read other `Var`s but not make
    /// new ones.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(vec![1.0, 5.0]), tape.var(3.0));
    /// let larger = a.zip_constant(&b, |a, b| if a > b { 1.0 } else { 0.0 });
    /// assert_eq!(larger.to_array(), ndarray::array![0.0, 1.0].into_dyn());
    /// ```
    #[track_caller]
    pub fn zip_constant(&self, other: &Self, f: impl Fn(F, F) -> F) -> Self {
        let value = {
            let inner = self.tape.inner.borrow();
            let a = or_panic(self.tape.lookup(&inner, *self, "zip_constant", 0));
            let b = or_panic(self.tape.lookup(&inner, *other, "zip_constant", 1));
            or_panic(Value::zip("zip_constant", &a.value, &b.value, f))
        };
        self.tape.constant(value)
    }

    /// Names the node for graph pictures ([`Tape::to_dot`]); returns `self`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let apple = tape.var(100.0).named("apple");
    /// assert_eq!(apple.name().as_deref(), Some("apple"));
    /// ```
    #[track_caller]
    pub fn named(self, name: impl Into<String>) -> Self {
        self.tape.with_node(self, "named", |_| ());
        self.tape.inner.borrow_mut().names.insert(self.id, name.into());
        self
    }

    /// The name given by [`named`](Self::named).
    pub fn name(&self) -> Option<String> {
        self.tape.inner.borrow().names.get(self.id).cloned()
    }

    /// Replaces the value of a leaf (a parameter update); the shape must stay the same.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.var(vec![1.0, 2.0]);
    /// w.set_value(vec![0.5, 1.5]);
    /// assert_eq!(w.to_array().into_raw_vec_and_offset().0, vec![0.5, 1.5]);
    /// ```
    #[track_caller]
    pub fn set_value(&self, value: impl Into<Value<F>>) {
        or_panic(self.try_set_value(value))
    }

    /// Like [`set_value`](Self::set_value), returning the error; on error the value is
    /// unchanged.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.var(vec![1.0, 2.0]);
    /// assert!(w.try_set_value(vec![1.0, 2.0, 3.0]).is_err());
    /// assert_eq!(w.to_array().into_raw_vec_and_offset().0, vec![1.0, 2.0]);
    /// ```
    pub fn try_set_value(&self, value: impl Into<Value<F>>) -> Result<()> {
        let value = value.into();
        let mut inner = self.tape.inner.borrow_mut();
        let node = self.leaf_mut(&mut inner, "set_value")?;
        if node.value.shape() != value.shape() {
            let expected = "a value of the leaf's shape";
            return Err(Error::shape("set_value", &[node.value.shape(), value.shape()], expected));
        }
        node.value = value;
        Ok(())
    }

    /// Changes the value of a leaf in place, through a mutable view (so its shape cannot
    /// change). The closure may read other `Var`s.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.var(1.0);
    /// let lr = tape.constant(0.1);
    /// w.update(|mut v| v.mapv_inplace(|x| x - lr.scalar()));
    /// assert_eq!(w.scalar(), 0.9);
    /// ```
    #[track_caller]
    pub fn update(&self, f: impl FnOnce(ArrayViewMutD<'_, F>)) {
        or_panic(self.try_update(f))
    }

    /// Like [`update`](Self::update), returning the error (a freed handle, a node that is not a
    /// leaf, or a leaf another `update` is changing).
    pub fn try_update(&self, f: impl FnOnce(ArrayViewMutD<'_, F>)) -> Result<()> {
        // The value is taken out while `f` runs, so that `f` may read the tape.
        let mut value = {
            let mut inner = self.tape.inner.borrow_mut();
            let value =
                std::mem::replace(&mut self.leaf_mut(&mut inner, "update")?.value, Value::Scalar(F::nan()));
            inner.updating.push(self.id);
            value
        };
        struct PutBack<'a, 't, F: Float>(&'a Var<'t, F>, &'a mut Value<F>);
        impl<F: Float> Drop for PutBack<'_, '_, F> {
            fn drop(&mut self) {
                let value = std::mem::replace(self.1, Value::Scalar(F::zero()));
                let mut inner = self.0.tape.inner.borrow_mut();
                inner.updating.retain(|id| *id != self.0.id);
                if let Some(node) = inner.nodes.get_mut(self.0.id) {
                    node.value = value;
                }
            }
        }
        let put_back = PutBack(self, &mut value);
        f(put_back.1.view_mut());
        Ok(())
    }

    fn leaf_mut<'i>(
        &self,
        inner: &'i mut crate::tape::Inner<F>,
        op: &'static str,
    ) -> Result<&'i mut crate::tape::Node<F>> {
        self.tape.lookup(inner, *self, op, 0)?;
        let node = &mut inner.nodes[self.id];
        if node.op.is_some() {
            return Err(Error::argument(op, "only leaves (var, param, constant, buffer) can be changed"));
        }
        Ok(node)
    }

    /// Applies a one-input op (see [`op`](crate::op) for writing one).
    ///
    /// ```
    /// use tapegrad::{ops::unary::Exp, Tape};
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.var(0.0).apply(Exp).scalar(), 1.0);
    /// ```
    #[track_caller]
    pub fn apply(self, op: impl Op<F>) -> Self {
        or_panic(self.try_apply(op))
    }

    /// Like [`apply`](Self::apply), returning the op's error.
    ///
    /// ```
    /// use tapegrad::{ops::unary::Sqrt, Tape};
    /// let tape = Tape::<f64>::new();
    /// tape.set_detect_anomaly(true);
    /// let err = tape.var(-1.0).try_apply(Sqrt).unwrap_err();
    /// assert!(err.to_string().starts_with("sqrt: produced NaN"));
    /// ```
    #[track_caller]
    pub fn try_apply(self, op: impl Op<F>) -> Result<Self> {
        self.tape.record(op, &[self])
    }

    /// Reverse-mode gradients of this scalar with respect to every leaf that requires one.
    ///
    /// Panics (at the caller's line) when the output is not a scalar; see
    /// [`try_backward`](Self::try_backward).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let y = x * x;
    /// assert_eq!(y.backward()[x].scalar(), Some(6.0));
    /// ```
    #[track_caller]
    pub fn backward(self) -> Gradients<F> {
        or_panic(self.try_backward())
    }

    /// Like [`backward`](Self::backward), returning the error.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 2.0]);
    /// assert!(x.try_backward().unwrap_err().to_string().starts_with("backward: the output has shape [2]"));
    /// ```
    pub fn try_backward(self) -> Result<Gradients<F>> {
        let shape = {
            let inner = self.tape.inner.borrow();
            Shape::from_slice(self.tape.lookup(&inner, self, "backward", 0)?.value.shape())
        };
        if !shape.is_empty() {
            return Err(Error::NotScalar { shape: shape.to_vec() });
        }
        self.tape.backward_values(self, Value::Scalar(F::one()), &[])
    }

    /// Backward from a non-scalar output with `seed` as its gradient (a vector-Jacobian
    /// product).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![1.0, 2.0]);
    /// let y = x * x;
    /// let g = y.backward_with(vec![1.0, 10.0]);
    /// assert_eq!(g[x].to_array().into_raw_vec_and_offset().0, vec![2.0, 40.0]);
    /// ```
    #[track_caller]
    pub fn backward_with(self, seed: impl Into<Value<F>>) -> Gradients<F> {
        or_panic(self.try_backward_with(seed))
    }

    /// Like [`backward_with`](Self::backward_with), returning the error.
    pub fn try_backward_with(self, seed: impl Into<Value<F>>) -> Result<Gradients<F>> {
        self.tape.backward_values(self, seed.into(), &[])
    }
}

impl<F: Float> fmt::Debug for Var<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_value() {
            Ok(v) => write!(f, "{}{:?} = {v}", self.key(), v.shape()),
            Err(_) => write!(f, "{} (freed)", self.key()),
        }
    }
}

impl<F: Float> fmt::Display for Var<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_value() {
            Ok(v) => fmt::Display::fmt(&v, f),
            Err(_) => write!(f, "{} (freed)", self.key()),
        }
    }
}
