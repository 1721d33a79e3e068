//! Numerical differentiation, [`gradcheck`] and [`gradgradcheck`]: the independent checks
//! every op's first and second derivatives pass, and the ones users run on their own functions.
//! Both compare with central differences through one shared routine, so they report alike.

use std::fmt;

use ndarray::{Array, ArrayD, Dimension};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::float::Float;
use crate::tape::{GradOptions, Tape, Var};
use crate::value::Value;

/// The gradient of `f` at `x` by central differences with step `h = 1e-4`: for each element,
/// `(f(x + h) − f(x − h)) / 2h`. The textbook method, slow (two evaluations per element) but
/// independent of any backward rule.
///
/// ```
/// use ndarray::array;
/// use tapegrad::numerical_gradient;
/// // f(x₀, x₁) = x₀² + x₁², whose gradient at (3, 4) is (6, 8)
/// let g = numerical_gradient(|x| x.mapv(|v| v * v).sum(), &array![3.0f64, 4.0]);
/// assert!((g[0] - 6.0).abs() < 1e-6 && (g[1] - 8.0).abs() < 1e-6);
/// ```
pub fn numerical_gradient<F: Float, D: Dimension>(
    mut f: impl FnMut(&Array<F, D>) -> F,
    x: &Array<F, D>,
) -> Array<F, D> {
    let h = F::of(1e-4);
    let mut x = x.clone();
    let mut grad = Array::zeros(x.raw_dim());
    for (i, g) in grad.iter_mut().enumerate() {
        let original = x.as_slice_memory_order().map_or_else(|| x.iter().nth(i).copied(), |s| Some(s[i]));
        let original = original.expect("index in range");
        set(&mut x, i, original + h);
        let plus = f(&x);
        set(&mut x, i, original - h);
        let minus = f(&x);
        set(&mut x, i, original);
        *g = (plus - minus) / (h + h);
    }
    grad
}

fn set<F: Float, D: Dimension>(x: &mut Array<F, D>, i: usize, v: F) {
    match x.as_slice_memory_order_mut() {
        Some(s) => s[i] = v,
        None => *x.iter_mut().nth(i).expect("index in range") = v,
    }
}

/// Tolerances of [`gradcheck`]: an element passes when `|analytic − numeric| ≤ atol +
/// rtol·|numeric|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// The central-difference step. Default `1e-6`.
    pub eps: f64,
    /// Absolute tolerance. Default `1e-5`.
    pub atol: f64,
    /// Relative tolerance. Default `1e-3`.
    pub rtol: f64,
    /// Seed of the random weights that reduce a non-scalar output. Default `0`.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, atol: 1e-5, rtol: 1e-3, seed: 0 }
    }
}

/// Where a gradient check failed: the worst element.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckError {
    /// Which derivative was checked: 1 by [`gradcheck`], 2 by [`gradgradcheck`].
    pub order: u32,
    /// Which input (position in `inputs`).
    pub input: usize,
    /// Which element of it.
    pub index: Vec<usize>,
    /// The derivative from the backward rules.
    pub analytic: f64,
    /// The central-difference derivative.
    pub numeric: f64,
    /// `|analytic − numeric|` at this element, the worst over all inputs relative to its
    /// tolerance.
    pub error: f64,
    /// The tolerance at this element, `atol + rtol·|numeric|`.
    pub tolerance: f64,
    /// How many elements failed, of how many checked.
    pub failed: usize,
    /// How many elements were checked.
    pub checked: usize,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: input {} element {:?}: analytic {:e} vs numeric {:e} (error {:.3e} > \
             tolerance {:.3e}); {} of {} elements fail",
            if self.order == 2 { "gradgradcheck" } else { "gradcheck" },
            self.input,
            self.index,
            self.analytic,
            self.numeric,
            self.error,
            self.tolerance,
            self.failed,
            self.checked
        )
    }
}

impl std::error::Error for GradcheckError {}

