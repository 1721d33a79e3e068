//! Elementwise functions of one value, one row each: the op, `f(x)`, its gradient rule and its
//! test domain. Points where a function has a kink are kept out of the test domain; the choice
//! made there is stated in a `NOTE` and pinned by a unit test.

use crate::error::Result;
use crate::float::Float;
use crate::kernels::vector;
use crate::ops::apply;
use crate::ops::elementwise::{Scalar, scalar_grad, scalar_rule, sign, step, zero};
use crate::tape::Var;
use crate::tape::op::{Context, FastBackward, Grads, Op};
use crate::value::Value;

/// Defines elementwise unary ops: the op struct, its forward, its backward (written with the
/// input `x`, the output `y` and the incoming gradient `gy`), the method on `Var`
/// with a runnable example checked against central differences at `at`, and the test entry.
macro_rules! unary_ops {
    ($(
        $(#[$meta:meta])*
        $Op:ident $name:ident, |$fx:ident| $f:expr,
        |$x:ident, $y:ident, $gy:ident| $dx:expr,
        at $at:literal, test $strategy:expr;
    )*) => {
        $(
            #[doc = concat!("The op behind [`Var::", stringify!($name), "`](crate::Var::", stringify!($name), ").")]
            #[derive(Debug, Clone, Copy)]
            pub struct $Op;

            impl<F: Float> Op<F> for $Op {
                fn name(&self) -> &'static str { stringify!($name) }
                fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
                    Ok(x[0].map_widest(|$fx: F| $f))
                }
                #[allow(unused_variables)]
                fn backward<'a>(&self, cx: &Context<'a, F>, $gy: Var<'a, F>) -> Grads<'a, F> {
                    let ($x, $y) = (cx.input(0), cx.output());
                    crate::grads![$dx]
                }
                // the same rule on plain numbers, for scalars
                #[allow(unused_variables, clippy::clone_on_copy)]
                fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
                    scalar_rule(fast, |[$x]: [Scalar<F>; 1], $y, $gy| [scalar_grad($dx)])
                }
            }

            impl<'t, F: Float> Var<'t, F> {
                $(#[$meta])*
                ///
                /// ```
                #[doc = concat!("use tapegrad::Tape;")]
                #[doc = concat!("let tape = Tape::<f64>::new();")]
                #[doc = concat!("let x = tape.var(", stringify!($at), ");")]
                #[doc = concat!("let dy = x.", stringify!($name), "().backward().wrt(x).scalar().unwrap();")]
                #[doc = concat!("let f = |x: f64| tape.constant(x).", stringify!($name), "().scalar();")]
                #[doc = concat!("let h = 1e-6;")]
                #[doc = concat!("assert!((dy - (f(", stringify!($at), " + h) - f(", stringify!($at), " - h)) / (2.0 * h)).abs() < 1e-6);")]
                /// ```
                #[track_caller]
                pub fn $name(self) -> Self {
                    apply($Op, [self])
                }
            }
        )*

        #[cfg(test)]
        pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
            vec![$(crate::case!(stringify!($name), $strategy, |x, _p| x[0].$name())),*]
        }
    };
}

