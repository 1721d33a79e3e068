//! Derivatives of whole functions of arrays: the Hessian-vector product [`hvp`], the full
//! [`hessian`], the Jacobian-vector product [`jvp`] and the full [`jacobian`].
//!
//! Each takes `f` as a closure over `Var`s, the way [`gradcheck`](crate::gradcheck) does, builds
//! it on a fresh tape from the `inputs`, and returns plain arrays; the tape is dropped on return.
//! All of them are exact: reverse-mode passes only, no finite differences.
//!
//! # How each is built
//!
//! Everything rests on one fact: [`Tape::grad`] with `create_graph` records the backward pass,
//! so the gradient `g(x) = ∇f(x)` is itself a function of `x` on the tape and can be
//! differentiated like any other value.
//!
//! - **`hvp`** — `H·v = ∇ₓ⟨∇ₓf(x), v⟩`: one forward, one recorded backward, then one plain
//!   backward of the scalar `⟨g, v⟩` through both. The Hessian is never formed, and the cost is a
//!   small multiple of one gradient (see `benches/hvp.rs`), whatever the number of inputs.
//! - **`hessian`** — row `k` of `H` is the gradient of the `k`-th element of `g`: one forward and
//!   one recorded backward, then one plain backward per input element, seeded with a one-hot
//!   vector. For small inputs.
//! - **`jvp`** (forward mode) — by the "double vector-Jacobian product": for a dummy `u` of the
//!   output's shape, `g(u) = Jᵀu` is linear in `u`, so `⟨g(u), v⟩ = uᵀJv` and its gradient with
//!   respect to `u` is `J·v`. Linearity makes the result exact at any `u`; `u = 0` is used. It
//!   costs about a forward and two backward passes. A native tangent-propagating mode would save
//!   one pass but needs a second rule for every op; this construction reuses the one backward
//!   rule each op has, so it is right for user-defined ops too.
//! - **`jacobian`** — one forward, then one plain backward per output element seeded with a
//!   one-hot vector ([`Var::backward_with`]): the rows of `J`.
//!
//! Errors name the function (`hvp`, `jvp`, …) and the shapes involved: a direction whose shape
//! differs from its input's, or a non-scalar output where a scalar is needed.
//!
//! NOTE: `f` must work for a tape of any lifetime. A closure written inline in the call is
//! inferred that way; one stored in a `let` first may not be, in which case write it as a
//! `fn f<'t>(x: &[Var<'t, f64>]) -> Var<'t, f64>`.

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tape::{GradOptions, Tape, Var};
use crate::value::Value;

/// The Hessian of the scalar `f` at `inputs` times the direction `v` (one array per input, of
/// its shape): `Σⱼ ∂²f/∂xᵢ∂xⱼ · vⱼ` for each input `i`.
///
/// ```
/// use ndarray::array;
/// use tapegrad::functional::hvp;
/// // f(x, y) = x²·y: H = [[2y, 2x], [2x, 0]]; at (3, 2) with v = (1, 10): H·v = (64, 6)
/// let inputs = [array![3.0].into_dyn(), array![2.0].into_dyn()];
/// let v = [array![1.0].into_dyn(), array![10.0].into_dyn()];
/// let hv = hvp(|x| (x[0] * x[0] * x[1]).sum(), &inputs, &v).unwrap();
/// assert_eq!((hv[0][[0]], hv[1][[0]]), (64.0, 6.0));
/// ```
pub fn hvp<F, Fun>(f: Fun, inputs: &[ArrayD<F>], v: &[ArrayD<F>]) -> Result<Vec<ArrayD<F>>>
where
    F: Float,
    Fun: for<'t> Fn(&[Var<'t, F>]) -> Var<'t, F>,
{
    check_directions("hvp", inputs, v)?;
    let tape = Tape::new();
    let x: Vec<_> = inputs.iter().map(|a| tape.var(a.clone())).collect();
    let y = f(&x);
    check_scalar("hvp", &y)?;
    let g = tape.try_grad_vec(y, &x, GradOptions { create_graph: true })?;
    let projection = inner_product(&tape, &g, v);
    let grads = projection.try_backward()?;
    Ok(x.iter().map(|&x| grads.wrt(x).into_array()).collect())
}

