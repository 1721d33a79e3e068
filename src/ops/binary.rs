//! Elementwise binary operations with NumPy broadcasting, and the same with a scalar constant on
//! either side; the arithmetic operators (`+ − × ÷`, unary `−`) on [`Var`].
//!
//! Every rule reduces its gradients back to each input's shape with the one
//! [`sum_to`](crate::Var::sum_to) helper, which undoes broadcasting.

use crate::error::Result;
use crate::float::Float;
use crate::ops::apply;
use crate::ops::elementwise::{Scalar, scalar_grad, scalar_rule};
use crate::tape::Var;
use crate::tape::op::{Context, FastBackward, Grads, Op};
use crate::value::Value;

/// Defines elementwise binary ops, one row each: the op struct, its forward `f(a, b)`, the
/// gradient for each input before reduction to the input's shape, and the property-test
/// strategy. Rules see `a`, `b`, the output `y` and the incoming gradient `gy` as [`Var`]s.
macro_rules! binary_ops {
    ($(
        $(#[$meta:meta])*
        $Op:ident $name:literal, |$fa:ident, $fb:ident| $f:expr,
        |$a:ident, $b:ident, $y:ident, $gy:ident| $da:expr, $db:expr,
        test $strategy:expr;
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy)]
            pub struct $Op;

            impl<F: Float> Op<F> for $Op {
                fn name(&self) -> &'static str { $name }
                fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
                    Value::zip($name, x[0], x[1], |$fa: F, $fb: F| $f)
                }
                #[allow(unused_variables)]
                fn backward<'a>(&self, cx: &Context<'a, F>, $gy: Var<'a, F>) -> Grads<'a, F> {
                    let ($a, $b, $y) = (cx.input(0), cx.input(1), cx.output());
                    let da = cx.grad_if(0, || ($da).sum_to(&cx.input_shape(0)));
                    let db = cx.grad_if(1, || ($db).sum_to(&cx.input_shape(1)));
                    crate::grads![da, db]
                }
                // the same rule on plain numbers, for scalars
                #[allow(unused_variables)]
                fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
                    scalar_rule(fast, |[$a, $b]: [Scalar<F>; 2], $y, $gy| [scalar_grad($da), scalar_grad($db)])
                }
            }
        )*

        #[cfg(test)]
        pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
            vec![$(crate::case!($name, $strategy, |x, _p| apply($Op, [x[0], x[1]]))),*]
        }
    };
}

binary_ops! {
    /// `a + b`.
    Add "add", |a, b| a + b,
    // da = gy, db = gy
    |a, b, y, gy| gy, gy,
    test binary(ANY, ANY);

    /// `a − b`.
    Sub "sub", |a, b| a - b,
    // da = gy, db = −gy
    |a, b, y, gy| gy, -gy,
    test binary(ANY, ANY);

    /// `a · b`.
    Mul "mul", |a, b| a * b,
    // da = gy·b, db = gy·a
    |a, b, y, gy| gy * b, gy * a,
    test binary(ANY, ANY);

    /// `a / b`.
    Div "div", |a, b| a / b,
    // da = gy/b, db = −gy·y/b
    |a, b, y, gy| gy / b, -gy * y / b,
    test binary(ANY, NONZERO);

    /// `aᵇ`. NOTE: at `a = 0` the gradients are PyTorch's: in `a`, 0 where `b = 0` too (not
    /// `0·0⁻¹`, NaN); in `b`, 0 where `b ≥ 0` (not `0·ln 0`, NaN, or `1·ln 0`).
    Pow "pow", |a, b| a.powf(b),
    // da = gy·b·aᵇ⁻¹ (0 where a = b = 0), db = gy·y·ln a (0 where a = 0 ≤ b)
    |a, b, y, gy| gy * b * nonzero_where::<F, _>(a, a.zip_constant(&b, power_rule_applies)).pow(b - F::one()),
                  gy * y * nonzero_where::<F, _>(a, a.zip_constant(&b, log_rule_applies)).ln(),
    test binary(POSITIVE, ANY);

    /// The larger of `a` and `b`, NaN if either is. NOTE: on a tie the gradient is split evenly
    /// between them; a NaN takes the gradient from a number.
    Maximum "maximum", |a, b| maximum(a, b),
    // da = gy·[a>b] + ½gy·[a=b], db = gy·[b>a] + ½gy·[a=b]
    |a, b, y, gy| gy * a.zip_constant(&b, |a, b| share(a, b, true)),
                  gy * b.zip_constant(&a, |b, a| share(b, a, true)),
    test binary(GRID, GRID_SHIFTED);

    /// The smaller of `a` and `b`, NaN if either is. NOTE: on a tie the gradient is split evenly
    /// between them; a NaN takes the gradient from a number.
    Minimum "minimum", |a, b| minimum(a, b),
    // da = gy·[a<b] + ½gy·[a=b], db = gy·[b<a] + ½gy·[a=b]
    |a, b, y, gy| gy * a.zip_constant(&b, |a, b| share(a, b, false)),
                  gy * b.zip_constant(&a, |b, a| share(b, a, false)),
    test binary(GRID, GRID_SHIFTED);
}

