//! Nodes, and recording one op: the only place nodes are added to a tape.
//!
//! Invariants:
//! - A node records its op and parents only when recording is on and some input requires a
//!   gradient; otherwise it is a constant (`op: None`, no parents), so constants cost no
//!   backward and keep nothing alive.
//! - `order` lists the recorded nodes in creation order, and a recorded node's `seq` is its
//!   position there.
//! - While a scope is open, every node made is logged in `created`, so closing the scope can
//!   free exactly what it made.

use std::panic::Location;

use slotmap::{SlotMap, SparseSecondaryMap};
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tape::op::Op;
use crate::tape::{NodeId, Tape, Var};
use crate::value::Value;

pub(crate) struct Node<F: Float> {
    pub(crate) value: Value<F>,
    /// The op that made this node; `None` for a leaf or a constant.
    pub(crate) op: Option<Box<dyn Op<F>>>,
    pub(crate) parents: SmallVec<[NodeId; 2]>,
    pub(crate) requires_grad: bool,
    /// Survives [`Tape::reset`] and scopes (parameters and buffers).
    pub(crate) persistent: bool,
    /// Position in `Inner::order` (recorded nodes only).
    pub(crate) seq: u32,
}

impl<F: Float> Node<F> {
    pub(crate) fn leaf(value: Value<F>, requires_grad: bool, persistent: bool) -> Self {
        Node { value, op: None, parents: SmallVec::new(), requires_grad, persistent, seq: 0 }
    }
}

/// Everything a tape holds, behind its `RefCell`.
pub(crate) struct Inner<F: Float> {
    pub(crate) nodes: SlotMap<NodeId, Node<F>>,
    /// Recorded nodes in creation order.
    pub(crate) order: Vec<NodeId>,
    pub(crate) names: SparseSecondaryMap<NodeId, String>,
    /// Where each node was created, kept in anomaly mode only.
    pub(crate) origins: SparseSecondaryMap<NodeId, &'static Location<'static>>,
    /// Nodes made while a scope is open, in creation order.
    created: Vec<NodeId>,
    open_scopes: u32,
    /// How many times the tape was reset: a scope that saw a reset frees all that was made
    /// since (its own mark no longer points into `created` and `order`).
    resets: u64,
    /// The leaves whose values [`Var::update`](crate::Var::update) has taken out while their
    /// closures run (nested updates make more than one).
    pub(crate) updating: SmallVec<[NodeId; 1]>,
}

/// Where a scope began: how much of `created` and `order` came before it.
pub(crate) struct ScopeMark {
    created: usize,
    order: usize,
    resets: u64,
}

impl<F: Float> Inner<F> {
    pub(crate) fn with_capacity(nodes: usize) -> Self {
        Inner {
            nodes: SlotMap::with_capacity_and_key(nodes),
            order: Vec::with_capacity(nodes),
            names: SparseSecondaryMap::new(),
            origins: SparseSecondaryMap::new(),
            created: Vec::new(),
            open_scopes: 0,
            updating: SmallVec::new(),
            resets: 0,
        }
    }

    /// Adds a node, logging it when a scope is open.
    #[inline]
    pub(crate) fn insert(&mut self, node: Node<F>) -> NodeId {
        let recorded = node.op.is_some();
        let id = self.nodes.insert(node);
        if recorded {
            self.order.push(id);
        }
        if self.open_scopes > 0 {
            self.created.push(id);
        }
        id
    }

    pub(crate) fn open_scope(&mut self) -> ScopeMark {
        self.open_scopes += 1;
        ScopeMark { created: self.created.len(), order: self.order.len(), resets: self.resets }
    }

    /// Frees every node made since `mark` but the persistent ones.
    pub(crate) fn close_scope(&mut self, mark: ScopeMark) {
        self.open_scopes -= 1;
        // After a reset inside the scope, everything made since the reset was made inside it.
        let mark = if mark.resets == self.resets { mark } else { ScopeMark { created: 0, order: 0, ..mark } };
        for i in mark.created..self.created.len() {
            let id = self.created[i];
            if self.nodes.get(id).is_some_and(|n| !n.persistent) {
                self.free(id);
            }
        }
        self.created.truncate(mark.created);
        self.order.truncate(mark.order);
    }

    /// Removes one node and what is kept beside it, returning its value.
    pub(crate) fn free(&mut self, id: NodeId) -> Option<Value<F>> {
        let node = self.nodes.remove(id)?;
        if !self.names.is_empty() {
            self.names.remove(id);
        }
        if !self.origins.is_empty() {
            self.origins.remove(id);
        }
        Some(node.value)
    }

    pub(crate) fn reset(&mut self) {
        self.resets += 1;
        let Inner { nodes, order, names, origins, created, .. } = self;
        nodes.retain(|_, n| n.persistent);
        names.retain(|id, _| nodes.contains_key(id));
        origins.clear();
        order.clear();
        created.clear();
    }

    /// Whether `id` was made since `mark` (a temporary of the scope that `mark` began).
    pub(crate) fn made_since(&self, mark: &ScopeMark, id: NodeId) -> bool {
        let start = if mark.resets == self.resets { mark.created } else { 0 };
        self.created[start..].contains(&id) && self.nodes.get(id).is_some_and(|n| !n.persistent)
    }
}

