//! The tape: [`Tape`] owns every node in a `SlotMap`; [`Var`] is a `Copy` handle to one.
//!
//! Invariants:
//! - A node's inputs were created before it, so the creation order kept in `order` is already a
//!   topological order: backward is a reverse scan with an explicit loop, no recursion and no
//!   sort, and a 100,000-node chain is as safe as a 3-node one.
//! - Gradients live in a store apart from the values; an intermediate gradient is dropped as soon
//!   as its node's rule has consumed it.
//! - Keys are versioned: a handle to a node freed by [`Tape::reset`] is detected and reported,
//!   never silently aliased to the node that reuses its slot. A handle from another tape is
//!   detected by comparing tapes.
//!
//! The tape knows the [`Op`] protocol but no particular op.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use slotmap::{Key, SecondaryMap, SlotMap, SparseSecondaryMap};
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::op::{Context, Grads, Op, Tensor};
use crate::value::{Shape, Value, same_shape};

slotmap::new_key_type! {
    /// The key of a node on its tape (index and version).
    pub struct NodeId;
}

pub(crate) struct Node<F: Float> {
    pub(crate) value: Value<F>,
    /// The op that made this node; `None` for a leaf or a constant.
    pub(crate) op: Option<Box<dyn Op<F>>>,
    pub(crate) parents: SmallVec<[NodeId; 2]>,
    pub(crate) requires_grad: bool,
    /// Survives [`Tape::reset`] (parameters).
    persistent: bool,
    /// Position in `Inner::order` (op nodes only).
    seq: u32,
}

#[derive(Default)]
pub(crate) struct Inner<F: Float> {
    pub(crate) nodes: SlotMap<NodeId, Node<F>>,
    /// Op nodes in creation order.
    order: Vec<NodeId>,
    pub(crate) names: SparseSecondaryMap<NodeId, String>,
}

/// The recording of a computation: every operation on a [`Var`] adds a node.
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let apple = tape.var(100.0);
/// let num = tape.var(2.0);
/// let tax = tape.var(1.1);
/// let price = apple * num * tax;
/// let grads = price.backward();
/// assert!((price.scalar() - 220.0).abs() < 1e-9);
/// assert!((grads[apple].scalar().unwrap() - 2.2).abs() < 1e-12);
/// assert!((grads[num].scalar().unwrap() - 110.0).abs() < 1e-9);
/// assert!((grads[tax].scalar().unwrap() - 200.0).abs() < 1e-12);
/// ```
pub struct Tape<F: Float> {
    pub(crate) inner: RefCell<Inner<F>>,
    recording: Cell<bool>,
    id: u64,
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

impl<F: Float> Default for Tape<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Float> Tape<F> {
    /// An empty tape, recording.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty tape with room for `nodes` nodes before it reallocates.
    pub fn with_capacity(nodes: usize) -> Self {
        Tape {
            inner: RefCell::new(Inner {
                nodes: SlotMap::with_capacity_and_key(nodes),
                order: Vec::with_capacity(nodes),
                names: SparseSecondaryMap::new(),
            }),
            recording: Cell::new(true),
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A leaf that requires a gradient. Accepts a scalar, an `ndarray` array of any rank, a
    /// `Vec` or an array literal.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(x.shape().as_slice(), &[2, 2]);
    /// ```
    pub fn var(&self, value: impl Into<Value<F>>) -> Var<'_, F> {
        self.leaf(value.into(), true, false)
    }

    /// A leaf that needs no gradient: operations on constants alone record no backward.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let c = tape.constant(3.0);
    /// assert!(!(c * c).requires_grad());
    /// ```
    pub fn constant(&self, value: impl Into<Value<F>>) -> Var<'_, F> {
        self.leaf(value.into(), false, false)
    }

    /// A model parameter: a leaf that requires a gradient and survives [`reset`](Self::reset).
    /// Returns a [`Param`], a handle without a lifetime that a model can keep; [`get`](Self::get)
    /// gives its `Var` on each step.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.param(2.0);
    /// for step in 0..2 {
    ///     let y = (tape.get(w) * 3.0).sum();
    ///     let grads = y.backward();
    ///     assert_eq!(grads[w].scalar(), Some(3.0));
    ///     tape.reset();
    /// }
    /// assert_eq!(tape.get(w).scalar(), 2.0);
    /// ```
    pub fn param(&self, value: impl Into<Value<F>>) -> Param {
        Param { id: self.leaf(value.into(), true, true).id, tape: self.id }
    }

