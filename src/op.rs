//! The operation protocol: [`Op`] (a forward on values and a backward on gradients), the
//! backward [`Context`], and [`Tensor`], the value type backward rules compute with.
//!
//! # One rule, two modes
//!
//! A backward rule is written once, with the same methods a user calls on [`Var`]:
//!
//! ```text
//! // d/dx sin(x) = cos(x)
//! fn backward(&self, cx, gy) -> Grads { grads![gy * cx.input(0).cos()] }
//! ```
//!
//! When [`Var::backward`] runs, `gy` and `cx.input(0)` are plain arrays: the rule computes
//! directly, records nothing and allocates only the gradient. When a differentiable gradient is
//! requested ([`Tape::grad`] with `create_graph`), the very same rule receives [`Var`]s and its
//! every step is recorded on the tape, so the gradient can be differentiated again. That is the
//! whole of higher-order differentiation: there is no second set of rules.
//!
//! # Writing your own op
//!
//! A complete user-defined op, `y = x³`, gradient-checked like a built-in:
//!
//! ```
//! use tapegrad::{gradcheck, grads, Context, Float, GradcheckOptions, Grads, Op, Result, Tape,
//!                Tensor, Value};
//!
//! struct Cube;
//!
//! impl<F: Float> Op<F> for Cube {
//!     fn name(&self) -> &'static str { "cube" }
//!     fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
//!         Ok(x[0].map(|v| v * v * v))
//!     }
//!     // dx = gy·3x²
//!     fn backward<'a>(&self, cx: &Context<'a, F>, gy: Tensor<'a, F>) -> Grads<'a, F> {
//!         grads![gy * 3.0 * cx.input(0).square()]
//!     }
//! }
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.var(2.0);
//! let y = x.apply(Cube);
//! assert_eq!(y.scalar(), 8.0);
//! assert_eq!(y.backward()[x].scalar(), Some(12.0));
//!
//! let x0 = ndarray::array![0.5, -1.5, 2.0].into_dyn();
//! gradcheck(|x| x[0].apply(Cube).sum(), &[x0], GradcheckOptions::default()).unwrap();
//! ```

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tape::{NodeId, Tape, Var};
use crate::value::{Shape, Value};

/// A differentiable operation: a forward on values and a backward rule on gradients.
///
/// See the [module documentation](self) for a complete example.
pub trait Op<F: Float>: 'static {
    /// The name used in errors and graph pictures, such as `"matmul"`.
    fn name(&self) -> &'static str;

    /// A label for graph pictures; by default the name. Ops with a parameter show it (`"× 2"`).
    fn label(&self) -> String {
        self.name().to_string()
    }

    /// Computes the output from the inputs' values. Shape errors are returned, naming the op.
    fn forward(&self, inputs: &[&Value<F>]) -> Result<Value<F>>;

    /// Given `gy`, the gradient of the final output with respect to this op's output, returns
    /// the gradient with respect to each input (`None` where an input gets none). Each gradient
    /// must have its input's shape. Inputs for which [`Context::needs_grad`] is false may be
    /// skipped with `None`.
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Tensor<'a, F>) -> Grads<'a, F>;

    /// Computes the output into the first input's storage when it has the output's shape,
    /// returning whether it did; `false` (the default) leaves `first` untouched. Rules computing
    /// on plain values use it to reuse a temporary they own instead of allocating.
    #[doc(hidden)]
    fn forward_in_place(&self, _first: &mut Value<F>, _rest: &[&Value<F>]) -> bool {
        false
    }

    /// The same gradients as [`backward`](Self::backward) when every input, the output and
    /// `gy` are scalars, computed on plain numbers; `None` (the default) means "use
    /// `backward`". The built-in elementwise ops derive it from their one rule.
    #[doc(hidden)]
    fn backward_scalar(&self, _inputs: &[F], _output: F, _gy: F) -> Option<ScalarGrads<F>> {
        None
    }

    #[doc(hidden)]
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// Gradients of an op on scalars, one per input.
#[doc(hidden)]
pub type ScalarGrads<F> = SmallVec<[Option<F>; 2]>;