/// The Hessian of the scalar `f` at `inputs`, by blocks: `h[i][j]` holds `∂²f/∂xᵢ∂xⱼ` and has
/// the shape of input `i` followed by that of input `j`. One backward pass per input element:
/// for small inputs.
///
/// ```
/// use ndarray::array;
/// use tapegrad::{functional::hessian, s};
/// // f(x) = x₀²·x₁ + x₁³: H = [[2x₁, 2x₀], [2x₀, 6x₁]]
/// let h = hessian(
///     |x| {
///         let (x0, x1) = (x[0].slice(s![0]), x[0].slice(s![1]));
///         x0.square() * x1 + x1.powf(3.0)
///     },
///     &[array![3.0, 2.0].into_dyn()],
/// )
/// .unwrap();
/// assert_eq!(h[0][0], array![[4.0, 6.0], [6.0, 12.0]].into_dyn());
/// ```
pub fn hessian<F, Fun>(f: Fun, inputs: &[ArrayD<F>]) -> Result<Vec<Vec<ArrayD<F>>>>
where
    F: Float,
    Fun: for<'t> Fn(&[Var<'t, F>]) -> Var<'t, F>,
{
    let tape = Tape::new();
    let x: Vec<_> = inputs.iter().map(|a| tape.var(a.clone())).collect();
    let y = f(&x);
    check_scalar("hessian", &y)?;
    let g = tape.try_grad_vec(y, &x, GradOptions { create_graph: true })?;
    Ok(g.iter().zip(inputs).map(|(&g, xi)| rows_of_jacobian(g, xi.shape(), &x)).collect())
}

/// The Jacobian of `f` at `inputs` times the direction `v` (one array per input, of its shape):
/// `Σⱼ ∂f/∂xⱼ · vⱼ`, of the output's shape. Forward mode, built from two reverse passes (see the
/// [module docs](self)); exact.
///
/// ```
/// use ndarray::array;
/// use tapegrad::functional::jvp;
/// // f(x) = x², elementwise: J = diag(2x), so J·v = 2x·v
/// let jv = jvp(|x| x[0].square(), &[array![1.0, -3.0].into_dyn()], &[array![0.5, 2.0].into_dyn()])
///     .unwrap();
/// assert_eq!(jv, array![1.0, -12.0].into_dyn());
/// ```
pub fn jvp<F, Fun>(f: Fun, inputs: &[ArrayD<F>], v: &[ArrayD<F>]) -> Result<ArrayD<F>>
where
    F: Float,
    Fun: for<'t> Fn(&[Var<'t, F>]) -> Var<'t, F>,
{
    check_directions("jvp", inputs, v)?;
    let tape = Tape::new();
    let x: Vec<_> = inputs.iter().map(|a| tape.var(a.clone())).collect();
    let y = f(&x);
    // g(u) = Jᵀu is linear in u; ⟨g(u), v⟩ = uᵀJv, whose gradient in u is J·v.
    let u = tape.var(Value::zeros(&y.shape()));
    let g = tape.try_grad_vec((y * u).sum(), &x, GradOptions { create_graph: true })?;
    let projection = inner_product(&tape, &g, v);
    Ok(projection.try_backward()?.wrt(u).into_array())
}

/// The Jacobian of `f` at `inputs`, one block per input: block `i` holds `∂f/∂xᵢ` and has the
/// output's shape followed by the shape of input `i`. One backward pass per output element.
///
/// ```
/// use ndarray::array;
/// use tapegrad::functional::jacobian;
/// // f(x, c) = c·x for a vector x and a scalar c: ∂f/∂x = c·I, ∂f/∂c = x
/// let j = jacobian(|x| x[0] * x[1], &[array![1.0, 2.0].into_dyn(), ndarray::arr0(3.0).into_dyn()])
///     .unwrap();
/// assert_eq!(j[0], array![[3.0, 0.0], [0.0, 3.0]].into_dyn());
/// assert_eq!(j[1], array![1.0, 2.0].into_dyn());
/// ```
pub fn jacobian<F, Fun>(f: Fun, inputs: &[ArrayD<F>]) -> Result<Vec<ArrayD<F>>>
where
    F: Float,
    Fun: for<'t> Fn(&[Var<'t, F>]) -> Var<'t, F>,
{
    let tape = Tape::new();
    let x: Vec<_> = inputs.iter().map(|a| tape.var(a.clone())).collect();
    let y = f(&x);
    Ok(rows_of_jacobian(y, &y.shape(), &x))
}