    /// A persistent leaf that needs no gradient: model state that is not trained, such as
    /// batch-norm running statistics. Like a parameter it survives [`reset`](Self::reset).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let running = tape.buffer(vec![0.0, 1.0]);
    /// tape.reset();
    /// assert!(!tape.get(running).requires_grad());
    /// ```
    pub fn buffer(&self, value: impl Into<Value<F>>) -> Param {
        Param { id: self.leaf(value.into(), false, true).id, tape: self.id }
    }

    /// The `Var` of a parameter on this tape.
    ///
    /// Panics if the parameter belongs to another tape.
    #[track_caller]
    pub fn get(&self, param: Param) -> Var<'_, F> {
        if param.tape != self.id {
            panic!("{}", Error::ForeignTape { op: "Tape::get", what: format!("{param:?}") });
        }
        self.handle(param.id)
    }

    fn leaf(&self, value: Value<F>, requires_grad: bool, persistent: bool) -> Var<'_, F> {
        let node = Node { value, op: None, parents: SmallVec::new(), requires_grad, persistent, seq: 0 };
        self.handle(self.inner.borrow_mut().nodes.insert(node))
    }

    pub(crate) fn handle(&self, id: NodeId) -> Var<'_, F> {
        Var { tape: self, id }
    }

    /// Applies `op` to `inputs` (a user-defined op with several inputs), panicking at the
    /// caller's line with the op's error. See [`op`](crate::op) for a complete op.
    #[track_caller]
    pub fn apply<'t>(&'t self, op: impl Op<F>, inputs: &[Var<'t, F>]) -> Var<'t, F> {
        crate::op::or_panic(self.try_apply(op, inputs))
    }

    /// Like [`apply`](Self::apply), returning the error.
    pub fn try_apply<'t>(&'t self, op: impl Op<F>, inputs: &[Var<'t, F>]) -> Result<Var<'t, F>> {
        if inputs.is_empty() {
            return Err(Error::argument(op.name(), "an op needs at least one input"));
        }
        self.record(op, inputs)
    }

    /// Runs `op` forward and adds its node. The node records the op only when recording is on
    /// and some input requires a gradient; otherwise it is a constant.
    pub(crate) fn record<'t>(&'t self, op: impl Op<F>, inputs: &[Var<'t, F>]) -> Result<Var<'t, F>> {
        let mut inner = self.inner.borrow_mut();
        let node = |i: usize| self.lookup(&inner, inputs[i], op.name(), i);
        let (value, requires_grad) = match inputs.len() {
            1 => {
                let x = node(0)?;
                (op.forward(&[&x.value])?, x.requires_grad)
            }
            2 => {
                let (x, y) = (node(0)?, node(1)?);
                (op.forward(&[&x.value, &y.value])?, x.requires_grad || y.requires_grad)
            }
            n => {
                let nodes = (0..n).map(node).collect::<Result<SmallVec<[_; 4]>>>()?;
                let values: SmallVec<[_; 4]> = nodes.iter().map(|n| &n.value).collect();
                (op.forward(&values)?, nodes.iter().any(|n| n.requires_grad))
            }
        };
        let node = if requires_grad && self.recording.get() {
            let seq = u32::try_from(inner.order.len()).expect("fewer than 2^32 ops on one tape");
            Node {
                value,
                op: Some(Box::new(op)),
                parents: ids(inputs),
                requires_grad: true,
                persistent: false,
                seq,
            }
        } else {
            Node {
                value,
                op: None,
                parents: SmallVec::new(),
                requires_grad: false,
                persistent: false,
                seq: 0,
            }
        };
        let recorded = node.op.is_some();
        let id = inner.nodes.insert(node);
        if recorded {
            inner.order.push(id);
        }
        Ok(self.handle(id))
    }

    fn lookup<'i>(
        &self,
        inner: &'i Inner<F>,
        v: Var<'_, F>,
        op: &'static str,
        i: usize,
    ) -> Result<&'i Node<F>> {
        if !std::ptr::eq(v.tape, self) {
            return Err(Error::ForeignTape { op, what: format!("operand {i} ({})", v.key()) });
        }
        inner.nodes.get(v.id).ok_or_else(|| Error::Freed { op, var: v.key() })
    }

    #[track_caller]
    fn with_node<R>(&self, v: Var<'_, F>, op: &'static str, f: impl FnOnce(&Node<F>) -> R) -> R {
        let inner = self.inner.borrow();
        match self.lookup(&inner, v, op, 0) {
            Ok(node) => f(node),
            Err(e) => panic!("{e}"),
        }
    }

    /// Frees every node but the parameters ([`param`](Self::param)), ready for the next step.
    /// Using a freed `Var` afterwards panics with a message saying so.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.param(1.0);
    /// let y = tape.get(w) * 2.0;
    /// tape.reset();
    /// assert_eq!(tape.len(), 1);
    /// assert!(y.try_value().is_err());
    /// ```
    pub fn reset(&self) {
        let mut inner = self.inner.borrow_mut();
        let Inner { nodes, order, names } = &mut *inner;
        nodes.retain(|_, n| n.persistent);
        names.retain(|id, _| nodes.contains_key(id));
        order.clear();
    }

    /// The number of live nodes.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    /// Whether the tape holds no node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of recorded operations (nodes with a backward rule).
    pub fn num_ops(&self) -> usize {
        self.inner.borrow().order.len()
    }

    /// Whether operations are being recorded (false inside [`no_grad`](Self::no_grad)).
    pub fn is_recording(&self) -> bool {
        self.recording.get()
    }

    /// Stops recording until the returned guard is dropped: values are computed, no backward
    /// is kept (evaluation, optimizer updates).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let y = {
    ///     let _guard = tape.no_grad();
    ///     x * x
    /// };
    /// assert_eq!(y.scalar(), 9.0);
    /// assert!(!y.requires_grad());
    /// assert!((x * x).requires_grad());
    /// ```
    pub fn no_grad(&self) -> NoGradGuard<'_, F> {
        NoGradGuard { tape: self, was_recording: self.recording.replace(false) }
    }

    /// Gradients of `output` with respect to `wrt` as `Var`s on this tape. With
    /// `create_graph: true` every step of the backward pass is recorded, so the gradients can be
    /// differentiated again; a `wrt` that does not influence `output` gets zeros.
    ///
    /// ```
    /// use tapegrad::{GradOptions, Tape};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(2.0);
    /// let y = x * x * x;                                   // y = x³
    /// let [dy] = tape.grad(y, [x], GradOptions { create_graph: true });
    /// assert_eq!(dy.scalar(), 12.0);                       // 3x²
    /// let [d2y] = tape.grad(dy, [x], GradOptions { create_graph: true });
    /// assert_eq!(d2y.scalar(), 12.0);                      // 6x
    /// ```
    #[track_caller]
    pub fn grad<'t, const N: usize>(
        &'t self,
        output: Var<'t, F>,
        wrt: [Var<'t, F>; N],
        options: GradOptions,
    ) -> [Var<'t, F>; N] {
        crate::op::or_panic(self.try_grad(output, wrt, options))
    }

    /// Like [`grad`](Self::grad), returning the error.
    pub fn try_grad<'t, const N: usize>(
        &'t self,
        output: Var<'t, F>,
        wrt: [Var<'t, F>; N],
        options: GradOptions,
    ) -> Result<[Var<'t, F>; N]> {
        let grads = self.try_grad_vec(output, &wrt, options)?;
        Ok(std::array::from_fn(|i| grads[i]))
    }

    /// Like [`grad`](Self::grad) for a number of variables known only at run time (a model's
    /// parameters): one gradient per element of `wrt`, in order.
    ///
    /// ```
    /// use tapegrad::{GradOptions, Tape};
    /// let tape = Tape::<f64>::new();
    /// let xs: Vec<_> = (1..=3).map(|i| tape.var(i as f64)).collect();
    /// let y = xs[0] * xs[1] * xs[2];
    /// let g = tape.grad_vec(y, &xs, GradOptions::default());
    /// assert_eq!(g.iter().map(|g| g.scalar()).collect::<Vec<_>>(), vec![6.0, 3.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn grad_vec<'t>(
        &'t self,
        output: Var<'t, F>,
        wrt: &[Var<'t, F>],
        options: GradOptions,
    ) -> Vec<Var<'t, F>> {
        crate::op::or_panic(self.try_grad_vec(output, wrt, options))
    }

    /// Like [`grad_vec`](Self::grad_vec), returning the error.
    pub fn try_grad_vec<'t>(
        &'t self,
        output: Var<'t, F>,
        wrt: &[Var<'t, F>],
        options: GradOptions,
    ) -> Result<Vec<Var<'t, F>>> {
        let shape = Shape::from_slice(self.lookup(&self.inner.borrow(), output, "grad", 0)?.value.shape());
        if !shape.is_empty() {
            return Err(Error::NotScalar { shape: shape.to_vec() });
        }
        for (i, w) in wrt.iter().enumerate() {
            self.lookup(&self.inner.borrow(), *w, "grad", i + 1)?;
        }
        let keep: Vec<NodeId> = wrt.iter().map(|w| w.id).collect();
        if !options.create_graph {
            let grads = self.backward_values(output, Value::Scalar(F::one()), &keep)?;
            let gradient =
                |w: &Var<'t, F>| grads.grads.get(w.id).cloned().unwrap_or_else(|| Value::zeros(&w.shape()));
            return Ok(wrt.iter().map(|w| self.constant(gradient(w))).collect());
        }
        let grads = self.backward_graph(output, &keep);
        Ok(wrt
            .iter()
            .map(|w| match grads.get(w.id) {
                Some(&g) => self.handle(g),
                None => self.constant(Value::zeros(&w.shape())),
            })
            .collect())
    }

    /// Backward with every rule recorded on the tape; returns gradient nodes for `keep` (and
    /// leaves).
    fn backward_graph(&self, output: Var<'_, F>, keep: &[NodeId]) -> SecondaryMap<NodeId, NodeId> {
        let mut grads: SecondaryMap<NodeId, NodeId> = SecondaryMap::new();
        let (end, requires_grad) = {
            let inner = self.inner.borrow();
            let node = &inner.nodes[output.id];
            (if node.op.is_some() { node.seq as usize + 1 } else { 0 }, node.requires_grad)
        };
        if !requires_grad {
            return grads;
        }
        grads.insert(output.id, self.constant(F::one()).id);
        for i in (0..end).rev() {
            let id = self.inner.borrow().order[i];
            let gy = if keep.contains(&id) { grads.get(id).copied() } else { grads.remove(id) };
            let Some(gy) = gy else { continue };
            let (op, parents, needs) = {
                let mut inner = self.inner.borrow_mut();
                let node = &mut inner.nodes[id];
                let op = node.op.take().expect("recorded nodes have an op");
                let parents = node.parents.clone();
                let needs = parents.iter().map(|&p| inner.nodes[p].requires_grad).collect();
                (op, parents, needs)
            };
            let cx = Context::graph(self, parents.clone(), id, needs);
            let gxs = op.backward(&cx, Tensor::from(self.handle(gy)));
            self.check_grads(&*op, &parents, &gxs);
            let name = op.name();
            self.inner.borrow_mut().nodes[id].op = Some(op);
            for (&p, g) in parents.iter().zip(gxs) {
                let Some(g) = g else { continue };
                if !self.inner.borrow().nodes[p].requires_grad {
                    continue;
                }
                let g = g.into_var(self);
                self.check_shape(name, p, &g.shape());
                let sum = match grads.get(p) {
                    Some(&acc) => crate::op::or_panic(self.record(Accumulate, &[self.handle(acc), g])).id,
                    None => g.id,
                };
                grads.insert(p, sum);
            }
        }
        grads
    }

    fn check_grads(&self, op: &dyn Op<F>, parents: &[NodeId], grads: &Grads<'_, F>) {
        assert_eq!(
            grads.len(),
            parents.len(),
            "backward of {} returned {} gradients for {} inputs",
            op.name(),
            grads.len(),
            parents.len()
        );
    }

    fn check_shape(&self, op: &str, parent: NodeId, shape: &[usize]) {
        let inner = self.inner.borrow();
        let expected = inner.nodes[parent].value.shape();
        assert_eq!(
            expected, shape,
            "backward of {op} returned a gradient of shape {shape:?} for an input of shape {expected:?}"
        );
    }

    /// Plain backward; the gradients of the leaves, and of the nodes in `keep`, are returned.
    fn backward_values(&self, output: Var<'_, F>, seed: Value<F>, keep: &[NodeId]) -> Result<Gradients<F>> {
        let inner = self.inner.borrow();
        let node = self.lookup(&inner, output, "backward", 0)?;
        if seed.shape() != node.value.shape() {
            return Err(Error::shape(
                "backward",
                &[node.value.shape(), seed.shape()],
                "a seed gradient of the output's shape",
            ));
        }
        if !node.requires_grad {
            return Ok(Gradients { grads: SecondaryMap::new(), tape: self.id });
        }
        let mut grads = SecondaryMap::with_capacity(inner.nodes.capacity());
        let end = if node.op.is_some() { node.seq as usize + 1 } else { 0 };
        grads.insert(output.id, seed);
        for &id in inner.order[..end].iter().rev() {
            let gy = if keep.contains(&id) { grads.get(id).cloned() } else { grads.remove(id) };
            let Some(gy) = gy else { continue };
            let node = &inner.nodes[id];
            let op = node.op.as_deref().expect("recorded nodes have an op");
            let parents: SmallVec<[&Node<F>; 2]> = match node.parents.as_slice() {
                &[p] => SmallVec::from_buf_and_len([&inner.nodes[p], &inner.nodes[p]], 1),
                &[p, q] => SmallVec::from_buf([&inner.nodes[p], &inner.nodes[q]]),
                ps => ps.iter().map(|&p| &inner.nodes[p]).collect(),
            };
            if let Some(scalar_grads) = scalar_backward(op, &parents, &node.value, &gy) {
                for ((&p, parent), g) in node.parents.iter().zip(parents).zip(scalar_grads) {
                    let Some(g) = g.filter(|_| parent.requires_grad) else { continue };
                    match grads.get_mut(p) {
                        Some(acc) => acc.add_assign(&Value::Scalar(g)),
                        None => {
                            grads.insert(p, Value::Scalar(g));
                        }
                    }
                }
                continue;
            }
            let cx = Context::values(
                parents.iter().map(|p| &p.value).collect(),
                &node.value,
                parents.iter().map(|p| p.requires_grad).collect(),
            );
            let gxs = op.backward(&cx, Tensor::from(gy));
            self.check_grads(op, &node.parents, &gxs);
            for ((&p, parent), g) in node.parents.iter().zip(parents).zip(gxs) {
                let Some(g) = g else { continue };
                if !parent.requires_grad {
                    continue;
                }
                let g = g.into_value();
                if !same_shape(g.shape(), parent.value.shape()) {
                    self.check_shape(op.name(), p, g.shape());
                }
                match grads.get_mut(p) {
                    Some(acc) => acc.add_assign(&g),
                    None => {
                        grads.insert(p, g);
                    }
                }
            }
        }
        Ok(Gradients { grads, tape: self.id })
    }
}