/// The gradients a backward rule returns: one per input, `None` for an input that gets none.
pub type Grads<'a, F> = SmallVec<[Option<Tensor<'a, F>>; 2]>;

/// Builds [`Grads`] from tensors (`Some`) or `None`s: `grads![gx, None]`.
///
/// ```
/// use tapegrad::{grads, Tensor, Value};
/// let g = grads![Tensor::<f64>::from(Value::from(1.0))];
/// assert_eq!(g.len(), 1);
/// ```
#[macro_export]
macro_rules! grads {
    ($($g:expr),* $(,)?) => {{
        let mut g: $crate::Grads<'_, _> = $crate::Grads::new();
        $( g.push($crate::IntoGrad::into_grad($g)); )*
        g
    }};
}

/// What [`grads!`] accepts: a [`Tensor`] or an `Option<Tensor>`.
pub trait IntoGrad<'a, F: Float> {
    /// Converts to one entry of [`Grads`].
    fn into_grad(self) -> Option<Tensor<'a, F>>;
}

impl<'a, F: Float> IntoGrad<'a, F> for Tensor<'a, F> {
    fn into_grad(self) -> Option<Tensor<'a, F>> {
        Some(self)
    }
}

impl<'a, F: Float> IntoGrad<'a, F> for Option<Tensor<'a, F>> {
    fn into_grad(self) -> Option<Tensor<'a, F>> {
        self
    }
}

/// What a backward rule may read: the op's inputs and output, and which inputs need a gradient.
pub struct Context<'a, F: Float> {
    repr: ContextRepr<'a, F>,
    needs_grad: SmallVec<[bool; 2]>,
}

enum ContextRepr<'a, F: Float> {
    Values { inputs: SmallVec<[&'a Value<F>; 2]>, output: &'a Value<F> },
    Graph { tape: &'a Tape<F>, inputs: SmallVec<[NodeId; 2]>, output: NodeId },
}

impl<'a, F: Float> Context<'a, F> {
    pub(crate) fn values(
        inputs: SmallVec<[&'a Value<F>; 2]>,
        output: &'a Value<F>,
        needs_grad: SmallVec<[bool; 2]>,
    ) -> Self {
        Context { repr: ContextRepr::Values { inputs, output }, needs_grad }
    }

    pub(crate) fn graph(
        tape: &'a Tape<F>,
        inputs: SmallVec<[NodeId; 2]>,
        output: NodeId,
        needs_grad: SmallVec<[bool; 2]>,
    ) -> Self {
        Context { repr: ContextRepr::Graph { tape, inputs, output }, needs_grad }
    }

    /// The `i`-th input of the forward.
    pub fn input(&self, i: usize) -> Tensor<'a, F> {
        match &self.repr {
            ContextRepr::Values { inputs, .. } => Tensor::borrowed(inputs[i]),
            ContextRepr::Graph { tape, inputs, .. } => Tensor::from(tape.handle(inputs[i])),
        }
    }

    /// The output of the forward.
    pub fn output(&self) -> Tensor<'a, F> {
        match &self.repr {
            ContextRepr::Values { output, .. } => Tensor::borrowed(output),
            ContextRepr::Graph { tape, output, .. } => Tensor::from(tape.handle(*output)),
        }
    }

    /// The shape of the `i`-th input.
    pub fn input_shape(&self, i: usize) -> Shape {
        match &self.repr {
            ContextRepr::Values { inputs, .. } => Shape::from_slice(inputs[i].shape()),
            ContextRepr::Graph { tape, inputs, .. } => tape.handle(inputs[i]).shape(),
        }
    }

    /// The number of inputs.
    pub fn num_inputs(&self) -> usize {
        self.needs_grad.len()
    }

    /// Whether the `i`-th input needs a gradient; a rule may return `None` for it when not.
    pub fn needs_grad(&self, i: usize) -> bool {
        self.needs_grad[i]
    }

    /// `f()` when input `i` needs a gradient, `None` otherwise: `cx.grad_if(1, || gy * x)`.
    pub fn grad_if(&self, i: usize, f: impl FnOnce() -> Tensor<'a, F>) -> Option<Tensor<'a, F>> {
        self.needs_grad(i).then(f)
    }
}

/// The value type of backward rules: a plain value while gradients are computed directly, a
/// [`Var`] on the tape while a differentiable gradient is recorded (see the [module docs](self)).
///
/// It has the same operations as [`Var`] (each documented there).
pub struct Tensor<'a, F: Float>(TensorRepr<'a, F>);