/// Checks the gradients of `f` at `inputs` against central differences, in `f64`.
///
/// `f` is built on a fresh tape for each evaluation. A non-scalar output is reduced with random
/// weights drawn from `options.seed` (never a plain sum, which would let a wrong softmax
/// gradient pass). Inputs that get no gradient count as zero. On failure the error names the
/// input, the element, both values and how many elements fail.
///
/// ```
/// use tapegrad::{gradcheck, GradcheckOptions};
/// let x = ndarray::array![[0.5, -1.0], [2.0, 0.25]].into_dyn();
/// gradcheck(|x| x[0].tanh() * x[0], &[x], GradcheckOptions::default()).unwrap();
/// ```
pub fn gradcheck<Fun>(f: Fun, inputs: &[ArrayD<f64>], options: GradcheckOptions) -> Result<(), GradcheckError>
where
    Fun: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let output = f(&vars);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let weights = Value::from(random_weights(&output.shape(), &mut rng));
    let grads = weighted_sum(output, &weights).backward();
    let analytic: Vec<_> = vars.iter().map(|&v| grads.wrt(v).into_array()).collect();
    drop(grads);

    let evaluate = |xs: &[ArrayD<f64>]| {
        let tape = Tape::new();
        let vars: Vec<_> = xs.iter().map(|x| tape.constant(x.clone())).collect();
        weighted_sum(f(&vars), &weights).scalar()
    };
    compare_with_central_differences(1, inputs, &analytic, &options, evaluate)
}

/// Checks the second derivatives of `f` at `inputs` against central differences, in `f64`, with
/// the same tolerances and reporting as [`gradcheck`].
///
/// The output is reduced with random weights `w` to `s(x) = Σ w·f(x)`, and the gradient of `s`
/// is projected on random directions `uᵢ` (one per input, of its shape), all drawn from
/// `options.seed`:
///
/// ```text
/// h(x) = Σᵢ ⟨uᵢ, ∂s/∂xᵢ(x)⟩
/// ```
///
/// The analytic `∂h/∂x` (the Hessian of `s` times `u`) comes from differentiating the recorded
/// gradient a second time ([`Tape::grad`] with `create_graph`); the numeric one from central
/// differences of `h`, each evaluation of which takes one plain first-order backward pass. Since
/// [`gradcheck`] already checks the first-order pass, a failure here points at the backward of
/// a backward rule: a rule that computes a right value but cuts or misroutes its dependence on
/// the inputs (a value taken as a constant where it must stay differentiable, say).
///
/// ```
/// use tapegrad::{gradgradcheck, GradcheckOptions};
/// let x = ndarray::array![[0.5, -1.0], [2.0, 0.25]].into_dyn();
/// let w = ndarray::array![0.3, -0.7].into_dyn();
/// gradgradcheck(|x| x[0].matmul(x[1]).tanh() * x[0].sum(), &[x, w], GradcheckOptions::default())
///     .unwrap();
/// ```
pub fn gradgradcheck<Fun>(
    f: Fun,
    inputs: &[ArrayD<f64>],
    options: GradcheckOptions,
) -> Result<(), GradcheckError>
where
    Fun: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let output = f(&vars);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let weights = Value::from(random_weights(&output.shape(), &mut rng));
    let directions: Vec<_> = inputs.iter().map(|x| random_weights(x.shape(), &mut rng)).collect();
    let gradients = tape.grad_vec(weighted_sum(output, &weights), &vars, GradOptions { create_graph: true });
    let projection = gradients
        .iter()
        .zip(&directions)
        .map(|(&g, u)| weighted_sum(g, &Value::from(u.clone())))
        .reduce(|a, b| a + b);
    let analytic: Vec<_> = match projection {
        Some(h) => {
            let grads = h.backward();
            vars.iter().map(|&v| grads.wrt(v).into_array()).collect()
        }
        None => Vec::new(),
    };

    let evaluate = |xs: &[ArrayD<f64>]| {
        let tape = Tape::new();
        let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
        let grads = weighted_sum(f(&vars), &weights).backward();
        vars.iter().zip(&directions).map(|(&v, u)| (grads.wrt(v).into_array() * u).sum()).sum()
    };
    compare_with_central_differences(2, inputs, &analytic, &options, evaluate)
}

