//! The tape: [`Tape`] owns every node of a computation in a `SlotMap`; [`Var`] is a `Copy`
//! handle to one.
//!
//! This file owns the tape's life cycle: making leaves, [`reset`](Tape::reset), scopes that
//! free what they made ([`scope`](Tape::scope)), [`no_grad`](Tape::no_grad) and anomaly mode.
//! Its neighbours own one concern each:
//! - `record.rs`: nodes, and recording one op (the only place nodes are added);
//! - `var.rs`: the [`Var`] handle and what it reads and writes;
//! - `op.rs`: the [`Op`](op::Op) protocol between the tape and the ops;
//! - `backward.rs`: the one backward algorithm, generic over where gradients live;
//! - `fast.rs`: its one extension point, [`FastBackward`](op::FastBackward), through which an
//!   op may deliver its gradients itself;
//! - `grad.rs`: its entry points, [`Tape::grad`] and [`Var::backward`];
//! - `gradients.rs`: [`Gradients`], [`Param`] and [`GradOptions`];
//! - `sparse.rs`: [`SparseRows`], the row-sparse form a leaf's gradient may take;
//! - `stats.rs`: [`TapeStats`], what the tape holds, by op;
//! - `dot.rs`: the tape as a Graphviz DOT picture.
//!
//! Invariants:
//! - A node's inputs were created before it, so creation order is a topological order:
//!   backward is a reverse scan with an explicit loop, no recursion and no sort.
//! - Keys are versioned: a handle to a freed node is reported, never silently aliased to the
//!   node that reuses its slot; a handle from another tape is detected by comparing tapes.
//! - The tape knows the [`Op`](op::Op) protocol but no particular op.

mod backward;
mod dot;
mod fast;
mod grad;
mod gradients;
pub mod op;
mod record;
mod sparse;
mod stats;
mod var;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;
use crate::float::Float;
use crate::value::Value;

pub use dot::DotOptions;
pub use gradients::{GradOptions, Gradients, Param};
pub(crate) use record::{Inner, Node};
pub use sparse::SparseRows;
pub use stats::{OpStats, TapeStats};
pub use var::Var;

slotmap::new_key_type! {
    /// The key of a node on its tape (index and version).
    pub struct NodeId;
}