enum TensorRepr<'a, F: Float> {
    Owned(Value<F>),
    Borrowed(&'a Value<F>),
    Var(Var<'a, F>),
}

impl<F: Float> Clone for Tensor<'_, F> {
    fn clone(&self) -> Self {
        Tensor(match &self.0 {
            TensorRepr::Owned(v) => TensorRepr::Owned(v.clone()),
            TensorRepr::Borrowed(v) => TensorRepr::Borrowed(v),
            TensorRepr::Var(v) => TensorRepr::Var(*v),
        })
    }
}

impl<'a, F: Float> Tensor<'a, F> {
    fn borrowed(v: &'a Value<F>) -> Self {
        Tensor(TensorRepr::Borrowed(v))
    }

    /// A constant tensor of `shape` filled with `x`, on the same tape as `self` when it is a
    /// `Var`.
    pub fn full_like(&self, shape: &[usize], x: F) -> Self {
        self.constant_like(Value::full(shape, x))
    }

    /// The shape of the value.
    pub fn shape(&self) -> Shape {
        Operand::shape(self)
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        Operand::ndim(self)
    }

    /// The `Var` behind this tensor, if it is one.
    pub fn as_var(&self) -> Option<Var<'a, F>> {
        match &self.0 {
            TensorRepr::Var(v) => Some(*v),
            _ => None,
        }
    }

    /// The value, computed or read from the tape.
    pub fn value(&self) -> Value<F> {
        match &self.0 {
            TensorRepr::Owned(v) => v.clone(),
            TensorRepr::Borrowed(v) => (*v).clone(),
            TensorRepr::Var(v) => v.value(),
        }
    }

    pub(crate) fn into_value(self) -> Value<F> {
        match self.0 {
            TensorRepr::Owned(v) => v,
            TensorRepr::Borrowed(v) => v.clone(),
            TensorRepr::Var(v) => v.value(),
        }
    }

    pub(crate) fn into_var(self, tape: &'a Tape<F>) -> Var<'a, F> {
        match self.0 {
            TensorRepr::Owned(v) => tape.constant(v),
            TensorRepr::Borrowed(v) => tape.constant(v.clone()),
            TensorRepr::Var(v) => v,
        }
    }

    /// A constant computed elementwise from this tensor's value: no gradient flows through it.
    /// Rules use it for masks, such as the derivative of `relu`.
    pub fn map_constant(&self, f: impl Fn(F) -> F) -> Self {
        let value = self.with_value(|v| v.map(f));
        self.constant_like(value)
    }

    /// A constant computed elementwise from two tensors' values (broadcasting): no gradient
    /// flows through it.
    #[track_caller]
    pub fn zip_constant(&self, other: &Self, f: impl Fn(F, F) -> F) -> Self {
        let value = self.with_value(|a| other.with_value(|b| Value::zip("zip_constant", a, b, f)));
        self.constant_like(crate::op::or_panic(value))
    }

    fn constant_like(&self, value: Value<F>) -> Self {
        match &self.0 {
            TensorRepr::Var(v) => Tensor::from(v.tape().constant(value)),
            _ => Tensor::from(value),
        }
    }

    fn with_value<R>(&self, f: impl FnOnce(&Value<F>) -> R) -> R {
        match &self.0 {
            TensorRepr::Var(v) => f(&v.value()),
            _ => f(self.value_ref()),
        }
    }

    fn tape(&self) -> Option<&'a Tape<F>> {
        match &self.0 {
            TensorRepr::Var(v) => Some(v.tape()),
            _ => None,
        }
    }

    fn value_ref(&self) -> &Value<F> {
        match &self.0 {
            TensorRepr::Owned(v) => v,
            TensorRepr::Borrowed(v) => v,
            TensorRepr::Var(_) => unreachable!("values of Vars are read on the tape"),
        }
    }
}