/// The larger of `a` and `b`, NaN if either is (NumPy's `maximum`; `F::max` drops a NaN).
pub(crate) fn maximum<F: Float>(a: F, b: F) -> F {
    if a.is_nan() || b.is_nan() { F::nan() } else { a.max(b) }
}

/// The smaller of `a` and `b`, NaN if either is (NumPy's `minimum`; `F::min` drops a NaN).
pub(crate) fn minimum<F: Float>(a: F, b: F) -> F {
    if a.is_nan() || b.is_nan() { F::nan() } else { a.min(b) }
}

/// 1 where `∂aᵇ/∂a = b·aᵇ⁻¹` is computed, 0 where it is taken as 0: at `a = b = 0`.
fn power_rule_applies<F: Float>(a: F, b: F) -> F {
    if a == F::zero() && b == F::zero() { F::zero() } else { F::one() }
}

/// 1 where `∂aᵇ/∂b = aᵇ·ln a` is computed, 0 where it is taken as 0: at `a = 0 ≤ b`.
fn log_rule_applies<F: Float>(a: F, b: F) -> F {
    if a == F::zero() && b >= F::zero() { F::zero() } else { F::one() }
}

/// `x` where `mask` is 1 and 1 where it is 0, differentiably in `x`: keeps `ln` and negative
/// powers away from 0.
fn nonzero_where<F: Float, T>(x: T, mask: T) -> T
where
    T: Copy + std::ops::Mul<Output = T> + std::ops::Sub<Output = T> + std::ops::Sub<F, Output = T>,
{
    x * mask - (mask - F::one())
}

/// `a`'s share of the gradient of the larger (`larger`) or the smaller of `a` and `b`: 1 where
/// `a` is the one taken, ½ where neither is (a tie, or two NaNs), 0 where `b` is. A NaN is taken
/// over a number, as it is what the result came from.
fn share<F: Float>(a: F, b: F, larger: bool) -> F {
    let taken = |a: F, b: F| (if larger { a > b } else { a < b }) || (a.is_nan() && !b.is_nan());
    if taken(a, b) {
        F::one()
    } else if taken(b, a) {
        F::zero()
    } else {
        F::of(0.5)
    }
}

var_methods! {
    /// `aᵇ` elementwise, both differentiable (`a > 0` for a real gradient in `b`).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(2.0), tape.var(3.0));
    /// let y = a.pow(b);
    /// let g = y.backward();
    /// assert_eq!(y.scalar(), 8.0);
    /// assert_eq!(g[a].scalar(), Some(12.0));                       // b·aᵇ⁻¹
    /// assert!((g[b].scalar().unwrap() - 8.0 * 2f64.ln()).abs() < 1e-12); // aᵇ·ln a
    /// ```
    pub fn pow / try_pow(self, exponent: Self) -> Self {
        crate::ops::try_apply(Pow, [self, exponent])
    }

    /// The elementwise larger of two values, broadcasting; ties split the gradient evenly.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(vec![1.0, 5.0, 2.0]), tape.var(2.0));
    /// let y = a.maximum(b);
    /// assert_eq!(y.to_array().into_raw_vec_and_offset().0, vec![2.0, 5.0, 2.0]);
    /// let g = y.sum().backward();
    /// assert_eq!(g[a].to_array().into_raw_vec_and_offset().0, vec![0.0, 1.0, 0.5]);
    /// assert_eq!(g[b].scalar(), Some(1.5));
    /// ```
    pub fn maximum / try_maximum(self, other: Self) -> Self {
        crate::ops::try_apply(Maximum, [self, other])
    }

    /// The elementwise smaller of two values, broadcasting; ties split the gradient evenly.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(vec![1.0, 5.0]);
    /// assert_eq!(a.minimum(tape.constant(3.0)).to_array().into_raw_vec_and_offset().0, vec![1.0, 3.0]);
    /// ```
    pub fn minimum / try_minimum(self, other: Self) -> Self {
        crate::ops::try_apply(Minimum, [self, other])
    }
}

