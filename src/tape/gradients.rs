//! What a backward pass returns: [`Gradients`], indexed by [`Var`] or by [`Param`]; and the
//! [`GradOptions`] of [`Tape::grad`](crate::Tape::grad).
//!
//! Invariant: a `Gradients` holds the gradients of one tape, and answers only handles of that
//! tape.

use std::fmt;

use slotmap::{Key, SecondaryMap};

use crate::error::Error;
use crate::float::Float;
use crate::tape::{NodeId, Var};
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
    tape: u64,
}

impl<F: Float> Gradients<F> {
    pub(crate) fn new(grads: SecondaryMap<NodeId, Value<F>>, tape: u64) -> Self {
        Gradients { grads, tape }
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
        let gradient = self.grads.get(var.id());
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
        self.grads.get(param.id)
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
        self.grads.get_mut(param.id)
    }

    /// The number of gradients held.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
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
