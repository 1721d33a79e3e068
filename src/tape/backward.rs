//! The one backward algorithm. Its entry points ([`Var::backward`], [`Tape::grad`]) are in
//! `grad.rs`.
//!
//! [`backward`] walks the recorded nodes in reverse creation order, hands each node's gradient
//! to its op's rule and adds what the rule returns into the gradients of the node's inputs. It
//! is generic over where the gradients live ([`GradientStore`]):
//! - [`Values`]: plain values. Rules run with recording off, inside a scope that frees their
//!   temporaries as soon as the rule returns. `backward()` uses it.
//! - [`Recorded`]: nodes on the tape. Rules run with recording on, so every step of the
//!   backward pass is itself recorded and can be differentiated again (`create_graph`).
//!
//! The loop has one extension point: before running a node's rule, a plain pass offers the node
//! to its op's [`fast_backward`](Op::fast_backward), which may deliver the gradients itself
//! (`fast.rs` describes the forms they take). The loop knows no particular optimisation.
//!
//! Invariants: a node's gradient is complete when the scan reaches it (every use of a node comes
//! after it in creation order); intermediate gradients are dropped as soon as their rule has
//! consumed them, unless the caller asked to keep them; every gradient a rule returns has its
//! input's shape (checked here, once, for both stores).

use slotmap::SecondaryMap;
use slotmap::secondary::Entry;
use smallvec::SmallVec;

use crate::error::{Result, or_panic};
use crate::float::Float;
use crate::tape::ScopeGuard;
use crate::tape::SparseRows;
use crate::tape::fast::FastBackward;
use crate::tape::op::{Context, Grads, Op};
use crate::tape::record::{ScopeMark, anomaly, first_non_finite};
use crate::tape::{Inner, NodeId, Tape, Var};
use crate::value::Value;