/// The derivative of each element of `y` (of shape `shape`) with respect to each of `x`, one
/// block per `x` of shape `shape ++ shape(x)`: one backward pass per element of `y`.
fn rows_of_jacobian<F: Float>(y: Var<'_, F>, shape: &[usize], x: &[Var<'_, F>]) -> Vec<ArrayD<F>> {
    let rows: usize = shape.iter().product();
    let mut blocks: Vec<Vec<F>> =
        x.iter().map(|x| Vec::with_capacity(rows * x.shape().iter().product::<usize>())).collect();
    for k in 0..rows {
        let mut seed = ArrayD::zeros(IxDyn(shape));
        seed.as_slice_mut().expect("a new array is contiguous")[k] = F::one();
        let grads = y.backward_with(seed);
        for (block, &x) in blocks.iter_mut().zip(x) {
            block.extend(grads.wrt(x).into_array().iter().copied());
        }
    }
    blocks
        .into_iter()
        .zip(x)
        .map(|(block, x)| {
            let full: Vec<usize> = shape.iter().chain(x.shape().iter()).copied().collect();
            ArrayD::from_shape_vec(IxDyn(&full), block).expect("one row per element of the output")
        })
        .collect()
}

/// `Σᵢ ⟨gᵢ, vᵢ⟩` on the tape, a scalar (zero when there are no inputs).
fn inner_product<'t, F: Float>(tape: &'t Tape<F>, g: &[Var<'t, F>], v: &[ArrayD<F>]) -> Var<'t, F> {
    g.iter()
        .zip(v)
        .map(|(&g, v)| (g * tape.constant(v.clone())).sum())
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| tape.constant(F::zero()))
}

fn check_directions<F: Float>(op: &'static str, inputs: &[ArrayD<F>], v: &[ArrayD<F>]) -> Result<()> {
    if inputs.len() != v.len() {
        let message = format!("{} directions for {} inputs; expected one per input", v.len(), inputs.len());
        return Err(Error::argument(op, message));
    }
    for (i, (x, v)) in inputs.iter().zip(v).enumerate() {
        if x.shape() != v.shape() {
            return Err(Error::shape(
                op,
                &[x.shape(), v.shape()],
                format!("a direction of input {i}'s shape"),
            ));
        }
    }
    Ok(())
}

fn check_scalar<F: Float>(op: &'static str, y: &Var<'_, F>) -> Result<()> {
    let shape = y.try_value()?.shape().to_vec();
    if shape.is_empty() {
        Ok(())
    } else {
        let message = format!("the function's output has shape {shape:?}; expected a scalar (shape [])");
        Err(Error::argument(op, message))
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn mismatched_directions_and_non_scalar_outputs_are_reported() {
        let x = [array![1.0, 2.0].into_dyn()];
        let e = hvp(|x| x[0].sum(), &x, &[array![1.0, 2.0, 3.0].into_dyn()]).unwrap_err();
        assert_eq!(e.to_string(), "hvp: got shapes [2] and [3], expected a direction of input 0's shape");
        let e = jvp(|x| x[0].sum(), &x, &[]).unwrap_err();
        assert_eq!(e.to_string(), "jvp: 0 directions for 1 inputs; expected one per input");
        let e = hessian(|x| x[0].square(), &x).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hessian: the function's output has shape [2]; expected a scalar (shape [])"
        );
        let e = hvp(|x| x[0] * 2.0, &x, &x).unwrap_err();
        assert_eq!(e.to_string(), "hvp: the function's output has shape [2]; expected a scalar (shape [])");
    }

    #[test]
    fn functions_that_ignore_an_input_give_it_zeros() {
        // f(a, b) = Σ a³: b does not appear; jvp along b alone is 0
        let inputs = [array![1.0, -2.0].into_dyn(), array![[5.0]].into_dyn()];
        fn cube<'t>(x: &[Var<'t, f64>]) -> Var<'t, f64> {
            x[0].powf(3.0).sum()
        }
        let h = hessian(cube, &inputs).unwrap();
        assert_eq!(h[0][0], array![[6.0, 0.0], [0.0, -12.0]].into_dyn());
        assert_eq!(h[0][1], ArrayD::<f64>::zeros(IxDyn(&[2, 1, 1])));
        assert_eq!(h[1][1], ArrayD::<f64>::zeros(IxDyn(&[1, 1, 1, 1])));
        let v = [array![0.0, 0.0].into_dyn(), array![[1.0]].into_dyn()];
        assert_eq!(jvp(cube, &inputs, &v).unwrap(), ndarray::arr0(0.0).into_dyn());
        // a linear function has a zero Hessian: its gradient is a constant
        let hv = hvp(|x| (x[0] * 3.0).sum(), &inputs[..1], &inputs[..1]).unwrap();
        assert_eq!(hv[0], array![0.0, 0.0].into_dyn());
    }
}
