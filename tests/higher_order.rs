//! Higher-order derivatives against closed forms and independent constructions: the Hessian of
//! a quadratic form, `jvp` against the Jacobian (itself checked by central differences), `hvp`
//! against the Hessian and against central differences of the gradient, and the cycle of the
//! derivatives of `sin` to order 8.

use ndarray::{Array2, ArrayD, IxDyn};
use proptest::collection::vec;
use proptest::prelude::*;
use tapegrad::functional::{hessian, hvp, jacobian, jvp};
use tapegrad::{GradOptions, Tape, Var};

fn matrix(n: usize, values: &[f64]) -> Array2<f64> {
    Array2::from_shape_vec((n, n), values[..n * n].to_vec()).expect("n² values")
}

/// `Σᵢ Jᵢ·vᵢ` for Jacobian blocks of shape `out ++ shape(xᵢ)`, by flattening each to a matrix.
fn contract(blocks: &[ArrayD<f64>], v: &[ArrayD<f64>], out: &[usize]) -> ArrayD<f64> {
    let m: usize = out.iter().product();
    let mut sum = vec![0.0; m];
    for (j, v) in blocks.iter().zip(v) {
        let j = j.to_shape((m, v.len())).expect("a block has m·n elements");
        let v = v.to_shape(v.len()).expect("flattens");
        for (s, x) in sum.iter_mut().zip(j.dot(&v)) {
            *s += x;
        }
    }
    ArrayD::from_shape_vec(IxDyn(out), sum).expect("m values")
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>, tolerance: f64) -> bool {
    a.shape() == b.shape() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tolerance * (1.0 + y.abs()))
}

/// A function of two inputs with every kind of coupling: `softmax(W·tanh(x))·Σx + W₀₀·x₀`,
/// for `x` of length 3 and `W` of shape [2, 3].
fn mixed<'t>(x: &[Var<'t, f64>]) -> Var<'t, f64> {
    let (v, w) = (x[0], x[1]);
    let first = w.slice(tapegrad::s![0, 0]) * v.slice(tapegrad::s![0]);
    w.matmul(v.tanh()).softmax(0) * v.sum() + first
}

