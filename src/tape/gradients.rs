//! What a backward pass returns: [`Gradients`], indexed by [`Var`] or by [`Param`]; and the
//! [`GradOptions`] of [`Tape::grad`](crate::Tape::grad).
//!
//! Invariant: a `Gradients` holds the gradients of one tape, and answers only handles of that
//! tape.

use std::cell::OnceCell;
use std::fmt;

use slotmap::{Key, SecondaryMap};

use crate::error::Error;
use crate::float::Float;
use crate::tape::{NodeId, SparseRows, Tape, Var};
use crate::value::Value;

/// A handle to a parameter ([`Tape::param`](crate::Tape::param)): a persistent leaf, kept by
/// models across steps. It has no lifetime; [`Tape::get`](crate::Tape::get) turns it into a
/// [`Var`], and [`Gradients`] are indexed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Param {
    id: NodeId,
    tape: u64,
}

impl Param {
    pub(crate) fn new(id: NodeId, tape: u64) -> Self {
        Param { id, tape }
    }

    pub(crate) fn id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn tape(&self) -> u64 {
        self.tape
    }

    /// A short description for messages: `Param#index`.
    pub(crate) fn key(&self) -> String {
        format!("Param#{}", self.id.data().as_ffi() & 0xffff_ffff)
    }
}

/// Options of [`Tape::grad`](crate::Tape::grad).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradOptions {
    /// Record the backward pass so the gradients can be differentiated again.
    pub create_graph: bool,
}

/// The gradients from one backward pass, one per leaf that requires a gradient and influences
/// the output. Index with the leaf's [`Var`] or [`Param`].
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
    /// Row-sparse gradients; a node is never in both maps (backward merges a leaf that gets
    /// both kinds, `param_mut` moves a sparse one to `grads`).
    sparse: SecondaryMap<NodeId, SparseEntry<F>>,
    tape: u64,
}

/// A row-sparse gradient, and its dense form once someone asks for it.
struct SparseEntry<F: Float> {
    rows: SparseRows<F>,
    dense: OnceCell<Value<F>>,
}

impl<F: Float> Gradients<F> {
    /// The gradients of one plain pass: dense values, and row-sparse ones. A leaf that got
    /// both (a table looked up and also used densely) ends with their one dense sum.
    pub(crate) fn new(
        mut grads: SecondaryMap<NodeId, Value<F>>,
        sparse: SecondaryMap<NodeId, SparseRows<F>>,
        tape: u64,
    ) -> Self {
        let mut rows = SecondaryMap::new();
        for (id, sparse) in sparse {
            match grads.get_mut(id) {
                Some(dense) => sparse.add_to(dense),
                None => drop(rows.insert(id, SparseEntry { rows: sparse, dense: OnceCell::new() })),
            }
        }
        Gradients { grads, sparse: rows, tape }
    }

    /// A gradient by node: the dense one, or a row-sparse one made dense on first access.
    fn dense(&self, id: NodeId) -> Option<&Value<F>> {
        match self.grads.get(id) {
            Some(g) => Some(g),
            None => self.sparse.get(id).map(|e| e.dense.get_or_init(|| e.rows.to_dense())),
        }
    }

    /// The gradient of a parameter used through an embedding lookup, as the rows it touches
    /// (`None` if its gradient is dense or absent). Optimizers that understand rows
    /// ([`Sgd`](crate::optim::Sgd), [`Adam`](crate::optim::Adam)) update only those rows;
    /// [`param`](Self::param) and indexing give the dense gradient instead, made on first
    /// access (the full table's size).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let table = tape.param(ndarray::Array2::<f64>::zeros((1000, 4)));
    /// let grads = tape.get(table).embedding(&ndarray::array![3, 7, 3].into_dyn()).sum().backward();
    /// let rows = grads.sparse_param(table).unwrap();
    /// assert_eq!(rows.rows(), &[3, 7, 3]);
    /// assert_eq!(grads[table].to_array().sum(), 12.0); // dense on request
    /// ```
    #[track_caller]
    pub fn sparse_param(&self, param: Param) -> Option<&SparseRows<F>> {
        if param.tape != self.tape {
            panic!("{}", Error::ForeignTape { op: "Gradients::sparse_param", what: param.key() });
        }
        self.sparse.get(param.id).map(|e| &e.rows)
    }