/// The recording of a computation: every operation on a [`Var`] adds a node.
///
/// Nodes live until [`reset`](Self::reset) frees all but the parameters, or until the
/// [`scope`](Self::scope) that made them ends. A loop that never does either keeps every node
/// it made: call `reset()` once per training step, and evaluate inside `scope`. So that such a
/// loop does not go unnoticed until the process runs out of memory, a tape prints one warning
/// to stderr when what it holds first passes 1 GiB ([`set_memory_warning`](Self::set_memory_warning)).
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
    /// Open [`no_grad`](Tape::no_grad) guards; recording is on when there are none.
    no_grad_depth: Cell<u32>,
    /// Anomaly mode: see [`Tape::set_detect_anomaly`].
    anomaly: Cell<bool>,
    /// Anomaly mode, as seen by a backward pass (which turns `anomaly` off while rules run).
    anomaly_in_backward: Cell<bool>,
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
            inner: RefCell::new(Inner::with_capacity(nodes)),
            no_grad_depth: Cell::new(0),
            anomaly: Cell::new(false),
            anomaly_in_backward: Cell::new(false),
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
        self.handle(self.inner.borrow_mut().insert(Node::leaf(value.into(), true, false)))
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
        self.handle(self.inner.borrow_mut().insert(Node::leaf(value.into(), false, false)))
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
        Param::new(self.inner.borrow_mut().insert_persistent(Node::leaf(value.into(), true, true)), self.id)
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
        Param::new(self.inner.borrow_mut().insert_persistent(Node::leaf(value.into(), false, true)), self.id)
    }

    /// The `Var` of a parameter on this tape.
    ///
    /// Panics if the parameter belongs to another tape.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.param(1.5);
    /// assert_eq!(tape.get(w).scalar(), 1.5);
    /// ```
    #[track_caller]
    pub fn get(&self, param: Param) -> Var<'_, F> {
        if param.tape() != self.id {
            panic!("{}", Error::ForeignTape { op: "Tape::get", what: format!("{param:?}") });
        }
        self.handle(param.id())
    }

    #[inline]
    pub(crate) fn handle(&self, id: NodeId) -> Var<'_, F> {
        Var::new(self, id)
    }

    /// Frees every node but the parameters and buffers, ready for the next step. Using a freed
    /// `Var` afterwards panics with a message saying so.
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
        self.inner.borrow_mut().reset();
    }

    /// Runs `f` and frees every node it made (parameters and buffers excepted), so a loop of
    /// scoped steps holds no more memory after 100,000 steps than after one.
    ///
    /// The result must own its data (an array, a number, a `Vec`): a `Var` made inside is freed
    /// with the rest, so the compiler refuses one as the result (`R: 'static`); one carried out
    /// another way is reported as freed when used. A `reset()` inside a scope is fine. Use it
    /// for evaluation, or for any step whose intermediate nodes are not needed afterwards.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.param(vec![1.0, 2.0]);
    /// for _ in 0..1000 {
    ///     let y: f64 = tape.scope(|| (tape.get(w) * 3.0).sum().scalar());
    ///     assert_eq!(y, 9.0);
    /// }
    /// assert_eq!(tape.len(), 1); // only the parameter
    /// ```
    pub fn scope<R: 'static>(&self, f: impl FnOnce() -> R) -> R {
        let guard = ScopeGuard::open(self);
        let result = f();
        drop(guard);
        result
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
        self.no_grad_depth.get() == 0
    }

    /// Stops recording until the returned guard is dropped: values are computed, no backward
    /// is kept (evaluation, optimizer updates). Guards nest, and may be dropped in any order:
    /// recording resumes when the last one is gone.
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
        self.no_grad_depth.set(self.no_grad_depth.get() + 1);
        NoGradGuard { tape: self }
    }

    /// Turns anomaly mode on or off (off by default). When on, the first NaN or infinity that
    /// an op produces from finite inputs, in forward or in backward, is reported as an error
    /// naming the op, its input shapes and the source line that created its node. It costs a
    /// scan of every value while on, and nothing while off.
    ///
    /// ```
    /// use tapegrad::{ops::unary::Ln, Tape};
    /// let tape = Tape::<f64>::new();
    /// tape.set_detect_anomaly(true);
    /// let x = tape.var(vec![1.0, 0.0]);
    /// let err = x.try_apply(Ln).unwrap_err().to_string();
    /// assert!(err.starts_with("ln: produced -inf from finite inputs of shape [2]"), "{err}");
    /// ```
    pub fn set_detect_anomaly(&self, on: bool) {
        self.anomaly.set(on);
    }

    /// Whether anomaly mode is on.
    pub fn detect_anomaly(&self) -> bool {
        self.anomaly.get()
    }

    /// Sets the memory warning's threshold (1 GiB by default), or turns the warning off with
    /// `None`. When the bytes this tape holds (its nodes and their values, as
    /// [`stats`](Self::stats) counts them) first pass the threshold, it prints one warning to
    /// stderr saying how much it holds, in how many nodes, and that evaluation belongs in
    /// [`scope`](Self::scope) or after [`reset`](Self::reset): a loop that does neither keeps
    /// every node it makes. A tape warns at most once; [`memory_warned`](Self::memory_warned)
    /// says whether it has.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.memory_warning(), Some(1 << 30));
    /// tape.set_memory_warning(Some(1 << 20)); // 1 MiB
    /// let w = tape.param(vec![1.0; 1000]);
    /// for _ in 0..10 {
    ///     // evaluated in a scope, each step's nodes are freed: no warning
    ///     let _loss: f64 = tape.scope(|| (tape.get(w) * 2.0).sum().scalar());
    /// }
    /// assert!(!tape.memory_warned());
    /// for _ in 0..200 {
    ///     // no scope, no reset: 200 values of 8,000 bytes stay, and the tape warns once
    ///     let _ = (tape.get(w) * 2.0).sum().scalar();
    /// }
    /// assert!(tape.memory_warned());
    /// tape.set_memory_warning(None); // off
    /// assert_eq!(tape.memory_warning(), None);
    /// ```
    pub fn set_memory_warning(&self, bytes: Option<usize>) {
        let mut inner = self.inner.borrow_mut();
        inner.warning = bytes;
        inner.warn_at = match bytes {
            Some(bytes) if !inner.warned => bytes,
            _ => usize::MAX,
        };
    }

    /// The memory warning's threshold in bytes, `None` when it is off; see
    /// [`set_memory_warning`](Self::set_memory_warning).
    pub fn memory_warning(&self) -> Option<usize> {
        self.inner.borrow().warning
    }

    /// Whether this tape has printed its memory warning; see
    /// [`set_memory_warning`](Self::set_memory_warning).
    pub fn memory_warned(&self) -> bool {
        self.inner.borrow().warned
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl<F: Float> fmt::Debug for Tape<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("Tape")
            .field("nodes", &inner.nodes.len())
            .field("ops", &inner.order.len())
            .field("recording", &self.is_recording())
            .finish()
    }
}

/// Resumes recording when the last open guard is dropped; see [`Tape::no_grad`].
pub struct NoGradGuard<'t, F: Float> {
    tape: &'t Tape<F>,
}

impl<F: Float> Drop for NoGradGuard<'_, F> {
    fn drop(&mut self) {
        let depth = &self.tape.no_grad_depth;
        depth.set(depth.get() - 1);
    }
}

/// Frees what a scope made, even when the scope unwinds.
pub(crate) struct ScopeGuard<'t, F: Float> {
    tape: &'t Tape<F>,
    mark: Option<record::ScopeMark>,
}

impl<'t, F: Float> ScopeGuard<'t, F> {
    pub(crate) fn open(tape: &'t Tape<F>) -> Self {
        ScopeGuard { tape, mark: Some(tape.inner.borrow_mut().open_scope()) }
    }

    /// The mark, for a caller that closes the scope itself (the guard then does nothing).
    pub(crate) fn take_mark(&mut self) -> record::ScopeMark {
        self.mark.take().expect("the scope is open")
    }
}

impl<F: Float> Drop for ScopeGuard<'_, F> {
    fn drop(&mut self) {
        if let (Some(mark), Ok(mut inner)) = (self.mark.take(), self.tape.inner.try_borrow_mut()) {
            inner.close_scope(mark);
        }
    }
}