impl<F: Float> Var<'_, F> {
    /// A constant computed elementwise from this value: no gradient flows through it.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let x = tape.var(vec![-1.0, 2.0]);
    /// let mask = x.map_constant(|v| if v > 0.0 { 1.0 } else { 0.0 });
    /// assert!(!mask.requires_grad());
    /// ```
    #[track_caller]
    pub fn map_constant(&self, f: impl Fn(F) -> F) -> Self {
        self.tape().constant(self.value().map(f))
    }
}

impl<F: Float> From<Value<F>> for Tensor<'_, F> {
    fn from(v: Value<F>) -> Self {
        Tensor(TensorRepr::Owned(v))
    }
}

impl<'a, F: Float> From<Var<'a, F>> for Tensor<'a, F> {
    fn from(v: Var<'a, F>) -> Self {
        Tensor(TensorRepr::Var(v))
    }
}

mod sealed {
    pub trait Sealed {}
    impl<F: crate::Float> Sealed for crate::Var<'_, F> {}
    impl<F: crate::Float> Sealed for crate::Tensor<'_, F> {}
}

/// What ops apply to: [`Var`] (recorded on its tape) and [`Tensor`] (inside backward rules).
///
/// Free functions such as [`concat`](crate::concat) take either.
pub trait Operand<'t, F: Float>: Clone + sealed::Sealed + Sized {
    /// Applies `op` to `inputs`, returning its error instead of panicking.
    fn try_apply_op(op: impl Op<F>, inputs: &[Self]) -> Result<Self>;
    /// Like [`try_apply_op`](Self::try_apply_op), owning the inputs: a temporary among them may
    /// be reused for the output.
    #[doc(hidden)]
    fn try_apply_owned<const N: usize>(op: impl Op<F>, inputs: [Self; N]) -> Result<Self> {
        Self::try_apply_op(op, &inputs)
    }
    /// The shape of the value.
    fn shape(&self) -> Shape;
    /// The number of axes.
    fn ndim(&self) -> usize {
        self.shape().len()
    }
}

impl<'t, F: Float> Operand<'t, F> for Var<'t, F> {
    fn try_apply_op(op: impl Op<F>, inputs: &[Self]) -> Result<Self> {
        let tape = inputs.first().expect("an op has at least one input").tape();
        tape.record(op, inputs)
    }
    fn shape(&self) -> Shape {
        Var::shape(self)
    }
}

impl<'t, F: Float> Operand<'t, F> for Tensor<'t, F> {
    fn try_apply_op(op: impl Op<F>, inputs: &[Self]) -> Result<Self> {
        if let Some(tape) = inputs.iter().find_map(Tensor::tape) {
            let vars: SmallVec<[Var<'t, F>; 2]> = inputs.iter().map(|t| t.clone().into_var(tape)).collect();
            return tape.record(op, &vars).map(Tensor::from);
        }
        match inputs {
            [x] => op.forward(&[x.value_ref()]),
            [x, y] => op.forward(&[x.value_ref(), y.value_ref()]),
            _ => op.forward(&inputs.iter().map(Tensor::value_ref).collect::<SmallVec<[_; 4]>>()),
        }
        .map(Tensor::from)
    }
    fn try_apply_owned<const N: usize>(op: impl Op<F>, mut inputs: [Self; N]) -> Result<Self> {
        let in_place = match inputs.split_first_mut().map(|(f, r)| (&mut f.0, r)) {
            Some((TensorRepr::Owned(first), rest)) if rest.iter().all(|t| t.tape().is_none()) => {
                let rest: SmallVec<[&Value<F>; 2]> = rest.iter().map(Tensor::value_ref).collect();
                op.forward_in_place(first, &rest)
            }
            _ => false,
        };
        match in_place {
            true => Ok(inputs.into_iter().next().expect("one input at least")),
            false => Self::try_apply_op(op, &inputs),
        }
    }
    fn shape(&self) -> Shape {
        match &self.0 {
            TensorRepr::Var(v) => v.shape(),
            _ => Shape::from_slice(self.value_ref().shape()),
        }
    }
}

