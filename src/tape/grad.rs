//! The entry points of backward: [`Var::backward`] (through `backward_values`), [`Tape::grad`]
//! and [`Tape::grad_vec`], and the guard that sets recording and anomaly mode for one pass.
//!
//! Invariant: a pass leaves the tape's switches (the `no_grad` depth, anomaly mode) as it found
//! them, whether it returns, fails or unwinds.

use crate::error::{Error, Result, or_panic};
use crate::float::Float;
use crate::tape::backward::{Recorded, Values, backward, rule};
use crate::tape::{GradOptions, Gradients, NodeId, Tape, Var};
use crate::value::{Shape, Value};

/// Sets recording and anomaly mode for one backward pass, and restores them when dropped.
struct Pass<'t, F: Float> {
    tape: &'t Tape<F>,
    no_grad_depth: u32,
    anomaly: bool,
    anomaly_in_backward: bool,
}

impl<'t, F: Float> Pass<'t, F> {
    /// `record`: whether the rules' steps are recorded (`create_graph`), even inside `no_grad`.
    fn begin(tape: &'t Tape<F>, record: bool) -> Self {
        let pass = Pass {
            tape,
            no_grad_depth: tape.no_grad_depth.get(),
            anomaly: tape.anomaly.get(),
            anomaly_in_backward: tape.anomaly_in_backward.get(),
        };
        tape.no_grad_depth.set(if record { 0 } else { pass.no_grad_depth + 1 });
        // Anomalies are checked on the gradients each rule returns, not inside the rule.
        tape.anomaly.set(false);
        // A pass started by a rule of another pass checks as that one does.
        tape.anomaly_in_backward.set(pass.anomaly || pass.anomaly_in_backward);
        pass
    }
}

impl<F: Float> Drop for Pass<'_, F> {
    fn drop(&mut self) {
        self.tape.no_grad_depth.set(self.no_grad_depth);
        self.tape.anomaly.set(self.anomaly);
        self.tape.anomaly_in_backward.set(self.anomaly_in_backward);
    }
}

/// What flows along one edge of the graph in a backward pass: `(input, node, gradient)`, the
/// gradient that `node`'s rule gives `input`.
pub(crate) type Edge<F> = (NodeId, NodeId, Value<F>);

impl<F: Float> Tape<F> {
    /// Backward reads every value on its way, so it cannot run while `Var::update` has one out.
    fn check_not_updating(&self, op: &'static str) -> Result<()> {
        match self.inner.borrow().updating.first() {
            Some(&id) => Err(Error::argument(
                op,
                format!(
                    "called inside Var::update of {}; take the gradients before the update",
                    self.handle(id).key()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Plain backward from `output` with `seed`; keeps the gradients of the leaves and of `keep`.
    pub(crate) fn backward_values(
        &self,
        output: Var<'_, F>,
        seed: Value<F>,
        keep: &[NodeId],
    ) -> Result<Gradients<F>> {
        let shape =
            Shape::from_slice(self.lookup(&self.inner.borrow(), output, "backward", 0)?.value.shape());
        if seed.shape() != shape.as_slice() {
            let expected = "a seed gradient of the output's shape";
            return Err(Error::shape("backward", &[&shape, seed.shape()], expected));
        }
        self.check_not_updating("backward")?;
        let _pass = Pass::begin(self, false);
        let (grads, sparse) = backward::<F, Values>(self, output.id(), seed, keep)?;
        Ok(Gradients::new(grads, sparse, self.id()))
    }

    /// A plain backward pass from the scalar `output` that also reports what flows along each
    /// edge of the graph: the gradients of `nodes` (kept, intermediate ones too) and, for each
    /// recorded node among them, its rule's gradient for each input that needs one, in the
    /// order of the node's inputs.
    pub(crate) fn backward_edges(
        &self,
        output: Var<'_, F>,
        nodes: &[NodeId],
    ) -> Result<(Gradients<F>, Vec<Edge<F>>)> {
        let shape =
            Shape::from_slice(self.lookup(&self.inner.borrow(), output, "backward", 0)?.value.shape());
        if !shape.is_empty() {
            return Err(Error::NotScalar { shape: shape.to_vec() });
        }
        self.check_not_updating("backward")?;
        let _pass = Pass::begin(self, false);
        let (grads, sparse) = backward::<F, Values>(self, output.id(), Value::Scalar(F::one()), nodes)?;
        let grads = Gradients::new(grads, sparse, self.id());
        let mut edges = Vec::new();
        for &id in nodes {
            let recorded = self.inner.borrow().nodes[id].op.is_some();
            if let (true, Some(gy)) = (recorded, grads.by_id(id)) {
                rule::<F, Values>(self, id, gy.clone(), |p, g| edges.push((p, id, g)))?;
            }
        }
        Ok((grads, edges))
    }

    /// Gradients of `output` with respect to `wrt` as `Var`s on this tape. With
    /// `create_graph: true` every step of the backward pass is recorded (even inside
    /// [`no_grad`](Self::no_grad): the graph was asked for), so the gradients can be
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
        or_panic(self.try_grad(output, wrt, options))
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
        or_panic(self.try_grad_vec(output, wrt, options))
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
        self.check_not_updating("grad")?;
        let keep: Vec<NodeId> = wrt.iter().map(|w| w.id()).collect();
        let zeros = |w: &Var<'t, F>| self.constant(Value::zeros(&w.shape()));
        if !options.create_graph {
            let grads = self.backward_values(output, Value::Scalar(F::one()), &keep)?;
            return Ok(wrt
                .iter()
                .map(|w| grads.by_id(w.id()).map_or_else(|| zeros(w), |g| self.constant(g.clone())))
                .collect());
        }
        let grads = {
            let _pass = Pass::begin(self, true);
            let seed = self.constant(F::one()).id();
            backward::<F, Recorded>(self, output.id(), seed, &keep)?.0
        };
        Ok(wrt.iter().map(|w| grads.get(w.id()).map_or_else(|| zeros(w), |&g| self.handle(g))).collect())
    }
}