unary_ops! {
    /// `eˣ`.
    Exp exp, |x| x.exp(),
    // dx = gy·y
    |x, y, gy| gy * y,
    at 0.7, test unary(ANY);

    /// The natural logarithm `ln x`.
    Ln ln, |x| x.ln(),
    // dx = gy/x
    |x, y, gy| gy / x,
    at 0.7, test unary(POSITIVE);

    /// `√x`.
    Sqrt sqrt, |x| x.sqrt(),
    // dx = gy/(2y)
    |x, y, gy| gy * F::of(0.5) / y,
    at 0.7, test unary(POSITIVE);

    /// `x²`.
    Square square, |x| x * x,
    // dx = gy·2x
    |x, y, gy| gy * x * F::of(2.0),
    at 0.7, test unary(ANY);

    /// `|x|`. NOTE: the gradient at 0 is 0.
    Abs abs, |x| x.abs(),
    // dx = gy·sign(x)
    |x, y, gy| gy * x.sign(),
    at -0.7, test unary(NONZERO);

    /// `sin x`.
    Sin sin, |x| x.sin(),
    // dx = gy·cos x
    |x, y, gy| gy * x.cos(),
    at 0.7, test unary(ANY);

    /// `cos x`.
    Cos cos, |x| x.cos(),
    // dx = −gy·sin x
    |x, y, gy| -gy * x.sin(),
    at 0.7, test unary(ANY);

    /// `tanh x`.
    Tanh tanh, |x| vector::tanh(x),
    // dx = gy·(1 − y²)
    |x, y, gy| gy * y.square().rsub(F::one()),
    at 0.7, test unary(ANY);

    /// The logistic sigmoid `1/(1 + e⁻ˣ)`, computed without overflow for large `|x|`.
    Sigmoid sigmoid, |x| vector::sigmoid(x),
    // dx = gy·y·(1 − y)
    |x, y, gy| gy * y * y.rsub(F::one()),
    at 0.7, test unary(ANY);

    /// `max(x, 0)`; NaN stays NaN. NOTE: the gradient at 0 is 0, at NaN it is NaN.
    Relu relu, |x| if x > F::zero() || x.is_nan() { x } else { F::zero() },
    // dx = gy·step(x), in one pass
    |x, y, gy| gy.times_step(x),
    at 0.7, test unary(NONZERO);

    /// SiLU (swish), `x·sigmoid(x)`: smooth, and close to `relu` away from 0 (PyTorch's
    /// `silu`).
    Silu silu, |x| x * vector::sigmoid(x),
    // dx = gy·(s + y·(1 − s)) with s = sigmoid(x)
    |x, y, gy| gy * (x.sigmoid() + y * x.sigmoid().rsub(F::one())),
    at 0.7, test unary(ANY);

    /// The error function `erf x = 2/√π ∫₀ˣ e^{−t²} dt` (PyTorch's `erf`).
    Erf erf, |x| vector::erf(x),
    // dx = gy·2/√π·e^{−x²}
    |x, y, gy| gy * (-x.square()).exp() * F::of(std::f64::consts::FRAC_2_SQRT_PI),
    at 0.7, test unary(ANY);

    /// GELU, `x·Φ(x)` with `Φ(x) = (1 + erf(x/√2))/2` the standard normal's distribution
    /// function (PyTorch's `gelu`, `approximate='none'`); [`gelu_tanh`](Var::gelu_tanh) is the
    /// tanh approximation.
    Gelu gelu, |x| x * F::of(0.5) * (F::one() + vector::erf(x * F::of(FRAC_1_SQRT_2))),
    // dx = gy·(Φ(x) + x·φ(x)) with φ(x) = e^{−x²/2}/√(2π)
    |x, y, gy| gy * ((x * F::of(FRAC_1_SQRT_2)).erf() * F::of(0.5) + F::of(0.5)
        + x * (x.square() * F::of(-0.5)).exp() * F::of(FRAC_1_SQRT_2PI)),
    at 0.7, test unary(ANY);

    /// GELU's tanh approximation, `x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (PyTorch's
    /// `gelu(x, approximate='tanh')`, GPT-2's activation).
    GeluTanh gelu_tanh, |x| x * F::of(0.5) * (F::one() + vector::tanh(gelu_inner(x))),
    // dx = gy·((1 + t)/2 + x/2·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)) with t = tanh(√(2/π)·(x + 0.044715·x³))
    |x, y, gy| {
        let t = ((x + x.square() * x * F::of(GELU_CUBIC)) * F::of(SQRT_2_OVER_PI)).tanh();
        let slope = (x.square() * F::of(3.0 * GELU_CUBIC) + F::one()) * F::of(SQRT_2_OVER_PI);
        gy * ((t + F::one()) * F::of(0.5) + x * F::of(0.5) * t.square().rsub(F::one()) * slope)
    },
    at 0.7, test unary(ANY);

    /// `ln(1 + eˣ)`, computed as `max(x, 0) + ln(1 + e^−|x|)` so it never overflows.
    Softplus softplus, |x| x.max(F::zero()) + (-x.abs()).exp().ln_1p(),
    // dx = gy·sigmoid(x)
    |x, y, gy| gy * x.sigmoid(),
    at 0.7, test unary(ANY);

    /// The Heaviside step: 1 where `x > 0`, 0 elsewhere and NaN at NaN (the perceptron's
    /// activation). Its gradient is zero everywhere.
    Step step, |x| step(x),
    // dx = 0
    |x, y, gy| zero(),
    at 0.7, test unary(NONZERO);

    /// The sign: −1, 0 or 1, and NaN at NaN. Its gradient is zero everywhere.
    Sign sign, |x| sign(x),
    // dx = 0
    |x, y, gy| zero(),
    at 0.7, test unary(NONZERO);
}