/// Random weights of `shape`, `±[0.5, 1.5)`: away from zero, so no element escapes a check.
fn random_weights(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    ArrayD::from_shape_fn(shape, |_| {
        let w: f64 = rng.random_range(0.5..1.5);
        if rng.random::<bool>() { w } else { -w }
    })
}

/// Compares `analytic`, the derivative of the scalar function `evaluate` with respect to each
/// element of `inputs`, with central differences; reports the worst failing element.
fn compare_with_central_differences(
    order: u32,
    inputs: &[ArrayD<f64>],
    analytic: &[ArrayD<f64>],
    options: &GradcheckOptions,
    mut evaluate: impl FnMut(&[ArrayD<f64>]) -> f64,
) -> Result<(), GradcheckError> {
    let mut xs = inputs.to_vec();
    let (mut worst, mut failed, mut checked): (Option<GradcheckError>, usize, usize) = (None, 0, 0);
    for i in 0..xs.len() {
        let indices: Vec<_> = xs[i].indexed_iter().map(|(ix, _)| ix.slice().to_vec()).collect();
        for index in indices {
            let original = xs[i][index.as_slice()];
            xs[i][index.as_slice()] = original + options.eps;
            let plus = evaluate(&xs);
            xs[i][index.as_slice()] = original - options.eps;
            let minus = evaluate(&xs);
            xs[i][index.as_slice()] = original;
            let numeric = (plus - minus) / (2.0 * options.eps);
            let value = analytic[i][index.as_slice()];
            let (error, tolerance) = ((value - numeric).abs(), options.atol + options.rtol * numeric.abs());
            checked += 1;
            if error <= tolerance {
                continue;
            }
            failed += 1;
            let ratio = |e: &GradcheckError| e.error / e.tolerance;
            let candidate = GradcheckError {
                order,
                input: i,
                index,
                analytic: value,
                numeric,
                error,
                tolerance,
                failed: 0,
                checked: 0,
            };
            // NaN compares false: a NaN anywhere is reported first.
            if worst
                .as_ref()
                .is_none_or(|w| ratio(&candidate).partial_cmp(&ratio(w)) != Some(std::cmp::Ordering::Less))
            {
                worst = Some(candidate);
            }
        }
    }
    match worst {
        None => Ok(()),
        Some(w) => Err(GradcheckError { failed, checked, ..w }),
    }
}