/// Applies `op` to `inputs`, panicking at the caller's line with the op's error.
#[track_caller]
pub(crate) fn apply<'t, F: Float, T: Operand<'t, F>, const N: usize>(op: impl Op<F>, inputs: [T; N]) -> T {
    match T::try_apply_owned(op, inputs) {
        Ok(y) => y,
        Err(e) => panic!("{e}"),
    }
}

/// Applies `op` to `inputs`, returning its error.
pub(crate) fn try_apply<'t, F: Float, T: Operand<'t, F>, const N: usize>(
    op: impl Op<F>,
    inputs: [T; N],
) -> Result<T> {
    T::try_apply_owned(op, inputs)
}

/// Unwraps at the caller's line, with the error's message.
#[track_caller]
pub(crate) fn or_panic<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Checks an axis index against a rank.
pub(crate) fn check_axis(op: &'static str, axis: usize, ndim: usize) -> Result<()> {
    if axis < ndim {
        Ok(())
    } else {
        Err(Error::argument(
            op,
            format!("axis {axis} is out of range for a value of rank {ndim} (axes 0..{ndim})"),
        ))
    }
}

/// Defines methods once for both [`Var`] and [`Tensor`]. A method written
/// `fn name(self, …) -> Self { … }` becomes `name` on both. One written
/// `fn name / try_name(self, …) -> Result<Self> { … }` becomes `try_name`, returning the error,
/// and `name`, panicking with it at the caller's line.
macro_rules! methods {
    () => {};
    (
        $(#[$meta:meta])*
        fn $name:ident($self:ident $(, $arg:ident : $ty:ty)* $(,)?) -> Self $body:block
        $($rest:tt)*
    ) => {
        // Bodies are shared with `Tensor`, which is not `Copy`.
        #[allow(clippy::clone_on_copy)]
        impl<'t, F: $crate::Float> $crate::Var<'t, F> {
            $(#[$meta])*
            #[track_caller]
            pub fn $name($self $(, $arg: $ty)*) -> Self $body
        }
        impl<'t, F: $crate::Float> $crate::Tensor<'t, F> {
            #[doc = concat!("See [`Var::", stringify!($name), "`](crate::Var::", stringify!($name), ").")]
            #[track_caller]
            pub fn $name($self $(, $arg: $ty)*) -> Self $body
        }
        $crate::op::methods!($($rest)*);
    };
    (
        $(#[$meta:meta])*
        fn $name:ident / $try_name:ident($self:ident $(, $arg:ident : $ty:ty)* $(,)?) -> Result<Self> $body:block
        $($rest:tt)*
    ) => {
        #[allow(clippy::clone_on_copy)]
        impl<'t, F: $crate::Float> $crate::Var<'t, F> {
            $(#[$meta])*
            #[track_caller]
            pub fn $name($self $(, $arg: $ty)*) -> Self {
                $crate::op::or_panic($self.$try_name($($arg),*))
            }
            #[doc = concat!("Like [`", stringify!($name), "`](Self::", stringify!($name), "), returning the error instead of panicking.")]
            pub fn $try_name($self $(, $arg: $ty)*) -> $crate::Result<Self> $body
        }
        impl<'t, F: $crate::Float> $crate::Tensor<'t, F> {
            #[doc = concat!("See [`Var::", stringify!($name), "`](crate::Var::", stringify!($name), ").")]
            #[track_caller]
            pub fn $name($self $(, $arg: $ty)*) -> Self {
                $crate::op::or_panic($self.$try_name($($arg),*))
            }
            #[doc = concat!("See [`Var::", stringify!($try_name), "`](crate::Var::", stringify!($try_name), ").")]
            pub fn $try_name($self $(, $arg: $ty)*) -> $crate::Result<Self> $body
        }
        $crate::op::methods!($($rest)*);
    };
}
pub(crate) use methods;