/// The keys of `inputs`, without the generic collect (this is on every op's path).
fn ids<F: Float>(inputs: &[Var<'_, F>]) -> SmallVec<[NodeId; 2]> {
    match inputs {
        [x] => SmallVec::from_buf_and_len([x.id, NodeId::default()], 1),
        [x, y] => SmallVec::from_buf([x.id, y.id]),
        xs => xs.iter().map(|v| v.id).collect(),
    }
}

/// The op's scalar rule, when the output, `gy` and every input are scalars and the op has one.
fn scalar_backward<F: Float>(
    op: &dyn Op<F>,
    parents: &[&Node<F>],
    output: &Value<F>,
    gy: &Value<F>,
) -> Option<crate::op::ScalarGrads<F>> {
    let (Value::Scalar(y), Value::Scalar(g)) = (output, gy) else { return None };
    let scalar = |p: &Node<F>| match p.value {
        Value::Scalar(x) => Some(x),
        Value::Array(_) => None,
    };
    match parents {
        [p] => op.backward_scalar(&[scalar(p)?], *y, *g),
        [p, q] => op.backward_scalar(&[scalar(p)?, scalar(q)?], *y, *g),
        _ => None,
    }
}

impl<F: Float> fmt::Debug for Tape<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("Tape")
            .field("nodes", &inner.nodes.len())
            .field("ops", &inner.order.len())
            .field("recording", &self.recording.get())
            .finish()
    }
}