/// `1/√2`, `1/√(2π)` and `√(2/π)`: GELU's constants.
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of GELU's tanh approximation.
const GELU_CUBIC: f64 = 0.044715;

/// `√(2/π)·(x + 0.044715·x³)`, the argument of `tanh` in [`gelu_tanh`](Var::gelu_tanh).
fn gelu_inner<F: Float>(x: F) -> F {
    F::of(SQRT_2_OVER_PI) * (x + F::of(GELU_CUBIC) * x * x * x)
}

/// `a·step(x)` with broadcasting, in one pass: the gradient of [`relu`](Var::relu), which would
/// otherwise make the mask and then multiply (two passes over the activations, two arrays).
#[derive(Debug, Clone, Copy)]
pub struct TimesStep;

impl<F: Float> Op<F> for TimesStep {
    fn name(&self) -> &'static str {
        "times_step"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        Value::zip("times_step", x[0], x[1], |a, x| a * step(x))
    }
    // da = g·step(x); dx = 0 (step is flat wherever it has a derivative)
    fn backward<'a>(&self, cx: &Context<'a, F>, g: Var<'a, F>) -> Grads<'a, F> {
        let da = cx.grad_if(0, || g.times_step(cx.input(1)).sum_to(&cx.input_shape(0)));
        crate::grads![da, None]
    }
    fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
        scalar_rule(fast, |[_, x], _y, g| [Some(g.0 * step(x.0)), None])
    }
}

impl<'t, F: Float> Var<'t, F> {
    /// `self·step(x)` in one op (see [`TimesStep`]).
    pub(crate) fn times_step(self, x: Self) -> Self {
        apply(TimesStep, [self, x])
    }
}

#[cfg(test)]
pub(crate) fn times_step_cases() -> Vec<crate::ops::cases::Case> {
    vec![crate::case!("times_step", binary(ANY, NONZERO), |x, _p| x[0].times_step(x[1]))]
}

#[cfg(test)]
use crate::ops::cases::*;

#[cfg(test)]
mod tests {
    use crate::Tape;

    #[test]
    fn kinks_take_the_documented_gradient() {
        let tape = Tape::<f64>::new();
        let x = tape.var(0.0);
        assert_eq!(x.relu().backward()[x].scalar(), Some(0.0));
        assert_eq!(x.abs().backward()[x].scalar(), Some(0.0));
        assert_eq!(x.leaky_relu(0.1).backward()[x].scalar(), Some(0.1));
        assert_eq!(x.step().backward().get(x), None); // zero: no gradient is passed on
    }