/// The Jacobian of `f` by central differences, blocks shaped like [`jacobian`]'s.
fn numerical_jacobian(
    f: impl for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    inputs: &[ArrayD<f64>],
) -> Vec<ArrayD<f64>> {
    let evaluate = |xs: &[ArrayD<f64>]| {
        let tape = Tape::new();
        let vars: Vec<_> = xs.iter().map(|x| tape.constant(x.clone())).collect();
        f(&vars).to_array()
    };
    let out = evaluate(inputs).shape().to_vec();
    let (m, h) = (out.iter().product::<usize>(), 1e-6);
    (0..inputs.len())
        .map(|i| {
            let n = inputs[i].len();
            let mut block = Array2::zeros((m, n));
            for k in 0..n {
                let mut xs = inputs.to_vec();
                xs[i].as_slice_mut().expect("contiguous")[k] += h;
                let plus = evaluate(&xs);
                xs[i].as_slice_mut().expect("contiguous")[k] -= 2.0 * h;
                let minus = evaluate(&xs);
                let column = ((plus - minus) / (2.0 * h)).into_shape_with_order(m).expect("m values");
                block.column_mut(k).assign(&column);
            }
            let full: Vec<usize> = out.iter().chain(inputs[i].shape()).copied().collect();
            block.into_shape_with_order(IxDyn(&full)).expect("m·n values")
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_hessian_of_a_quadratic_form_is_a_plus_a_transpose(
        n in 1usize..=5,
        a in vec(-2.0..2.0f64, 25),
        x in vec(-2.0..2.0f64, 5),
    ) {
        // f(x) = xᵀAx: ∇f = (A + Aᵀ)x, H = A + Aᵀ, at every x
        let a = matrix(n, &a);
        let x0 = ArrayD::from_shape_vec(IxDyn(&[n]), x[..n].to_vec()).unwrap();
        let h = hessian(|x| x[0].matmul(x[0].tape().constant(a.clone()).matmul(x[0])), &[x0]).unwrap();
        let expected = (&a + &a.t()).into_dyn();
        prop_assert!(close(&h[0][0], &expected, 1e-12), "{} vs {}", h[0][0], expected);
    }

    #[test]
    fn jvp_equals_the_jacobian_times_v(values in vec(-1.5..1.5f64, 9), directions in vec(-1.0..1.0f64, 9)) {
        let inputs = [
            ArrayD::from_shape_vec(IxDyn(&[3]), values[..3].to_vec()).unwrap(),
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), values[3..].to_vec()).unwrap(),
        ];
        let v = [
            ArrayD::from_shape_vec(IxDyn(&[3]), directions[..3].to_vec()).unwrap(),
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), directions[3..].to_vec()).unwrap(),
        ];
        let j = jacobian(mixed, &inputs).unwrap();
        // the reverse-mode Jacobian against central differences, then jvp against it
        let numeric = numerical_jacobian(mixed, &inputs);
        for (a, n) in j.iter().zip(&numeric) {
            prop_assert!(close(a, n, 1e-7), "{} vs {}", a, n);
        }
        let jv = jvp(mixed, &inputs, &v).unwrap();
        let expected = contract(&j, &v, &[2]);
        prop_assert!(close(&jv, &expected, 1e-12), "{} vs {}", jv, expected);
    }

    #[test]
    fn hvp_equals_the_hessian_times_v_and_differences_of_the_gradient(
        values in vec(-1.5..1.5f64, 9),
        directions in vec(-1.0..1.0f64, 9),
    ) {
        let inputs = [
            ArrayD::from_shape_vec(IxDyn(&[3]), values[..3].to_vec()).unwrap(),
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), values[3..].to_vec()).unwrap(),
        ];
        let v = [
            ArrayD::from_shape_vec(IxDyn(&[3]), directions[..3].to_vec()).unwrap(),
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), directions[3..].to_vec()).unwrap(),
        ];
        fn loss<'t>(x: &[Var<'t, f64>]) -> Var<'t, f64> {
            (mixed(x) * x[1].tape().constant(ndarray::array![0.7, -1.3])).sum()
        }
        let hv = hvp(loss, &inputs, &v).unwrap();
        // against the full Hessian, row block i: Σⱼ H[i][j]·vⱼ
        let h = hessian(loss, &inputs).unwrap();
        for (i, hv) in hv.iter().enumerate() {
            let expected = contract(&h[i], &v, inputs[i].shape());
            prop_assert!(close(hv, &expected, 1e-12), "{} vs {}", hv, expected);
        }
        // against (∇f(x + εv) − ∇f(x − εv)) / 2ε, gradients from plain first-order passes
        let gradient = |sign: f64| {
            let tape = Tape::new();
            let x: Vec<_> = inputs.iter().zip(&v).map(|(x, v)| tape.var(x + &(v * (sign * 1e-5)))).collect();
            let g = loss(&x).backward();
            x.iter().map(|&x| g.wrt(x).into_array()).collect::<Vec<_>>()
        };
        let (plus, minus) = (gradient(1.0), gradient(-1.0));
        for ((hv, p), m) in hv.iter().zip(&plus).zip(&minus) {
            let numeric = (p - m) / 2e-5;
            prop_assert!(close(hv, &numeric, 1e-6), "{} vs {}", hv, numeric);
        }
    }

    #[test]
    fn the_nth_derivative_of_sin_cycles_cos_minus_sin_minus_cos_sin(x0 in -10.0..10.0f64) {
        let tape = Tape::<f64>::new();
        let x = tape.var(x0);
        let mut d = x.sin();
        for n in 1..=8 {
            [d] = tape.grad(d, [x], GradOptions { create_graph: true });
            let expected = match n % 4 {
                1 => x0.cos(),
                2 => -x0.sin(),
                3 => -x0.cos(),
                _ => x0.sin(),
            };
            prop_assert!((d.scalar() - expected).abs() < 1e-12, "order {}: {} vs {}", n, d.scalar(), expected);
        }
    }
}

#[test]
fn hvp_and_jvp_work_in_f32() {
    // f(x) = Σ x³/3: ∇f = x², H = diag(2x); and g(x) = x³ elementwise: J = diag(3x²)
    let x = ndarray::array![1.5f32, -0.5, 2.0].into_dyn();
    let v = ndarray::array![1.0f32, 2.0, -1.0].into_dyn();
    let hv = hvp(|x| x[0].powf(3.0).sum() / 3.0, std::slice::from_ref(&x), std::slice::from_ref(&v)).unwrap();
    assert_eq!(hv[0], ndarray::array![3.0f32, -2.0, -4.0].into_dyn());
    let jv = jvp(|x| x[0].powf(3.0), std::slice::from_ref(&x), &[v]).unwrap();
    assert_eq!(jv, ndarray::array![6.75f32, 1.5, -12.0].into_dyn());
}

#[test]
fn a_third_derivative_through_three_recorded_passes() {
    // f(x, y) = x³y²: ∂³f/∂x²∂y = 12xy
    let tape = Tape::<f64>::new();
    let (x, y) = (tape.var(1.5), tape.var(-2.0));
    let f = x * x * x * y * y;
    let options = GradOptions { create_graph: true };
    let [fx] = tape.grad(f, [x], options);
    let [fxx] = tape.grad(fx, [x], options);
    let [fxxy] = tape.grad(fxx, [y], options);
    assert!((fxxy.scalar() - 12.0 * 1.5 * -2.0).abs() < 1e-12);
}
