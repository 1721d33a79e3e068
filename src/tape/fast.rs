//! [`FastBackward`]: the one extension point of the backward loop.
//!
//! A rule ([`Op::backward`](crate::Op::backward)) computes gradients with `Var`s, so the same
//! rule serves every derivative order. That costs a little per node: a context, a scope, a
//! constant for `gy`, temporaries to free. Where that overhead is the work (a chain of scalar
//! ops), or where the textbook rule makes more than the gradient needs (an embedding lookup's
//! gradient is the whole table's size, a slice's is its whole input's), an op may also
//! implement [`Op::fast_backward`](crate::Op::fast_backward): given the values, it delivers
//! its inputs' gradients itself, through this handle, in one of three forms:
//!
//! - [`add`](FastBackward::add): a dense gradient, added to what the input has so far
//!   ([`scalar_rule`](FastBackward::scalar_rule) does so for the elementwise ops on scalars,
//!   computed on plain numbers);
//! - [`add_rows`](FastBackward::add_rows): a row-sparse gradient ([`SparseRows`]) for a leaf
//!   (the embedding lookup), kept as rows for the optimizers;
//! - [`gradient_so_far`](FastBackward::gradient_so_far): the input's gradient so far, to add
//!   into in place (a slice adds `gy` into its part of it).
//!
//! Only plain backward ([`Var::backward`](crate::Var::backward), and [`Tape::grad`](crate::Tape::grad) without
//! `create_graph`) offers nodes to `fast_backward`, and not in anomaly mode (which checks what
//! each rule returns): a recorded pass must record the rule. What an op delivers must equal
//! what its rule gives; the op registry's test `recorded_gradients_equal_plain_gradients` compares
//! the two for every op.

use slotmap::SecondaryMap;
use slotmap::secondary::Entry;

use crate::float::Float;
use crate::tape::{Inner, Node, NodeId, SparseRows};
use crate::value::Value;

/// What [`Op::fast_backward`](crate::Op::fast_backward) reads and where it delivers: the node's
/// inputs, output and incoming gradient `gy` as values, and the gradients of this pass.
///
/// A user-defined `y = x³` with a fast path for scalars:
///
/// ```
/// use tapegrad::{grads, Context, FastBackward, Float, Grads, Op, Result, Tape, Value, Var};
///
/// struct Cube;
///
/// impl<F: Float> Op<F> for Cube {
///     fn name(&self) -> &'static str { "cube" }
///     fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
///         Ok(x[0].map(|v| v * v * v))
///     }
///     // dx = gy·3x²
///     fn backward<'t>(&self, cx: &Context<'t, F>, gy: Var<'t, F>) -> Grads<'t, F> {
///         grads![gy * cx.input(0).square() * F::of(3.0)]
///     }
///     // the same on plain numbers, when everything is a scalar
///     fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
///         fast.scalar_rule(|[x], _y, gy| [Some(gy * x * x * F::of(3.0))])
///     }
/// }
///
/// let tape = Tape::<f64>::new();
/// let x = tape.var(2.0);
/// assert_eq!(x.apply(Cube).backward()[x].scalar(), Some(12.0));
/// ```
pub struct FastBackward<'a, F: Float> {
    inner: &'a Inner<F>,
    node: &'a Node<F>,
    gy: &'a Value<F>,
    grads: &'a mut SecondaryMap<NodeId, Value<F>>,
    rows: &'a mut SecondaryMap<NodeId, SparseRows<F>>,
    keep: &'a [NodeId],
}

impl<'a, F: Float> FastBackward<'a, F> {
    pub(crate) fn new(
        inner: &'a Inner<F>,
        node: &'a Node<F>,
        gy: &'a Value<F>,
        grads: &'a mut SecondaryMap<NodeId, Value<F>>,
        rows: &'a mut SecondaryMap<NodeId, SparseRows<F>>,
        keep: &'a [NodeId],
    ) -> Self {
        FastBackward { inner, node, gy, grads, rows, keep }
    }