    /// Each op's value at a few points against its closed form; the literals are the `f64`
    /// nearest the exact values (to 25 digits: e = 2.718281828459045235360287, …).
    #[test]
    // the values are written out digit by digit, also where std has them as constants
    #[allow(clippy::approx_constant)]
    fn forward_values_match_closed_forms() {
        let pinned: &[(&str, f64, f64)] = &[
            ("exp", 1.0, 2.718281828459045),    // e
            ("exp", -1.0, 0.36787944117144233), // 1/e
            ("ln", 2.0, 0.6931471805599453),    // ln 2
            ("ln", 10.0, 2.302585092994046),    // ln 10
            ("sqrt", 2.0, 1.4142135623730951),  // √2
            ("sqrt", 0.5, 0.7071067811865476),  // 1/√2
            ("square", 1.5, 2.25),
            ("square", -3.0, 9.0),
            ("abs", -2.5, 2.5),
            ("abs", 4.0, 4.0),
            ("sin", 1.0, 0.8414709848078965),
            ("sin", -2.0, -0.9092974268256817), // sin is odd: −sin 2
            ("cos", 1.0, 0.5403023058681398),
            ("cos", 2.0, -0.4161468365471424),
            ("tanh", 0.5, 0.46211715726000974),  // (e − 1)/(e + 1)
            ("tanh", -1.0, -0.7615941559557649), // tanh is odd: (1 − e²)/(1 + e²)
            ("sigmoid", 0.0, 0.5),
            ("sigmoid", 1.0, 0.7310585786300049),   // e/(1 + e)
            ("sigmoid", -2.0, 0.11920292202211756), // 1/(1 + e²)
            ("relu", -1.5, 0.0),
            ("relu", 2.0, 2.0),
            ("silu", 1.0, 0.7310585786300049),      // e/(1 + e)
            ("silu", -2.0, -0.2384058440442351),    // −2/(1 + e²)
            ("softplus", 0.0, 0.6931471805599453),  // ln 2
            ("softplus", 1.0, 1.3132616875182228),  // ln(1 + e)
            ("softplus", -1.0, 0.3132616875182228), // ln(1 + 1/e) = softplus(1) − 1
            ("step", -0.5, 0.0),
            ("step", 3.0, 1.0),
            ("sign", -0.1, -1.0),
            ("sign", 0.0, 0.0),
            ("sign", 2.0, 1.0),
            ("erf", 1.0, 0.8427007929497149),
            ("erf", -0.5, -0.5204998778130465),   // erf is odd
            ("gelu", 1.0, 0.8413447460685429),    // Φ(1)
            ("gelu", -1.0, -0.15865525393145707), // −Φ(−1)
            ("gelu_tanh", 1.0, 0.8411919906082768),
            ("gelu_tanh", -1.0, -0.15880800939172324),
        ];
        let sample = crate::ops::cases::Sample::default();
        for case in super::cases() {
            let points: Vec<_> = pinned.iter().filter(|p| p.0 == case.name).collect();
            assert!(points.len() >= 2, "{}: pin its value at two points at least", case.name);
            for &&(name, x, expected) in &points {
                let tape = Tape::<f64>::new();
                let y = (case.f64)(&[tape.constant(x)], &sample).scalar();
                assert!((y - expected).abs() <= 2.0 * f64::EPSILON * expected.abs(), "{name}({x}) = {y}");
                let tape = Tape::<f32>::new();
                let y = (case.f32)(&[tape.constant(x as f32)], &sample).scalar() as f64;
                let tolerance = 2.0 * f32::EPSILON as f64 * expected.abs();
                assert!((y - expected).abs() <= tolerance, "{name}({x}) = {y} in f32");
            }
        }
    }

    #[test]
    fn sigmoid_and_softplus_do_not_overflow() {
        let tape = Tape::<f32>::new();
        let x = tape.var(vec![-1000.0, 1000.0]);
        let s = x.sigmoid().to_array().into_raw_vec_and_offset().0;
        assert_eq!(s, vec![0.0, 1.0]);
        let sp = x.softplus().to_array().into_raw_vec_and_offset().0;
        assert_eq!(sp, vec![0.0, 1000.0]);
    }

    /// NumPy and PyTorch: `relu(NaN)`, `heaviside(NaN)` and `sign(NaN)` are NaN, so one NaN pixel
    /// makes a batch's loss NaN instead of quietly counting as 0.
    #[test]
    fn nan_propagates_through_relu_step_and_sign() {
        let tape = Tape::<f64>::new();
        let x = tape.var(vec![1.5, f64::NAN, -2.0]);
        let (relu, step, sign) = (x.relu().to_array(), x.step().to_array(), x.sign().to_array());
        assert_eq!((relu[0], relu[2], step[0], step[2], sign[0], sign[2]), (1.5, 0.0, 1.0, 0.0, 1.0, -1.0));
        assert!(relu[1].is_nan() && step[1].is_nan() && sign[1].is_nan(), "{relu} {step} {sign}");
        assert!(x.relu().sum().scalar().is_nan());
        // dx = gy·step(x): the derivative at NaN is NaN, elsewhere unchanged, and nothing panics
        let g = x.relu().sum().backward()[x].to_array();
        assert_eq!((g[0], g[2]), (1.0, 0.0));
        assert!(g[1].is_nan(), "{g}");
        // the same on the scalar path
        let s = tape.var(f64::NAN);
        assert!(s.relu().scalar().is_nan() && s.step().scalar().is_nan() && s.sign().scalar().is_nan());
        assert!(s.relu().backward()[s].scalar().is_some_and(f64::is_nan));
        assert!(s.abs().backward()[s].scalar().is_some_and(f64::is_nan));
    }
}