impl<F: Float> Tape<F> {
    /// Applies `op` to `inputs` (a user-defined op with several inputs), panicking at the
    /// caller's line with the op's error. See [`op`](crate::op) for a complete op.
    ///
    /// ```
    /// use tapegrad::{ops::binary::Maximum, Tape};
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(1.0), tape.var(2.0));
    /// assert_eq!(tape.apply(Maximum, &[a, b]).scalar(), 2.0);
    /// ```
    #[track_caller]
    pub fn apply<'t>(&'t self, op: impl Op<F>, inputs: &[Var<'t, F>]) -> Var<'t, F> {
        crate::error::or_panic(self.try_apply(op, inputs))
    }

    /// Like [`apply`](Self::apply), returning the error.
    #[track_caller]
    pub fn try_apply<'t>(&'t self, op: impl Op<F>, inputs: &[Var<'t, F>]) -> Result<Var<'t, F>> {
        if inputs.is_empty() {
            return Err(Error::argument(op.name(), "an op needs at least one input"));
        }
        self.record(op, inputs)
    }

    /// Runs `op` forward on `inputs` and adds its node. The node records the op only when
    /// recording is on and some input requires a gradient; otherwise it is a constant.
    #[track_caller]
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
        let anomaly = self.detect_anomaly();
        if anomaly {
            self.check_forward(&inner, &op, inputs, &value)?;
        }
        let node = if requires_grad && self.is_recording() {
            let seq = u32::try_from(inner.order.len()).expect("fewer than 2^32 ops on one tape");
            let parents = match *inputs {
                [x] => SmallVec::from_slice(&[x.id()]),
                [x, y] => SmallVec::from_buf([x.id(), y.id()]),
                _ => inputs.iter().map(Var::id).collect(),
            };
            Node { value, op: Some(Box::new(op)), parents, requires_grad: true, persistent: false, seq }
        } else {
            Node::leaf(value, false, false)
        };
        let id = inner.insert(node);
        if anomaly {
            inner.origins.insert(id, Location::caller());
        }
        Ok(self.handle(id))
    }

    /// Anomaly mode's forward check: an error when `op` made a non-finite value from finite
    /// inputs.
    #[track_caller]
    fn check_forward(
        &self,
        inner: &Inner<F>,
        op: &dyn Op<F>,
        inputs: &[Var<'_, F>],
        value: &Value<F>,
    ) -> Result<()> {
        let Some(bad) = first_non_finite(value) else { return Ok(()) };
        let values = || inputs.iter().map(|v| &inner.nodes[v.id()].value);
        if values().any(|v| first_non_finite(v).is_some()) {
            return Ok(());
        }
        let shapes: Vec<Vec<usize>> = values().map(|v| v.shape().to_vec()).collect();
        Err(anomaly(op.name(), "", bad, &shapes, Location::caller()))
    }

    /// The node behind `v`, or the error naming `op` and operand `i`: a handle from another
    /// tape, a freed node, or the leaf that `Var::update` is changing.
    #[inline]
    pub(crate) fn lookup<'i>(
        &self,
        inner: &'i Inner<F>,
        v: Var<'_, F>,
        op: &'static str,
        i: usize,
    ) -> Result<&'i Node<F>> {
        let node = if std::ptr::eq(v.tape(), self) { inner.nodes.get(v.id()) } else { None };
        match node {
            Some(node) if !inner.updating.contains(&v.id()) => Ok(node),
            _ => Err(self.lookup_error(inner, v, op, i)),
        }
    }

    #[cold]
    fn lookup_error(&self, inner: &Inner<F>, v: Var<'_, F>, op: &'static str, i: usize) -> Error {
        if !std::ptr::eq(v.tape(), self) {
            Error::ForeignTape { op, what: format!("operand {i} ({})", v.key()) }
        } else if inner.updating.contains(&v.id()) {
            let message = format!("{} is being changed by Var::update; read it before the update", v.key());
            Error::argument(op, message)
        } else {
            Error::Freed { op, var: v.key() }
        }
    }

    #[track_caller]
    pub(crate) fn with_node<R>(&self, v: Var<'_, F>, op: &'static str, f: impl FnOnce(&Node<F>) -> R) -> R {
        let inner = self.inner.borrow();
        match self.lookup(&inner, v, op, 0) {
            Ok(node) => f(node),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The first NaN or infinity in `value`, as text.
pub(crate) fn first_non_finite<F: Float>(value: &Value<F>) -> Option<String> {
    let bad = match value {
        Value::Scalar(x) => Some(*x).filter(|x| !x.is_finite()),
        Value::Array(a) => a.iter().copied().find(|x| !x.is_finite()),
    }?;
    Some(format!("{bad}"))
}

/// The anomaly error for `op`.
pub(crate) fn anomaly(
    op: &'static str,
    stage: &str,
    bad: String,
    shapes: &[Vec<usize>],
    location: &dyn std::fmt::Display,
) -> Error {
    let plural = if shapes.len() > 1 { "s" } else { "" };
    let shapes = shapes.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    Error::Anomaly {
        op,
        message: format!(
            "produced {bad}{stage} from finite inputs of shape{plural} {shapes} (node created at {location})"
        ),
    }
}