    /// The gradient of the final output with respect to this node's output.
    pub fn gy(&self) -> &'a Value<F> {
        self.gy
    }

    /// The `i`-th input's value.
    pub fn input(&self, i: usize) -> &'a Value<F> {
        &self.inner.nodes[self.node.parents[i]].value
    }

    /// The output's value.
    pub fn output(&self) -> &'a Value<F> {
        &self.node.value
    }

    /// The number of inputs.
    pub fn num_inputs(&self) -> usize {
        self.node.parents.len()
    }

    /// Whether the `i`-th input needs a gradient; [`add`](Self::add) drops one it does not.
    pub fn needs_grad(&self, i: usize) -> bool {
        self.inner.nodes[self.node.parents[i]].requires_grad
    }

    /// The gradients on plain numbers, when the node has `N` inputs and they, the output and
    /// `gy` are all scalars: `rule(inputs, output, gy)` gives each input's gradient (`None` for
    /// none), those the inputs need are added, and the result is `true`. Otherwise it returns
    /// `false` and calls nothing. A chain of scalar ops differentiates this way without a rule's
    /// context, scope and temporaries.
    #[inline]
    pub fn scalar_rule<const N: usize>(&mut self, rule: impl FnOnce([F; N], F, F) -> [Option<F>; N]) -> bool {
        let (&Value::Scalar(gy), &Value::Scalar(y)) = (self.gy, &self.node.value) else { return false };
        if self.node.parents.len() != N {
            return false;
        }
        let (mut xs, mut needs) = ([F::zero(); N], [false; N]);
        for (k, &p) in self.node.parents.iter().enumerate() {
            let input = &self.inner.nodes[p];
            let Value::Scalar(x) = input.value else { return false };
            (xs[k], needs[k]) = (x, input.requires_grad);
        }
        for ((g, need), &p) in rule(xs, y, gy).into_iter().zip(needs).zip(&self.node.parents) {
            if let Some(g) = g.filter(|_| need) {
                add_gradient(self.grads, p, Value::Scalar(g));
            }
        }
        true
    }

    /// Adds `g`, a gradient of the `i`-th input's shape, to that input's gradient.
    ///
    /// Panics, naming the op, if `g` does not have the input's shape.
    #[inline]
    pub fn add(&mut self, i: usize, g: Value<F>) {
        let parent = self.node.parents[i];
        let input = &self.inner.nodes[parent];
        if !input.requires_grad {
            return;
        }
        let fits = match (&g, &input.value) {
            (Value::Scalar(_), Value::Scalar(_)) => true,
            (g, x) => g.shape() == x.shape(),
        };
        if !fits {
            self.wrong_shape("a gradient", g.shape(), input.value.shape());
        }
        add_gradient(self.grads, parent, g);
    }

    /// The `i`-th input's gradient so far, to add into in place; `None` when it has none yet
    /// (or needs none). What is added must be the gradient [`add`](Self::add) would add.
    pub fn gradient_so_far(&mut self, i: usize) -> Option<&mut Value<F>> {
        let parent = self.node.parents[i];
        if !self.inner.nodes[parent].requires_grad {
            return None;
        }
        self.grads.get_mut(parent)
    }

    /// Whether the `i`-th input takes a row-sparse gradient: a leaf that needs a gradient and
    /// whose dense gradient was not asked for (by [`Tape::grad`](crate::Tape::grad)).
    pub fn takes_rows(&self, i: usize) -> bool {
        let parent = self.node.parents[i];
        let input = &self.inner.nodes[parent];
        input.op.is_none() && input.requires_grad && !self.keep.contains(&parent)
    }

    /// Adds `rows`, a row-sparse gradient of the `i`-th input, to its gradient.
    ///
    /// Panics, naming the op, unless [`takes_rows(i)`](Self::takes_rows) and `rows` has the
    /// input's shape.
    pub fn add_rows(&mut self, i: usize, rows: SparseRows<F>) {
        let parent = self.node.parents[i];
        assert!(
            self.takes_rows(i),
            "fast_backward of {} gave rows to an input that takes none",
            self.op_name()
        );
        assert!(
            rows.shape() == self.inner.nodes[parent].value.shape(),
            "fast_backward of {} gave rows of shape {:?} for an input of shape {:?}",
            self.op_name(),
            rows.shape(),
            self.inner.nodes[parent].value.shape()
        );
        match self.rows.entry(parent) {
            Some(Entry::Occupied(mut acc)) => acc.get_mut().append(rows),
            Some(Entry::Vacant(slot)) => drop(slot.insert(rows)),
            None => unreachable!("gradients are kept for live nodes only"),
        }
    }

    fn op_name(&self) -> &'static str {
        self.node.op.as_deref().map_or("a node", |op| op.name())
    }

    #[cold]
    #[inline(never)]
    fn wrong_shape(&self, what: &str, got: &[usize], expected: &[usize]) -> ! {
        panic!(
            "fast_backward of {} gave {what} of shape {got:?} for an input of shape {expected:?}",
            self.op_name()
        )
    }
}

/// Adds the gradient `g` into node `id`'s gradient in `grads`.
#[inline]
fn add_gradient<F: Float>(grads: &mut SecondaryMap<NodeId, Value<F>>, id: NodeId, g: Value<F>) {
    match grads.entry(id) {
        Some(Entry::Occupied(mut acc)) => acc.get_mut().accumulate(g),
        Some(Entry::Vacant(slot)) => drop(slot.insert(g)),
        None => unreachable!("gradients are kept for live nodes only"),
    }
}
