//! The operation protocol between the tape and the ops: [`Op`] (a forward on values and a
//! backward rule on gradients) and the backward [`Context`].
//!
//! # One rule, two modes
//!
//! A backward rule is written once, with the same [`Var`] methods a user calls:
//!
//! ```text
//! // d/dx sin(x) = cos(x)
//! fn backward(&self, cx, gy) -> Grads { grads![gy * cx.input(0).cos()] }
//! ```
//!
//! When [`Var::backward`] runs, recording is off while a rule runs: `gy * cx.input(0).cos()`
//! computes plain values, and the temporaries it made are freed as soon as the rule returns.
//! When a differentiable gradient is requested ([`Tape::grad`] with `create_graph`), the very
//! same rule runs with recording on, so every step of it lands on the tape and the gradient can
//! be differentiated again. That is the whole of higher-order differentiation: there is no
//! second set of rules.
//!
//! # Writing your own op
//!
//! A complete user-defined op, `y = x³`, gradient-checked like a built-in:
//!
//! ```
//! use tapegrad::{gradcheck, grads, Context, Float, GradcheckOptions, Grads, Op, Result, Tape,
//!                Value, Var};
//!
//! struct Cube;
//!
//! impl<F: Float> Op<F> for Cube {
//!     fn name(&self) -> &'static str { "cube" }
//!     fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
//!         Ok(x[0].map(|v| v * v * v))
//!     }
//!     // dx = gy·3x²
//!     fn backward<'t>(&self, cx: &Context<'t, F>, gy: Var<'t, F>) -> Grads<'t, F> {
//!         grads![gy * cx.input(0).square() * F::of(3.0)]
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

use crate::error::Result;
use crate::float::Float;
pub use crate::tape::fast::FastBackward;
use crate::tape::{NodeId, Tape, Var};
use crate::value::Shape;

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
    fn forward(&self, inputs: &[&crate::Value<F>]) -> Result<crate::Value<F>>;

    /// Given `gy`, the gradient of the final output with respect to this op's output, returns
    /// the gradient with respect to each input (`None` where an input gets none). Each gradient
    /// must have its input's shape. Inputs for which [`Context::needs_grad`] is false may be
    /// skipped with `None`.
    fn backward<'t>(&self, cx: &Context<'t, F>, gy: Var<'t, F>) -> Grads<'t, F>;

    /// A faster way to the same gradients, on plain values: the backward loop's one extension
    /// point (see [`FastBackward`] for the forms a gradient may take and an example). A plain
    /// backward pass offers each node to its op here first; the op delivers every gradient its
    /// inputs need through `fast` and returns `true`, or returns `false` (the default) to run
    /// [`backward`](Self::backward). Recorded passes and anomaly mode always run `backward`.
    fn fast_backward(&self, _fast: &mut FastBackward<'_, F>) -> bool {
        false
    }
}

/// The gradients a backward rule returns: one per input, `None` for an input that gets none.
pub type Grads<'t, F> = SmallVec<[Option<Var<'t, F>>; 2]>;

/// Builds [`Grads`] from `Var`s (`Some`) or `Option<Var>`s: `grads![gx, None]`.
///
/// ```
/// use tapegrad::{grads, Tape};
/// let tape = Tape::<f64>::new();
/// let g = grads![tape.constant(1.0), None];
/// assert_eq!(g.len(), 2);
/// ```
#[macro_export]
macro_rules! grads {
    ($($g:expr),* $(,)?) => {{
        let mut g: $crate::Grads<'_, _> = $crate::Grads::new();
        $( g.push($crate::IntoGrad::into_grad($g)); )*
        g
    }};
}

/// What [`grads!`] accepts: a [`Var`] or an `Option<Var>`.
pub trait IntoGrad<'t, F: Float> {
    /// Converts to one entry of [`Grads`].
    fn into_grad(self) -> Option<Var<'t, F>>;
}

impl<'t, F: Float> IntoGrad<'t, F> for Var<'t, F> {
    fn into_grad(self) -> Option<Var<'t, F>> {
        Some(self)
    }
}

impl<'t, F: Float> IntoGrad<'t, F> for Option<Var<'t, F>> {
    fn into_grad(self) -> Option<Var<'t, F>> {
        self
    }
}

/// What a backward rule may read: the op's inputs and output, and which inputs need a gradient.
pub struct Context<'t, F: Float> {
    tape: &'t Tape<F>,
    inputs: SmallVec<[NodeId; 2]>,
    output: NodeId,
    needs_grad: SmallVec<[bool; 2]>,
}

impl<'t, F: Float> Context<'t, F> {
    pub(crate) fn new(
        tape: &'t Tape<F>,
        inputs: SmallVec<[NodeId; 2]>,
        output: NodeId,
        needs_grad: SmallVec<[bool; 2]>,
    ) -> Self {
        Context { tape, inputs, output, needs_grad }
    }

    /// The `i`-th input of the forward.
    pub fn input(&self, i: usize) -> Var<'t, F> {
        self.tape.handle(self.inputs[i])
    }

    /// The output of the forward.
    pub fn output(&self) -> Var<'t, F> {
        self.tape.handle(self.output)
    }

    /// The shape of the `i`-th input.
    pub fn input_shape(&self, i: usize) -> Shape {
        self.input(i).shape()
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
    pub fn grad_if(&self, i: usize, f: impl FnOnce() -> Var<'t, F>) -> Option<Var<'t, F>> {
        self.needs_grad(i).then(f)
    }

    /// The tape the op is on: rules make constants with it.
    pub fn tape(&self) -> &'t Tape<F> {
        self.tape
    }
}
