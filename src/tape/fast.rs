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
//! - [`add`](FastBackward::add): a dense gradient, added to what the input has so far (the
//!   elementwise ops on scalars, computed on plain numbers);
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
///         let Some(([x], _y, gy)) = fast.scalars() else { return false };
///         fast.add(0, Value::Scalar(gy * x * x * F::of(3.0)));
///         true
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
        id: NodeId,
        gy: &'a Value<F>,
        grads: &'a mut SecondaryMap<NodeId, Value<F>>,
        rows: &'a mut SecondaryMap<NodeId, SparseRows<F>>,
        keep: &'a [NodeId],
    ) -> Self {
        FastBackward { inner, node: &inner.nodes[id], gy, grads, rows, keep }
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

    /// The `N` inputs, the output and `gy` as numbers, when the node has `N` inputs and every
    /// one of these values is a scalar; `None` otherwise.
    #[inline]
    pub fn scalars<const N: usize>(&self) -> Option<([F; N], F, F)> {
        let (&Value::Scalar(gy), &Value::Scalar(y)) = (self.gy, &self.node.value) else { return None };
        if self.node.parents.len() != N {
            return None;
        }
        let mut xs = [F::zero(); N];
        for (x, &p) in xs.iter_mut().zip(&self.node.parents) {
            let Value::Scalar(v) = self.inner.nodes[p].value else { return None };
            *x = v;
        }
        Some((xs, y, gy))
    }

    /// Adds `g`, a gradient of the `i`-th input's shape, to that input's gradient.
    ///
    /// Panics, naming the op, if `g` does not have the input's shape.
    pub fn add(&mut self, i: usize, g: Value<F>) {
        let parent = self.node.parents[i];
        let input = &self.inner.nodes[parent];
        if !input.requires_grad {
            return;
        }
        if !matches!((&g, &input.value), (Value::Scalar(_), Value::Scalar(_))) {
            assert!(
                g.shape() == input.value.shape(),
                "fast_backward of {} gave a gradient of shape {:?} for an input of shape {:?}",
                self.op_name(),
                g.shape(),
                input.value.shape()
            );
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
}

/// Adds the gradient `g` into node `id`'s gradient in `grads`.
fn add_gradient<F: Float>(grads: &mut SecondaryMap<NodeId, Value<F>>, id: NodeId, g: Value<F>) {
    match grads.entry(id) {
        Some(Entry::Occupied(mut acc)) => acc.get_mut().accumulate(g),
        Some(Entry::Vacant(slot)) => drop(slot.insert(g)),
        None => unreachable!("gradients are kept for live nodes only"),
    }
}