    /// The gradient for `var`, or `None` if it does not influence the output (its gradient is
    /// zero) or needs none.
    ///
    /// Panics if `var` belongs to another tape, or is an intermediate result (whose gradient
    /// backward does not keep).
    #[track_caller]
    pub fn get(&self, var: Var<'_, F>) -> Option<&Value<F>> {
        if var.tape().id() != self.tape {
            panic!("{}", Error::ForeignTape { op: "Gradients::get", what: var.key() });
        }
        let gradient = self.dense(var.id());
        if gradient.is_none() && var.tape().inner.borrow().nodes.get(var.id()).is_some_and(|n| n.op.is_some())
        {
            panic!(
                "Gradients::get: {} is an intermediate result; backward() keeps the gradients of \
                 leaves only. Use tape.grad(output, [var], options) for an intermediate's gradient",
                var.key()
            );
        }
        gradient
    }

    /// The gradient for `var`, zeros of its shape when it does not influence the output.
    ///
    /// ```
    /// use tapegrad::{Tape, Value};
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(2.0), tape.var(vec![1.0, 2.0]));
    /// let grads = (a * 3.0).backward();
    /// assert_eq!(grads.wrt(b), Value::from(vec![0.0, 0.0]));
    /// ```
    #[track_caller]
    pub fn wrt(&self, var: Var<'_, F>) -> Value<F> {
        self.get(var).cloned().unwrap_or_else(|| Value::zeros(&var.shape()))
    }

    /// The gradient for a parameter; `None` if it does not influence the output.
    ///
    /// Panics if the parameter belongs to another tape.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.param(2.0);
    /// let grads = (tape.get(w) * 5.0).backward();
    /// assert_eq!(grads.param(w).and_then(|g| g.scalar()), Some(5.0));
    /// ```
    #[track_caller]
    pub fn param(&self, param: Param) -> Option<&Value<F>> {
        if param.tape != self.tape {
            panic!("{}", Error::ForeignTape { op: "Gradients::param", what: param.key() });
        }
        self.dense(param.id)
    }

    /// A row-sparse gradient, to change in place (clipping scales it without making it dense).
    pub(crate) fn sparse_param_mut(&mut self, param: Param) -> Option<&mut SparseRows<F>> {
        let entry = self.sparse.get_mut(param.id)?;
        entry.dense = OnceCell::new(); // any dense copy is stale now
        Some(&mut entry.rows)
    }

    /// The gradient for a parameter, to change in place (clipping, scaling); `None` if it does
    /// not influence the output.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.param(2.0);
    /// let mut grads = (tape.get(w) * 5.0).backward();
    /// grads.param_mut(w).unwrap().map_inplace(|g| g / 5.0);
    /// assert_eq!(grads[w].scalar(), Some(1.0));
    /// ```
    #[track_caller]
    pub fn param_mut(&mut self, param: Param) -> Option<&mut Value<F>> {
        if param.tape != self.tape {
            panic!("{}", Error::ForeignTape { op: "Gradients::param_mut", what: param.key() });
        }
        // a row-sparse gradient becomes dense for good: changed in place, it must stay one value
        if let Some(entry) = self.sparse.remove(param.id) {
            let dense = entry.dense.into_inner().unwrap_or_else(|| entry.rows.to_dense());
            self.grads.insert(param.id, dense);
        }
        self.grads.get_mut(param.id)
    }

    /// Sets the gradient of `param`, replacing any it had: for gradients computed elsewhere
    /// (averaged over workers, accumulated over micro-batches). `tape` is the tape of `param`
    /// and of these gradients, where the parameter's shape is read.
    ///
    /// Panics at the caller's line if `value` does not have the parameter's shape (naming both
    /// shapes), or if `param` or these gradients belong to another tape than `tape`: a
    /// gradient of the wrong shape is refused here, not by the optimizer's step later.
    ///
    /// ```
    /// use tapegrad::{Tape, Value};
    /// let tape = Tape::<f64>::new();
    /// let (w, unused) = (tape.param(2.0), tape.param(vec![1.0, 1.0]));
    /// let mut grads = (tape.get(w) * 5.0).backward();
    /// grads.set_param(&tape, unused, Value::from(vec![3.0, 4.0]));
    /// assert_eq!(grads[unused].to_array().into_raw_vec_and_offset().0, [3.0, 4.0]);
    ///
    /// let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     grads.set_param(&tape, unused, Value::from(vec![3.0, 4.0, 5.0]));
    /// }));
    /// assert!(wrong.is_err()); // "Gradients::set_param: got shapes [2] and [3], expected …"
    /// ```
    #[track_caller]
    pub fn set_param(&mut self, tape: &Tape<F>, param: Param, value: Value<F>) {
        const OP: &str = "Gradients::set_param";
        if param.tape != tape.id() {
            panic!("{}", Error::ForeignTape { op: OP, what: param.key() });
        }
        if self.tape != tape.id() {
            panic!("{}", Error::ForeignTape { op: OP, what: "these gradients".into() });
        }
        let shape = tape.with_node(tape.get(param), OP, |node| {
            (node.value.shape() != value.shape()).then(|| node.value.shape().to_vec())
        });
        if let Some(shape) = shape {
            let expected = format!("a gradient of {}'s shape {shape:?}", param.key());
            panic!("{}", Error::shape(OP, &[&shape, value.shape()], expected));
        }
        self.sparse.remove(param.id);
        self.grads.insert(param.id, value);
    }

    /// Adds the gradients of another backward pass on the same tape (a micro-batch's): gradient
    /// accumulation. A parameter with a gradient in either has one in the sum; two row-sparse
    /// gradients stay row-sparse (their rows side by side), any other mix is dense.
    ///
    /// With micro-batches of sizes `n_k` out of `N`, scale each micro-batch's mean loss by
    /// `n_k / N` before its backward pass; the sum is then the gradient of the mean over all `N`.
    ///
    /// Panics if `other` comes from another tape.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.param(ndarray::array![1.0, 2.0]);
    /// let x = [ndarray::array![1.0, 0.0], ndarray::array![3.0, 4.0]];
    /// // two micro-batches of one sample each, losses scaled by 1/2
    /// let mut grads = ((tape.get(w) * tape.constant(x[0].clone())).sum() * 0.5).backward();
    /// tape.reset();
    /// grads.accumulate(((tape.get(w) * tape.constant(x[1].clone())).sum() * 0.5).backward());
    /// assert_eq!(grads[w].to_array(), ndarray::array![2.0, 2.0].into_dyn());
    /// ```
    #[track_caller]
    pub fn accumulate(&mut self, other: Gradients<F>) {
        if other.tape != self.tape {
            panic!(
                "{}",
                Error::ForeignTape { op: "Gradients::accumulate", what: "gradients of another tape".into() }
            );
        }
        for (id, entry) in other.sparse {
            if let Some(mine) = self.sparse.get_mut(id) {
                mine.rows.append(entry.rows);
                mine.dense = OnceCell::new();
            } else if let Some(mine) = self.grads.get_mut(id) {
                entry.rows.add_to(mine);
            } else {
                self.sparse.insert(id, entry);
            }
        }
        for (id, value) in other.grads {
            if let Some(entry) = self.sparse.remove(id) {
                let mut dense = entry.rows.to_dense();
                dense.add_assign(&value);
                self.grads.insert(id, dense);
            } else if let Some(mine) = self.grads.get_mut(id) {
                mine.add_assign(&value);
            } else {
                self.grads.insert(id, value);
            }
        }
    }

    /// The number of gradients held.
    pub fn len(&self) -> usize {
        self.grads.len() + self.sparse.len()
    }

    /// Whether no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn by_id(&self, id: NodeId) -> Option<&Value<F>> {
        self.dense(id)
    }

    pub(crate) fn tape_id(&self) -> u64 {
        self.tape
    }
}

impl<F: Float> fmt::Debug for Gradients<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sparse = self.sparse.iter().map(|(id, e)| (id, &e.rows));
        f.debug_struct("Gradients")
            .field("dense", &self.grads)
            .field("sparse", &sparse.collect::<Vec<_>>())
            .finish()
    }
}

impl<F: Float> std::ops::Index<Param> for Gradients<F> {
    type Output = Value<F>;

    #[track_caller]
    fn index(&self, param: Param) -> &Value<F> {
        match self.param(param) {
            Some(g) => g,
            None => panic!("Gradients[{}]: no gradient; the output does not depend on it", param.key()),
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