/// Where one backward pass keeps its gradients. The stores hold no state of their own: the
/// gradients live in the map [`backward`] owns.
pub(crate) trait GradientStore<'t, F: Float> {
    /// One gradient as this store keeps it.
    type Grad: Clone;

    /// Runs `op`'s rule with `gy`, returning one gradient per input (`None` where the rule
    /// returned none).
    fn run_rule(
        tape: &'t Tape<F>,
        op: &dyn Op<F>,
        cx: Context<'t, F>,
        gy: Self::Grad,
    ) -> SmallVec<[Option<Self::Grad>; 2]>;

    /// Adds `g` into `acc`.
    fn accumulate(tape: &'t Tape<F>, acc: &mut Self::Grad, g: Self::Grad);

    /// Reads the value of a gradient.
    fn with_value<R>(tape: &'t Tape<F>, g: &Self::Grad, f: impl FnOnce(&Value<F>) -> R) -> R;

    /// The extension point: offers node `id` to its op's
    /// [`fast_backward`](Op::fast_backward) and returns whether it delivered the gradients
    /// (into `grads` and `rows`); `false` runs the rule. Only plain values can take it.
    fn fast_backward(
        _inner: &Inner<F>,
        _id: NodeId,
        _gy: &Self::Grad,
        _grads: &mut DenseGrads<Self::Grad>,
        _rows: &mut SparseGrads<F>,
        _keep: &[NodeId],
    ) -> bool {
        false
    }
}

/// Gradients by node, as a store keeps them.
pub(crate) type DenseGrads<G> = SecondaryMap<NodeId, G>;

/// The row-sparse gradients of leaves, by node.
pub(crate) type SparseGrads<F> = SecondaryMap<NodeId, SparseRows<F>>;

/// The one backward pass: from `seed` at `output` back to every node that needs a gradient.
/// Returns the gradients of the leaves that require one, and of the nodes in `keep` (dense),
/// and the leaves' row-sparse gradients (see [`FastBackward::add_rows`]).
pub(crate) fn backward<'t, F: Float, S: GradientStore<'t, F>>(
    tape: &'t Tape<F>,
    output: NodeId,
    seed: S::Grad,
    keep: &[NodeId],
) -> Result<(DenseGrads<S::Grad>, SparseGrads<F>)> {
    let mut grads = SecondaryMap::with_capacity(tape.inner.borrow().nodes.capacity());
    let mut rows: SparseGrads<F> = SecondaryMap::new();
    let end = {
        let inner = tape.inner.borrow();
        let node = &inner.nodes[output];
        if !node.requires_grad {
            return Ok((grads, rows));
        }
        if node.op.is_some() { node.seq as usize + 1 } else { 0 }
    };
    grads.insert(output, seed);
    // Anomaly mode checks what rules return, so it runs every rule.
    let fast = !tape.anomaly_in_backward.get();
    for i in (0..end).rev() {
        let inner = tape.inner.borrow();
        let id = inner.order[i];
        let gy = if keep.contains(&id) { grads.get(id).cloned() } else { grads.remove(id) };
        let Some(gy) = gy else { continue };
        if fast && S::fast_backward(&inner, id, &gy, &mut grads, &mut rows, keep) {
            continue;
        }
        drop(inner);
        rule::<F, S>(tape, id, gy, |p, g| match grads.entry(p) {
            Some(Entry::Occupied(mut acc)) => S::accumulate(tape, acc.get_mut(), g),
            Some(Entry::Vacant(slot)) => drop(slot.insert(g)),
            None => unreachable!("gradients are kept for live nodes only"),
        })?;
    }
    Ok((grads, rows))
}

/// Runs the rule of node `id` and checks what it returns before passing it to `add`: one
/// gradient per input, each of its input's shape, and (in anomaly mode) finite when `gy` is.
pub(crate) fn rule<'t, F: Float, S: GradientStore<'t, F>>(
    tape: &'t Tape<F>,
    id: NodeId,
    gy: S::Grad,
    mut add: impl FnMut(NodeId, S::Grad),
) -> Result<()> {
    let (mut taken, parents, needs, finite_forward) = {
        let mut inner = tape.inner.borrow_mut();
        let node = &mut inner.nodes[id];
        let op = node.op.take().expect("recorded nodes have an op");
        let parents = node.parents.clone();
        let needs: SmallVec<[bool; 2]> = parents.iter().map(|&p| inner.nodes[p].requires_grad).collect();
        let finite = |id: &NodeId| first_non_finite(&inner.nodes[*id].value).is_none();
        let finite_forward = tape.anomaly_in_backward.get() && finite(&id) && parents.iter().all(finite);
        (TakenOp { tape, id, op: Some(op) }, parents, needs, finite_forward)
    };
    // An anomaly is a NaN or an infinity made from finite values only.
    let check_anomaly = finite_forward && S::with_value(tape, &gy, |g| first_non_finite(g).is_none());
    let op = taken.op.as_deref().expect("taken");
    let gxs = S::run_rule(tape, op, Context::new(tape, parents.clone(), id, needs.clone()), gy);
    taken.put_back();
    let inner = tape.inner.borrow();
    let op = inner.nodes[id].op.as_deref().expect("put back");
    assert_eq!(
        gxs.len(),
        parents.len(),
        "backward of {} returned {} gradients for {} inputs",
        op.name(),
        gxs.len(),
        parents.len()
    );
    let mut checked: SmallVec<[(NodeId, S::Grad); 2]> = SmallVec::new();
    for ((&p, g), need) in parents.iter().zip(gxs).zip(needs) {
        let Some(g) = g.filter(|_| need) else { continue };
        let expected = inner.nodes[p].value.shape();
        S::with_value(tape, &g, |g| {
            assert!(
                g.shape() == expected,
                "backward of {} returned a gradient of shape {:?} for an input of shape {expected:?}",
                op.name(),
                g.shape()
            )
        });
        if check_anomaly && let Some(bad) = S::with_value(tape, &g, first_non_finite) {
            let shapes: Vec<Vec<usize>> =
                parents.iter().map(|&p| inner.nodes[p].value.shape().to_vec()).collect();
            let location =
                inner.origins.get(id).map_or_else(|| "an unknown line".to_string(), |l| l.to_string());
            return Err(anomaly(op.name(), " in backward", bad, &shapes, &location));
        }
        checked.push((p, g));
    }
    drop(inner);
    for (p, g) in checked {
        add(p, g);
    }
    Ok(())
}

/// A node's op, taken out while its rule runs (so that no borrow of the tape is held) and put
/// back when the rule returns, or unwinds.
struct TakenOp<'t, F: Float> {
    tape: &'t Tape<F>,
    id: NodeId,
    op: Option<Box<dyn Op<F>>>,
}

impl<F: Float> TakenOp<'_, F> {
    fn put_back(&mut self) {
        if let (Some(op), Ok(mut inner)) = (self.op.take(), self.tape.inner.try_borrow_mut())
            && let Some(node) = inner.nodes.get_mut(self.id)
        {
            node.op = Some(op);
        }
    }
}

impl<F: Float> Drop for TakenOp<'_, F> {
    fn drop(&mut self) {
        self.put_back();
    }
}

/// Gradients as plain values: rules compute with recording off, and their temporaries are freed
/// when they return.
pub(crate) struct Values;

