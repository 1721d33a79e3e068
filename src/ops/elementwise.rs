//! [`Scalar`]: the elementwise rules evaluated on plain numbers.
//!
//! The elementwise families write each gradient rule once, as an expression over [`Var`]s.
//! Their macros instantiate the same expression a second time over `Scalar`, a newtype with the
//! same operators and methods, and deliver it through [`scalar_rule`] from
//! [`Op::fast_backward`](crate::Op::fast_backward) when every value of the node is a scalar: a
//! chain of scalar ops then differentiates on plain numbers, without a rule's context, scope
//! and temporaries (`cargo bench --bench scalar_chain`). Both instances come from one text, so
//! they cannot drift apart; a test checks that they agree.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::float::Float;
use crate::tape::Var;
use crate::tape::op::FastBackward;

/// A number with the method set that elementwise gradient rules use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar<F>(pub F);

impl<F: Float> Scalar<F> {
    pub fn square(self) -> Self {
        Scalar(self.0 * self.0)
    }
    pub fn cos(self) -> Self {
        Scalar(self.0.cos())
    }
    pub fn sin(self) -> Self {
        Scalar(self.0.sin())
    }
    pub fn ln(self) -> Self {
        Scalar(self.0.ln())
    }
    pub fn pow(self, exponent: Self) -> Self {
        Scalar(self.0.powf(exponent.0))
    }
    pub fn powf(self, exponent: F) -> Self {
        Scalar(self.0.powf(exponent))
    }
    pub fn rsub(self, c: F) -> Self {
        Scalar(c - self.0)
    }
    pub fn sign(self) -> Self {
        Scalar(sign(self.0))
    }
    pub fn step(self) -> Self {
        Scalar(step(self.0))
    }
    pub fn times_step(self, x: Self) -> Self {
        self * x.step()
    }
    pub fn exp(self) -> Self {
        Scalar(crate::kernels::vector::exp(self.0))
    }
    pub fn tanh(self) -> Self {
        Scalar(crate::kernels::vector::tanh(self.0))
    }
    pub fn erf(self) -> Self {
        Scalar(crate::kernels::vector::erf(self.0))
    }
    pub fn sigmoid(self) -> Self {
        Scalar(crate::kernels::vector::sigmoid(self.0))
    }
    pub fn map_constant(&self, f: impl Fn(F) -> F) -> Self {
        Scalar(f(self.0))
    }
    pub fn zip_constant(&self, other: &Self, f: impl Fn(F, F) -> F) -> Self {
        Scalar(f(self.0, other.0))
    }
}

macro_rules! scalar_operators {
    ($($Trait:ident $method:ident $op:tt),*) => {$(
        impl<F: Float> $Trait for Scalar<F> {
            type Output = Self;
            fn $method(self, rhs: Self) -> Self {
                Scalar(self.0 $op rhs.0)
            }
        }
        impl<F: Float> $Trait<F> for Scalar<F> {
            type Output = Self;
            fn $method(self, c: F) -> Self {
                Scalar(self.0 $op c)
            }
        }
    )*};
}

scalar_operators!(Add add +, Sub sub -, Mul mul *, Div div /);

impl<F: Float> Neg for Scalar<F> {
    type Output = Self;
    fn neg(self) -> Self {
        Scalar(-self.0)
    }
}

/// What a rule expression may evaluate to: a gradient, or `None` for a zero gradient.
pub(crate) trait RuleResult<T> {
    fn into_option(self) -> Option<T>;
}

impl<F: Float> RuleResult<Scalar<F>> for Scalar<F> {
    fn into_option(self) -> Option<Scalar<F>> {
        Some(self)
    }
}

impl<T> RuleResult<T> for Option<T> {
    fn into_option(self) -> Option<T> {
        self
    }
}

impl<'a, F: Float> RuleResult<Var<'a, F>> for Var<'a, F> {
    fn into_option(self) -> Option<Var<'a, F>> {
        Some(self)
    }
}

/// Delivers the gradients a table rule computes on [`Scalar`]s when every value of the node is a
/// scalar (and returns `true`); returns `false` otherwise, so the tensor rule runs.
#[inline]
pub(crate) fn scalar_rule<F: Float, const N: usize>(
    fast: &mut FastBackward<'_, F>,
    rule: impl FnOnce([Scalar<F>; N], Scalar<F>, Scalar<F>) -> [Option<F>; N],
) -> bool {
    fast.scalar_rule(|xs, y, gy| rule(xs.map(Scalar), Scalar(y), Scalar(gy)))
}

/// The gradient of a rule evaluated on scalars.
pub(crate) fn scalar_grad<F: Float>(r: impl RuleResult<Scalar<F>>) -> Option<F> {
    r.into_option().map(|s| s.0)
}

/// The gradient of a piecewise-constant function: zero, so none is passed on.
pub(crate) fn zero<T>() -> Option<T> {
    None
}

/// The Heaviside step: 1 where `x > 0`, 0 elsewhere, NaN at NaN.
pub(crate) fn step<F: Float>(x: F) -> F {
    if x > F::zero() {
        F::one()
    } else if x.is_nan() {
        x
    } else {
        F::zero()
    }
}

/// The sign: −1, 0 or 1, NaN at NaN.
pub(crate) fn sign<F: Float>(x: F) -> F {
    if x > F::zero() {
        F::one()
    } else if x < F::zero() {
        -F::one()
    } else if x.is_nan() {
        x
    } else {
        F::zero()
    }
}