impl<'t, F: Float> Var<'t, F> {
    /// `a + b`, returning the error instead of panicking when the shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(vec![1.0, 2.0]), tape.var(vec![1.0, 2.0, 3.0]));
    /// let err = a.try_add(b).unwrap_err();
    /// assert!(err.to_string().starts_with("add: got shapes [2] and [3]"));
    /// ```
    #[track_caller]
    pub fn try_add(self, other: Self) -> Result<Self> {
        crate::ops::try_apply(Add, [self, other])
    }
    /// `a − b`, returning the error; see [`try_add`](Self::try_add).
    #[track_caller]
    pub fn try_sub(self, other: Self) -> Result<Self> {
        crate::ops::try_apply(Sub, [self, other])
    }
    /// `a · b`, returning the error; see [`try_add`](Self::try_add).
    #[track_caller]
    pub fn try_mul(self, other: Self) -> Result<Self> {
        crate::ops::try_apply(Mul, [self, other])
    }
    /// `a / b`, returning the error; see [`try_add`](Self::try_add).
    #[track_caller]
    pub fn try_div(self, other: Self) -> Result<Self> {
        crate::ops::try_apply(Div, [self, other])
    }
}

/// Defines elementwise ops of one value and a scalar constant `c`, one row each.
macro_rules! scalar_ops {
    ($(
        $(#[$meta:meta])*
        $Op:ident $name:literal $label:literal, |$fx:ident, $fc:ident| $f:expr,
        |$x:ident, $c:ident, $y:ident, $gy:ident| $dx:expr,
        test $strategy:expr;
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy)]
            pub struct $Op<F>(pub F);

            impl<F: Float> Op<F> for $Op<F> {
                fn name(&self) -> &'static str { $name }
                fn label(&self) -> String { format!($label, self.0) }
                fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
                    let $fc = self.0;
                    Ok(x[0].map(|$fx: F| $f))
                }
                #[allow(unused_variables)]
                fn backward<'a>(&self, cx: &Context<'a, F>, $gy: Var<'a, F>) -> Grads<'a, F> {
                    let ($x, $y, $c) = (cx.input(0), cx.output(), self.0);
                    crate::grads![$dx]
                }
                // the same rule on plain numbers, for scalars
                #[allow(unused_variables)]
                fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
                    let $c = self.0;
                    scalar_rule(fast, |[$x]: [Scalar<F>; 1], $y, $gy| [scalar_grad($dx)])
                }
            }
        )*

        #[cfg(test)]
        pub(crate) fn scalar_cases() -> Vec<crate::ops::cases::Case> {
            vec![$(crate::case!($name, $strategy, |x, p| apply($Op(num_traits::cast(p.scalar).unwrap()), [x[0]]))),*]
        }
    };
}