impl<'t, F: Float> GradientStore<'t, F> for Values {
    type Grad = Value<F>;

    fn run_rule(
        tape: &'t Tape<F>,
        op: &dyn Op<F>,
        cx: Context<'t, F>,
        gy: Value<F>,
    ) -> SmallVec<[Option<Value<F>>; 2]> {
        let mut scope = ScopeGuard::open(tape);
        let gxs = op.backward(&cx, tape.constant(gy));
        check_handles(tape, op, &gxs);
        take_temporaries(tape, scope.take_mark(), &gxs)
    }

    fn accumulate(_tape: &'t Tape<F>, acc: &mut Value<F>, g: Value<F>) {
        acc.accumulate(g);
    }

    fn with_value<R>(_tape: &'t Tape<F>, g: &Value<F>, f: impl FnOnce(&Value<F>) -> R) -> R {
        f(g)
    }

    fn fast_backward(
        inner: &Inner<F>,
        id: NodeId,
        gy: &Value<F>,
        grads: &mut DenseGrads<Value<F>>,
        rows: &mut SparseGrads<F>,
        keep: &[NodeId],
    ) -> bool {
        let node = &inner.nodes[id];
        let op = node.op.as_deref().expect("recorded nodes have an op");
        op.fast_backward(&mut FastBackward::new(inner, node, gy, grads, rows, keep))
    }
}

/// Panics, naming the op, when a rule returned a `Var` of another tape or a freed one.
fn check_handles<F: Float>(tape: &Tape<F>, op: &dyn Op<F>, gxs: &Grads<'_, F>) {
    let inner = tape.inner.borrow();
    for (i, g) in gxs.iter().enumerate() {
        if let Some(Err(e)) = g.map(|g| tape.lookup(&inner, g, op.name(), i)) {
            panic!("backward of {} returned a gradient that cannot be used: {e}", op.name());
        }
    }
}

/// The values of a rule's gradients, then frees the rule's temporaries: a temporary returned
/// once is moved out, anything else is copied.
fn take_temporaries<F: Float>(
    tape: &Tape<F>,
    mark: ScopeMark,
    gxs: &Grads<'_, F>,
) -> SmallVec<[Option<Value<F>>; 2]> {
    let mut inner = tape.inner.borrow_mut();
    let mut values = SmallVec::new();
    for (i, g) in gxs.iter().enumerate() {
        values.push(g.map(|g| {
            let used_again = gxs[i + 1..].iter().any(|h| h.is_some_and(|h| h.id() == g.id()));
            match (used_again, inner.made_since(&mark, g.id())) {
                (false, true) => inner.free(g.id()).expect("a live temporary"),
                _ => inner.nodes[g.id()].value.clone(),
            }
        }));
    }
    inner.close_scope(mark);
    values
}

/// Gradients as nodes on the tape: every step of the backward pass is recorded.
pub(crate) struct Recorded;

impl<'t, F: Float> GradientStore<'t, F> for Recorded {
    type Grad = NodeId;

    fn run_rule(
        tape: &'t Tape<F>,
        op: &dyn Op<F>,
        cx: Context<'t, F>,
        gy: NodeId,
    ) -> SmallVec<[Option<NodeId>; 2]> {
        let gxs = op.backward(&cx, tape.handle(gy));
        check_handles(tape, op, &gxs);
        gxs.into_iter().map(|g| g.map(|g| g.id())).collect()
    }

    fn accumulate(tape: &'t Tape<F>, acc: &mut NodeId, g: NodeId) {
        *acc = or_panic(tape.record(Accumulate, &[tape.handle(*acc), tape.handle(g)])).id();
    }

    fn with_value<R>(tape: &'t Tape<F>, g: &NodeId, f: impl FnOnce(&Value<F>) -> R) -> R {
        f(&tape.inner.borrow().nodes[*g].value)
    }
}

/// Adds two gradients of the same shape: how the recorded backward pass accumulates. (Plain
/// backward adds values in place; this op exists so that the sum is itself differentiable.)
pub(crate) struct Accumulate;

impl<F: Float> Op<F> for Accumulate {
    fn name(&self) -> &'static str {
        "accumulate"
    }
    fn label(&self) -> String {
        "+".into()
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let mut sum = x[0].clone();
        sum.add_assign(x[1]);
        Ok(sum)
    }
    // da = gy, db = gy
    fn backward<'t>(&self, _cx: &Context<'t, F>, gy: Var<'t, F>) -> Grads<'t, F> {
        crate::grads![gy, gy]
    }
}