fn weighted_sum<'t>(y: Var<'t, f64>, weights: &Value<f64>) -> Var<'t, f64> {
    (y * y.tape().constant(weights.clone())).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Grads, Op, Result};

    /// Softmax with a plausible wrong backward, `y·(gy − mean(gy))` instead of
    /// `y·(gy − Σ gy·y)`: both vanish when `gy` is uniform, so checking a plain sum of the
    /// outputs cannot tell them apart.
    struct WrongSoftmax;

    impl<F: Float> Op<F> for WrongSoftmax {
        fn name(&self) -> &'static str {
            "wrong_softmax"
        }
        fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
            crate::ops::reduce::Softmax(0).forward(x)
        }
        fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
            let mean = gy.mean_axes(&[0], true);
            crate::grads![cx.output() * (gy - mean)]
        }
    }

    #[test]
    fn a_wrong_softmax_gradient_is_caught_and_located() {
        let x = ndarray::array![0.3, -1.2, 2.0].into_dyn();
        let err =
            gradcheck(|x| x[0].apply(WrongSoftmax), std::slice::from_ref(&x), GradcheckOptions::default())
                .unwrap_err();
        assert_eq!(err.input, 0);
        assert_eq!(err.checked, 3);
        assert!(err.failed >= 1 && err.error > err.tolerance, "{err}");
        assert!(err.to_string().starts_with("gradcheck: input 0 element ["), "{err}");
        // Summed plainly, the wrong rule gives the right answer (zero): only the weighting
        // exposes it.
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let g = v.apply(WrongSoftmax).sum().backward();
        let naive = numerical_gradient(|x| x.mapv(f64::exp).sum() / x.mapv(f64::exp).sum(), &x);
        for (a, n) in g[v].to_array().iter().zip(&naive) {
            assert!(a.abs() < 1e-12 && n.abs() < 1e-9);
        }
    }

    /// `x³` with a backward rule whose value is right but which reads `x²` as a constant: its
    /// first derivative is `3x²` as it should be, its second derivative comes out 0, not `6x`.
    struct CubeWithFrozenSquare;

    impl<F: Float> Op<F> for CubeWithFrozenSquare {
        fn name(&self) -> &'static str {
            "cube_with_frozen_square"
        }
        fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
            Ok(x[0].map(|v| v * v * v))
        }
        fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
            crate::grads![gy * F::of(3.0) * cx.input(0).map_constant(|v| v * v)]
        }
    }

    #[test]
    fn a_wrong_second_derivative_passes_gradcheck_and_fails_gradgradcheck() {
        let x = ndarray::array![0.5, -1.25, 2.0].into_dyn();
        fn cube<'t>(x: &[Var<'t, f64>]) -> Var<'t, f64> {
            x[0].apply(CubeWithFrozenSquare)
        }
        gradcheck(cube, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap();
        let err = gradgradcheck(cube, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap_err();
        assert_eq!((err.order, err.input, err.failed, err.checked), (2, 0, 3, 3), "{err}");
        assert!(err.to_string().starts_with("gradgradcheck: input 0 element ["), "{err}");
        // The output weight w and direction u are ±[0.5, 1.5): the numeric value is w·u·6x at
        // the reported element, the analytic one 0.
        let k = err.index[0];
        assert_eq!(err.analytic, 0.0);
        let wu = err.numeric / (6.0 * x[k]);
        assert!((0.25..2.25).contains(&wu.abs()), "{err}");
        // The same function written with differentiable ops passes.
        gradgradcheck(|x| x[0] * x[0] * x[0], &[x], GradcheckOptions::default()).unwrap();
    }

    #[test]
    fn gradgradcheck_confirms_zero_second_derivatives_away_from_kinks() {
        // relu and |x| are linear on each side of 0: their second derivative there is 0.
        let x = ndarray::array![[0.5, -1.25], [2.0, -0.3]].into_dyn();
        let options = GradcheckOptions::default();
        gradgradcheck(|x| x[0].relu() * x[0].abs().sum(), std::slice::from_ref(&x), options).unwrap();
        // A relu whose rule masks with a straight-through step (which passes gradients through
        // instead of giving 0) has the right first derivative and a wrong second one.
        gradcheck(|x| x[0].apply(ReluWithStraightThroughMask), std::slice::from_ref(&x), options).unwrap();
        let err = gradgradcheck(|x| x[0].apply(ReluWithStraightThroughMask), &[x], options).unwrap_err();
        assert_eq!((err.order, err.failed, err.checked), (2, 4, 4), "{err}");
        // numerically 0; by the rules w·u, with both drawn from ±[0.5, 1.5)
        assert!(err.numeric.abs() < 1e-6 && err.analytic.abs() > 0.25, "{err}");
    }

    /// The step function with the straight-through gradient: `dx = gy`.
    struct StraightThroughStep;

    impl<F: Float> Op<F> for StraightThroughStep {
        fn name(&self) -> &'static str {
            "straight_through_step"
        }
        fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
            crate::ops::unary::Step.forward(x)
        }
        fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
            crate::grads![gy]
        }
    }

    /// relu, `dx = gy·step(x)` with the straight-through step.
    struct ReluWithStraightThroughMask;

    impl<F: Float> Op<F> for ReluWithStraightThroughMask {
        fn name(&self) -> &'static str {
            "relu_with_straight_through_mask"
        }
        fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
            crate::ops::unary::Relu.forward(x)
        }
        fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
            crate::grads![gy * crate::ops::apply(StraightThroughStep, [cx.input(0)])]
        }
    }

    #[test]
    fn numerical_gradient_matches_a_closed_form() {
        // f(x) = Σ sin(x)·x, f'(x) = cos(x)·x + sin(x)
        let x = ndarray::array![[0.1f64, 0.7], [-2.0, 1.3]];
        let g = numerical_gradient(|x| x.mapv(|v| v.sin() * v).sum(), &x);
        for (g, &x) in g.iter().zip(&x) {
            assert!((g - (x.cos() * x + x.sin())).abs() < 1e-7);
        }
    }
}