scalar_ops! {
    /// `x + c`.
    AddScalar "add_scalar" "+ {}", |x, c| x + c,
    // dx = gy
    |x, c, y, gy| gy,
    test with_scalar(ANY, -3.0, 3.0);

    /// `x · c`.
    MulScalar "mul_scalar" "× {}", |x, c| x * c,
    // dx = gy·c
    |x, c, y, gy| gy * c,
    test with_scalar(ANY, -3.0, 3.0);

    /// `c − x`.
    RSubScalar "rsub_scalar" "{} −", |x, c| c - x,
    // dx = −gy
    |x, c, y, gy| -gy,
    test with_scalar(ANY, -3.0, 3.0);

    /// `x / c`.
    DivScalar "div_scalar" "÷ {}", |x, c| x / c,
    // dx = gy/c
    |x, c, y, gy| gy / c,
    test with_scalar(ANY, 0.5, 3.0);

    /// `c / x`.
    RDivScalar "rdiv_scalar" "{} ÷", |x, c| c / x,
    // dx = −gy·y/x
    |x, c, y, gy| -gy * y / x,
    test with_scalar(NONZERO, -3.0, 3.0);

    /// `xᶜ` for a constant exponent. NOTE: for `c = 0` the gradient is 0, at `x = 0` too (not
    /// `0·0⁻¹`, NaN), as in PyTorch.
    Powf "powf" "^ {}", |x, c| x.powf(c),
    // dx = gy·c·xᶜ⁻¹ (none for c = 0)
    |x, c, y, gy| (c != F::zero()).then(|| gy * c * x.powf(c - F::one())),
    test with_scalar(POSITIVE, -2.5, 2.5);

    /// `cˣ` for a constant base `c > 0`.
    RPowScalar "rpow_scalar" "{} ^", |x, c| c.powf(x),
    // dx = gy·y·ln c
    |x, c, y, gy| gy * y * c.ln(),
    test with_scalar(ANY, 0.5, 3.0);

    /// `x` where positive, `c·x` elsewhere. NOTE: at 0 the gradient is `c`.
    LeakyRelu "leaky_relu" "leaky_relu {}", |x, c| if x > F::zero() { x } else { c * x },
    // dx = gy·(1 if x > 0 else c)
    |x, c, y, gy| gy * x.map_constant(|x| if x > F::zero() { F::one() } else { c }),
    test with_scalar(NONZERO, 0.01, 0.3);
}

impl<'t, F: Float> Var<'t, F> {
    /// `c − x`, in one op: what `2.0 - x` writes for a concrete `f32` or `f64`, for code generic
    /// over the element type (such as backward rules).
    ///
    /// ```
    /// use tapegrad::{Float, Tape, Var};
    /// fn one_minus<F: Float>(x: Var<'_, F>) -> Var<'_, F> { x.rsub(F::one()) }
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(0.25);
    /// assert_eq!(one_minus(x).scalar(), 0.75);
    /// assert_eq!(one_minus(x).backward()[x].scalar(), Some(-1.0));
    /// ```
    #[track_caller]
    pub fn rsub(self, c: F) -> Self {
        apply(RSubScalar(c), [self])
    }

    /// `c / x`, in one op: what `2.0 / x` writes for a concrete `f32` or `f64`, for code generic
    /// over the element type.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(4.0);
    /// assert_eq!(x.rdiv(2.0).scalar(), 0.5);
    /// assert_eq!(x.rdiv(2.0).backward()[x].scalar(), Some(-0.125)); // −c/x²
    /// ```
    #[track_caller]
    pub fn rdiv(self, c: F) -> Self {
        apply(RDivScalar(c), [self])
    }

    /// `xᶜ` for a constant exponent.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(4.0);
    /// let y = x.powf(1.5);
    /// assert_eq!(y.scalar(), 8.0);
    /// assert_eq!(y.backward()[x].scalar(), Some(3.0));  // 1.5·√4
    /// ```
    #[track_caller]
    pub fn powf(self, exponent: F) -> Self {
        apply(Powf(exponent), [self])
    }

    /// `cˣ` for a constant base `c`: `x.rpow(2.0)` is `2ˣ`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// assert_eq!(tape.var(3.0).rpow(2.0).scalar(), 8.0);
    /// ```
    #[track_caller]
    pub fn rpow(self, base: F) -> Self {
        apply(RPowScalar(base), [self])
    }

    /// Leaky ReLU: `x` where positive, `slope·x` elsewhere (the gradient at 0 is `slope`).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(vec![-2.0, 3.0]);
    /// assert_eq!(x.leaky_relu(0.1).to_array().into_raw_vec_and_offset().0, vec![-0.2, 3.0]);
    /// ```
    #[track_caller]
    pub fn leaky_relu(self, slope: F) -> Self {
        apply(LeakyRelu(slope), [self])
    }
}

/// `−x`.
#[derive(Debug, Clone, Copy)]
pub struct Negate;

impl<F: Float> Op<F> for Negate {
    fn name(&self) -> &'static str {
        "neg"
    }
    fn label(&self) -> String {
        "−".into()
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        Ok(x[0].map(|x| -x))
    }
    // dx = −gy
    fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![-gy]
    }
    fn fast_backward(&self, fast: &mut FastBackward<'_, F>) -> bool {
        scalar_rule(fast, |[_]: [Scalar<F>; 1], _y, gy| [Some(-gy.0)])
    }
}

