//! Numerical differentiation and [`gradcheck`]: the independent check every op's gradient
//! passes, and the one users run on their own functions.

use std::fmt;

use ndarray::{Array, ArrayD, Dimension};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::float::Float;
use crate::tape::{Tape, Var};
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
    /// Which input (position in `inputs`).
    pub input: usize,
    /// Which element of it.
    pub index: Vec<usize>,
    /// The gradient from the backward rules.
    pub analytic: f64,
    /// The central-difference gradient.
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
            "gradcheck: input {} element {:?}: analytic {:e} vs numeric {:e} (error {:.3e} > \
             tolerance {:.3e}); {} of {} elements fail",
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
    let weights = Value::from(ArrayD::from_shape_fn(output.shape().as_slice(), |_| {
        let w: f64 = rng.random_range(0.5..1.5);
        if rng.random::<bool>() { w } else { -w }
    }));
    let grads = weighted_sum(output, &weights).backward();
    let analytic: Vec<_> = vars.iter().map(|&v| grads.wrt(v).into_array()).collect();
    drop(grads);

    let evaluate = |xs: &[ArrayD<f64>]| {
        let tape = Tape::new();
        let vars: Vec<_> = xs.iter().map(|x| tape.constant(x.clone())).collect();
        weighted_sum(f(&vars), &weights).scalar()
    };
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
    use crate::{Context, Grads, Op, Result, Tensor};

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
        fn backward<'a>(&self, cx: &Context<'a, F>, gy: Tensor<'a, F>) -> Grads<'a, F> {
            let mean = gy.clone().mean_axes(&[0], true);
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