/// A handle to a parameter ([`Tape::param`]): a persistent leaf, kept by models across steps.
/// It has no lifetime; [`Tape::get`] turns it into a [`Var`], and [`Gradients`] are indexed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Param {
    id: NodeId,
    tape: u64,
}

/// Options of [`Tape::grad`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradOptions {
    /// Record the backward pass so the gradients can be differentiated again.
    pub create_graph: bool,
}

/// Restores recording when dropped; see [`Tape::no_grad`].
pub struct NoGradGuard<'t, F: Float> {
    tape: &'t Tape<F>,
    was_recording: bool,
}

impl<F: Float> Drop for NoGradGuard<'_, F> {
    fn drop(&mut self) {
        self.tape.recording.set(self.was_recording);
    }
}

/// Adds two gradients of the same shape: how the differentiable backward pass accumulates.
struct Accumulate;

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
    fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Tensor<'a, F>) -> Grads<'a, F> {
        crate::grads![gy.clone(), gy]
    }
}

/// A handle to a node on a [`Tape`]: cheap to copy, used like a number.
///
/// Operators work between `Var`s and with `f32`/`f64` scalars on either side (`2.0 * x`,
/// `x - 1.0`); the operations are methods (`x.tanh()`, `a.matmul(b)`, `x.sum()`).
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
    /// The tape this handle points into.
    pub fn tape(&self) -> &'t Tape<F> {
        self.tape
    }

    /// The node's key on its tape.
    pub fn id(&self) -> NodeId {
        self.id
    }

    fn key(&self) -> String {
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
    pub fn try_value(&self) -> Result<Value<F>> {
        let inner = self.tape.inner.borrow();
        self.tape.lookup(&inner, *self, "value", 0).map(|n| n.value.clone())
    }

    /// The value as an owned `ndarray` array.
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
    #[track_caller]
    pub fn shape(&self) -> Shape {
        self.tape.with_node(*self, "shape", |n| Shape::from_slice(n.value.shape()))
    }

    fn try_shape(&self) -> Result<Shape> {
        let inner = self.tape.inner.borrow();
        self.tape.lookup(&inner, *self, "shape", 0).map(|n| Shape::from_slice(n.value.shape()))
    }

    /// The number of axes.
    #[track_caller]
    pub fn ndim(&self) -> usize {
        self.tape.with_node(*self, "ndim", |n| n.value.ndim())
    }

    /// Whether gradients flow to this node (a leaf made by [`Tape::var`] or [`Tape::param`], or
    /// the result of recording on such).
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

    /// Replaces the value of a leaf (a parameter update), keeping its shape.
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
        crate::op::or_panic(self.try_update(|v| *v = value.into()))
    }

    /// Changes the value of a leaf in place; the shape must stay the same.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.var(1.0);
    /// w.update(|v| v.map_inplace(|x| x - 0.1));
    /// assert_eq!(w.scalar(), 0.9);
    /// ```
    #[track_caller]
    pub fn update(&self, f: impl FnOnce(&mut Value<F>)) {
        crate::op::or_panic(self.try_update(f))
    }

    /// Like [`update`](Self::update), returning the error.
    pub fn try_update(&self, f: impl FnOnce(&mut Value<F>)) -> Result<()> {
        let mut inner = self.tape.inner.borrow_mut();
        self.tape.lookup(&inner, *self, "update", 0)?;
        let node = &mut inner.nodes[self.id];
        if node.op.is_some() {
            return Err(Error::argument("update", "only leaves (var, param, constant) can be changed"));
        }
        let shape = Shape::from_slice(node.value.shape());
        f(&mut node.value);
        if node.value.shape() != shape.as_slice() {
            let new = node.value.shape().to_vec();
            node.value = Value::zeros(&shape);
            return Err(Error::shape("update", &[&shape, &new], "the leaf's shape to stay the same"));
        }
        Ok(())
    }

    /// Applies a one-input op (see [`op`](crate::op) for writing one).
    #[track_caller]
    pub fn apply(self, op: impl Op<F>) -> Self {
        self.tape.apply(op, &[self])
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
        crate::op::or_panic(self.try_backward())
    }

    /// Like [`backward`](Self::backward), returning the error.
    pub fn try_backward(self) -> Result<Gradients<F>> {
        let shape = self.try_shape()?;
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
        crate::op::or_panic(self.tape.backward_values(self, seed.into(), &[]))
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

/// The gradients from one backward pass, one per leaf that requires a gradient and influences
/// the output. Index with the leaf's [`Var`].
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let (a, b) = (tape.var(2.0), tape.var(5.0));
/// let grads = (a * 3.0).backward();
/// assert_eq!(grads[a].scalar(), Some(3.0));
/// assert!(grads.get(b).is_none());        // b does not influence the output
/// ```
pub struct Gradients<F: Float> {
    grads: SecondaryMap<NodeId, Value<F>>,
    tape: u64,
}

impl<F: Float> Gradients<F> {
    /// The gradient for `var`, or `None` if it does not influence the output (its gradient is
    /// zero) or needs none.
    ///
    /// Panics if `var` belongs to another tape.
    #[track_caller]
    pub fn get(&self, var: Var<'_, F>) -> Option<&Value<F>> {
        if var.tape.id != self.tape {
            panic!("{}", Error::ForeignTape { op: "Gradients::get", what: var.key() });
        }
        let gradient = self.grads.get(var.id);
        if gradient.is_none() && var.tape.inner.borrow().nodes.get(var.id).is_some_and(|n| n.op.is_some()) {
            panic!(
                "Gradients::get: {} is an intermediate result; backward() keeps the gradients of \
                 leaves only. Use tape.grad(output, [var], options) for an intermediate's gradient",
                var.key()
            );
        }
        gradient
    }

    /// The gradient for `var`, zeros of its shape when it does not influence the output.
    #[track_caller]
    pub fn wrt(&self, var: Var<'_, F>) -> Value<F> {
        self.get(var).cloned().unwrap_or_else(|| Value::zeros(&var.shape()))
    }

    /// The number of gradients held.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Value<F>> {
        self.grads.values_mut()
    }

    pub(crate) fn by_id(&self, id: NodeId) -> Option<&Value<F>> {
        self.grads.get(id)
    }

    pub(crate) fn tape_id(&self) -> u64 {
        self.tape
    }
}