#[cfg(test)]
pub(crate) fn neg_cases() -> Vec<crate::ops::cases::Case> {
    vec![crate::case!("neg", unary(ANY), |x, _p| -x[0])]
}

#[track_caller]
pub(crate) fn add_scalar<'t, F: Float>(x: Var<'t, F>, c: F) -> Var<'t, F> {
    apply(AddScalar(c), [x])
}
#[track_caller]
pub(crate) fn add_scalar_left<'t, F: Float>(c: F, x: Var<'t, F>) -> Var<'t, F> {
    apply(AddScalar(c), [x])
}
#[track_caller]
pub(crate) fn sub_scalar<'t, F: Float>(x: Var<'t, F>, c: F) -> Var<'t, F> {
    apply(AddScalar(-c), [x])
}
#[track_caller]
pub(crate) fn rsub_scalar<'t, F: Float>(c: F, x: Var<'t, F>) -> Var<'t, F> {
    apply(RSubScalar(c), [x])
}
#[track_caller]
pub(crate) fn mul_scalar<'t, F: Float>(x: Var<'t, F>, c: F) -> Var<'t, F> {
    apply(MulScalar(c), [x])
}
#[track_caller]
pub(crate) fn mul_scalar_left<'t, F: Float>(c: F, x: Var<'t, F>) -> Var<'t, F> {
    apply(MulScalar(c), [x])
}
#[track_caller]
pub(crate) fn div_scalar<'t, F: Float>(x: Var<'t, F>, c: F) -> Var<'t, F> {
    apply(DivScalar(c), [x])
}
#[track_caller]
pub(crate) fn rdiv_scalar<'t, F: Float>(c: F, x: Var<'t, F>) -> Var<'t, F> {
    apply(RDivScalar(c), [x])
}

