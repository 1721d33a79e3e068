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
//! - `bytes` is what the live nodes hold, as [`TapeStats::bytes`](crate::TapeStats) counts it:
//!   added where a node is inserted, subtracted where one is freed, and after a reset what the
//!   parameters and buffers hold (`persistent_bytes`, counted where they are inserted; a leaf's
//!   value may change, never its shape). Insertion compares it with `warn_at` in one branch.

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
    /// Bytes held by the live nodes and their values.
    pub(crate) bytes: usize,
    /// The part of `bytes` that the parameters and buffers hold: all that a reset leaves.
    persistent_bytes: usize,
    /// The memory warning's threshold: `usize::MAX` when it is off or was printed.
    pub(crate) warn_at: usize,
    /// The memory warning's threshold as set (`None`: off).
    pub(crate) warning: Option<usize>,
    /// Whether the memory warning was printed.
    pub(crate) warned: bool,
}

/// The default memory warning threshold: 1 GiB.
pub(crate) const DEFAULT_MEMORY_WARNING: usize = 1 << 30;

/// The bytes a node holds: the node itself and its value's array (as [`TapeStats`] counts
/// them; the op, not counted, is small).
///
/// [`TapeStats`]: crate::TapeStats
#[inline]
pub(crate) fn node_bytes<F: Float>(node: &Node<F>) -> usize {
    size_of::<Node<F>>() + value_bytes(&node.value)
}

/// The bytes of a value's array, outside its node.
#[inline]
fn value_bytes<F: Float>(value: &Value<F>) -> usize {
    match value {
        Value::Scalar(_) => 0,
        Value::Array(a) => size_of::<ndarray::ArrayD<F>>() + a.len() * size_of::<F>(),
    }
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
            bytes: 0,
            persistent_bytes: 0,
            warn_at: DEFAULT_MEMORY_WARNING,
            warning: Some(DEFAULT_MEMORY_WARNING),
            warned: false,
        }
    }

    /// Adds a node, logging it when a scope is open, and counting its bytes.
    #[inline]
    pub(crate) fn insert(&mut self, node: Node<F>) -> NodeId {
        let bytes = node_bytes(&node);
        self.insert_sized(node, bytes)
    }

    /// Adds a node of `bytes` ([`node_bytes`], which the caller knows before it builds the
    /// node), logging it when a scope is open.
    #[inline(always)]
    pub(crate) fn insert_sized(&mut self, node: Node<F>, bytes: usize) -> NodeId {
        let recorded = node.op.is_some();
        let id = self.nodes.insert(node);
        if recorded {
            self.order.push(id);
        }
        if self.open_scopes > 0 {
            self.created.push(id);
        }
        self.bytes += bytes;
        if self.bytes > self.warn_at {
            self.warn_memory();
        }
        id
    }

    /// Adds a parameter or a buffer: a node that no reset or scope frees.
    pub(crate) fn insert_persistent(&mut self, node: Node<F>) -> NodeId {
        self.persistent_bytes += node_bytes(&node);
        self.insert(node)
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

    /// Prints the memory warning, once per tape: the count has just passed `warn_at`.
    #[cold]
    #[inline(never)]
    fn warn_memory(&mut self) {
        self.warn_at = usize::MAX;
        self.warned = true;
        // the node being inserted counts, though it is not in `nodes` yet
        eprintln!("{}", memory_warning(self.bytes, self.nodes.len() + 1, self.warning.unwrap_or(0)));
    }

    /// Removes one node and what is kept beside it, returning its value.
    pub(crate) fn free(&mut self, id: NodeId) -> Option<Value<F>> {
        let node = self.nodes.remove(id)?;
        self.bytes = self.bytes.saturating_sub(node_bytes(&node));
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
        self.bytes = self.persistent_bytes;
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
        // sized from the value, before it moves into its node
        let bytes = size_of::<Node<F>>() + value_bytes(&value);
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
        let id = inner.insert_sized(node, bytes);
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

/// The warning a tape prints when the bytes it holds first pass its threshold
/// ([`Tape::set_memory_warning`]).
pub(crate) fn memory_warning(bytes: usize, nodes: usize, threshold: usize) -> String {
    format!(
        "tapegrad: warning: a Tape holds {} in {nodes} nodes, past its memory warning threshold of \
         {}. Every node stays until Tape::reset() or the end of the Tape::scope that made it: call \
         tape.reset() after each training step, and evaluate inside tape.scope(|| ...), or the \
         tape grows until the process runs out of memory. Tape::set_memory_warning changes the \
         threshold, or turns this warning off with None.",
        human_bytes(bytes),
        human_bytes(threshold)
    )
}

/// A byte count in GiB, MiB or KiB with two decimals, or in bytes.
fn human_bytes(bytes: usize) -> String {
    const UNITS: [(&str, f64); 3] =
        [("GiB", (1u64 << 30) as f64), ("MiB", (1u64 << 20) as f64), ("KiB", 1024.0)];
    match UNITS.iter().find(|&&(_, size)| bytes as f64 >= size) {
        Some((unit, size)) => format!("{:.2} {unit}", bytes as f64 / size),
        None => format!("{bytes} bytes"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GradOptions;

    #[test]
    fn the_memory_warning_says_how_much_in_how_many_nodes_and_what_to_do() {
        assert_eq!(
            memory_warning((3 << 30) + (1 << 29), 12_345, 1 << 30),
            "tapegrad: warning: a Tape holds 3.50 GiB in 12345 nodes, past its memory warning threshold \
             of 1.00 GiB. Every node stays until Tape::reset() or the end of the Tape::scope that made it: \
             call tape.reset() after each training step, and evaluate inside tape.scope(|| ...), or the \
             tape grows until the process runs out of memory. Tape::set_memory_warning changes the \
             threshold, or turns this warning off with None."
        );
        let sizes = [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.50 KiB"), (5 << 20, "5.00 MiB")];
        for (bytes, text) in sizes {
            assert_eq!(human_bytes(bytes), text);
        }
    }

    /// The running count equals what `stats` adds up node by node, through everything that
    /// adds or frees nodes: leaves, ops, scopes, backward passes (plain and recorded), resets.
    #[test]
    fn the_running_byte_count_is_what_the_statistics_count() {
        let tape = Tape::<f32>::new();
        let check = |when: &str| assert_eq!(tape.inner.borrow().bytes, tape.stats().bytes, "{when}");
        check("empty");
        let w = tape.param(ndarray::Array2::<f32>::ones((3, 4)));
        let x = tape.var(ndarray::Array2::<f32>::ones((2, 3)));
        let s = tape.var(2.0f32);
        check("leaves");
        let y = (x.matmul(tape.get(w)).tanh() * s).sum();
        check("ops");
        let _ = tape.scope(|| (tape.get(w) * 3.0).sum().scalar());
        check("after a scope");
        let _ = y.backward();
        check("after backward");
        let _ = tape.grad(y, [x], GradOptions { create_graph: true });
        check("after a recorded backward");
        tape.reset();
        check("after reset");
        assert_eq!(
            tape.inner.borrow().bytes,
            size_of::<Node<f32>>() + size_of::<ndarray::ArrayD<f32>>() + 12 * 4
        );
    }
}