impl<F: Float> fmt::Debug for Gradients<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.grads.iter()).finish()
    }
}

impl<F: Float> Gradients<F> {
    /// The gradient for a parameter; `None` if it does not influence the output.
    ///
    /// Panics if the parameter belongs to another tape.
    #[track_caller]
    pub fn param(&self, param: Param) -> Option<&Value<F>> {
        if param.tape != self.tape {
            panic!("{}", Error::ForeignTape { op: "Gradients::param", what: format!("{param:?}") });
        }
        self.grads.get(param.id)
    }
}

impl<F: Float> std::ops::Index<Param> for Gradients<F> {
    type Output = Value<F>;

    #[track_caller]
    fn index(&self, param: Param) -> &Value<F> {
        match self.param(param) {
            Some(g) => g,
            None => panic!("Gradients[{param:?}]: no gradient; the output does not depend on it"),
        }
    }
}

impl<'t, F: Float> std::ops::Index<Var<'t, F>> for Gradients<F> {
    type Output = Value<F>;

    #[track_caller]
    fn index(&self, var: Var<'t, F>) -> &Value<F> {
        match self.get(var) {
            Some(g) => g,
            None => panic!(
                "Gradients[{}]: no gradient; the output does not depend on it (its gradient is \
                 zero) or it is a constant. Use Gradients::get or Gradients::wrt for zeros",
                var.key()
            ),
        }
    }
}

impl<F: Float> Tape<F> {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}