/// The arithmetic operators for one operand type: with itself, with `f32`/`f64` on either side,
/// and negation.
macro_rules! operators {
    ($T:ident, $scalars:ident) => {
        operators!(@binary $T, $scalars, Add, add, Add, add_scalar, add_scalar_left);
        operators!(@binary $T, $scalars, Sub, sub, Sub, sub_scalar, rsub_scalar);
        operators!(@binary $T, $scalars, Mul, mul, Mul, mul_scalar, mul_scalar_left);
        operators!(@binary $T, $scalars, Div, div, Div, div_scalar, rdiv_scalar);

        impl<'t, F: Float> std::ops::Neg for $T<'t, F> {
            type Output = Self;
            #[track_caller]
            fn neg(self) -> Self {
                apply(Negate, [self])
            }
        }
    };
    (@binary $T:ident, $scalars:ident, $Trait:ident, $method:ident, $Op:ident, $with_scalar:ident, $scalar_with:ident) => {
        impl<'t, F: Float> std::ops::$Trait for $T<'t, F> {
            type Output = Self;
            #[track_caller]
            fn $method(self, rhs: Self) -> Self {
                apply($Op, [self, rhs])
            }
        }
        operators!(@$scalars $T, $Trait, $method, $with_scalar, $scalar_with);
    };
    // `Var<F>` with `F` on the right and the concrete `f32`/`f64` on the left, so that a literal
    // in `x * 2.0` or `2.0 * x` has exactly one candidate type and methods chain on the result.
    (@exact $T:ident, $Trait:ident, $method:ident, $with_scalar:ident, $scalar_with:ident) => {
        impl<'t, F: Float> std::ops::$Trait<F> for $T<'t, F> {
            type Output = Self;
            #[track_caller]
            fn $method(self, c: F) -> Self {
                $with_scalar(self, c)
            }
        }
        operators!(@left $T, $Trait, $method, $scalar_with, f32);
        operators!(@left $T, $Trait, $method, $scalar_with, f64);
    };
    (@left $T:ident, $Trait:ident, $method:ident, $scalar_with:ident, $S:ident) => {
        impl<'t> std::ops::$Trait<$T<'t, $S>> for $S {
            type Output = $T<'t, $S>;
            #[track_caller]
            fn $method(self, x: $T<'t, $S>) -> $T<'t, $S> {
                $scalar_with(self, x)
            }
        }
    };
}

operators!(Var, exact);

macro_rules! assign_operators {
    ($($Trait:ident $method:ident $op:tt),*) => {$(
        impl<'t, F: Float> std::ops::$Trait for Var<'t, F> {
            #[track_caller]
            fn $method(&mut self, rhs: Self) {
                *self = *self $op rhs;
            }
        }
        impl<'t, F: Float> std::ops::$Trait<F> for Var<'t, F> {
            #[track_caller]
            fn $method(&mut self, rhs: F) {
                *self = *self $op rhs;
            }
        }
    )*};
}

assign_operators!(AddAssign add_assign +, SubAssign sub_assign -, MulAssign mul_assign *, DivAssign div_assign /);

#[cfg(test)]
use crate::ops::cases::*;

#[cfg(test)]
mod tests {
    use crate::Tape;

    /// NumPy's `maximum` and `minimum` (and PyTorch's) return NaN when either operand is NaN.
    /// NOTE: the gradient goes to the NaN operand, the one the result came from, as PyTorch's
    /// `max` reduction does; two NaNs split it.
    #[test]
    fn maximum_and_minimum_propagate_nan_from_either_side() {
        let tape = Tape::<f64>::new();
        let nan = f64::NAN;
        let (a, b) = (tape.var(vec![nan, 1.0, 2.0, nan]), tape.var(vec![0.0, nan, 1.0, nan]));
        for (y, expected) in
            [(a.maximum(b), 2.0), (b.maximum(a), 2.0), (a.minimum(b), 1.0), (b.minimum(a), 1.0)]
        {
            let v = y.to_array();
            assert!(v[0].is_nan() && v[1].is_nan() && v[3].is_nan(), "{v}");
            assert_eq!(v[2], expected);
        }
        for y in [a.maximum(b), a.minimum(b)] {
            let g = y.sum().backward();
            assert_eq!(g[a].to_array().into_raw_vec_and_offset().0[..2], [1.0, 0.0]);
            assert_eq!(g[b].to_array().into_raw_vec_and_offset().0[..2], [0.0, 1.0]);
            assert_eq!((g[a].to_array()[3], g[b].to_array()[3]), (0.5, 0.5));
        }
        // the same on the scalar path
        let (s, t) = (tape.var(nan), tape.var(3.0));
        let y = s.maximum(t);
        assert!(y.scalar().is_nan());
        let g = y.backward();
        assert_eq!((g[s].scalar(), g[t].scalar()), (Some(1.0), Some(0.0)));
    }

    /// PyTorch's gradients of powers at 0: `d/dx x⁰ = 0` everywhere, 0 included (not `0·0⁻¹`,
    /// NaN); for `aᵇ`, `∂/∂a = b·aᵇ⁻¹` is 0 where `b = 0`, and `∂/∂b = aᵇ·ln a` is 0 where `a = 0`
    /// and `b ≥ 0`.
    #[test]
    fn powers_at_zero_take_pytorch_gradients() {
        let tape = Tape::<f64>::new();
        let x = tape.var(0.0);
        let y = x.powf(0.0);
        assert_eq!((y.scalar(), y.backward().wrt(x).scalar()), (1.0, Some(0.0)));
        let x = tape.var(vec![0.0, 2.0]);
        let g = x.powf(0.0).sum().backward().wrt(x).into_array();
        assert_eq!(g.into_raw_vec_and_offset().0, vec![0.0, 0.0]);

        let (inf, ln2) = (f64::INFINITY, std::f64::consts::LN_2);
        for (a0, b0, expected) in [
            (0.0, 0.0, [1.0, 0.0, 0.0]),    // 0⁰ = 1
            (0.0, 2.0, [0.0, 0.0, 0.0]),    // 0² = 0; ∂/∂a = 2·0¹
            (2.0, 0.0, [1.0, 0.0, ln2]),    // ∂/∂a = 0·2⁻¹, ∂/∂b = 2⁰·ln 2
            (0.0, -1.0, [inf, -inf, -inf]), // 0⁻¹ = ∞; ∂/∂a = −1·0⁻², ∂/∂b = ∞·ln 0
        ] {
            for (a, b) in [(tape.var(a0), tape.var(b0)), (tape.var(vec![a0]), tape.var(vec![b0]))] {
                let y = a.pow(b).sum();
                let g = y.backward();
                let got = [y.scalar(), g.wrt(a).scalar().unwrap(), g.wrt(b).scalar().unwrap()];
                assert_eq!(got, expected, "{a0}^{b0}");
            }
        }
    }
}
