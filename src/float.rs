//! The element type of every tensor: [`Float`], implemented for `f32` and `f64`.
//!
//! One trait bundles what ndarray (linear algebra, scalar operands) and num-traits (transcendental
//! functions) need, plus lossless-enough conversion to and from `f64` for constants written in
//! generic code.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type: `f32` or `f64`.
///
/// ```
/// use tapegrad::Float;
/// fn half<F: Float>(x: F) -> F { x * F::of(0.5) }
/// assert_eq!(half(3.0f32), 1.5);
/// assert_eq!(half(3.0f64).as_f64(), 1.5);
/// ```
pub trait Float:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + sealed::Sealed
    + 'static
{
    /// Converts an `f64` constant (rounding to nearest for `f32`).
    fn of(x: f64) -> Self;
    /// Widens to `f64`.
    fn as_f64(self) -> f64;
    /// The type's name, `"f32"` or `"f64"`, for messages.
    const NAME: &'static str;
    /// This thread's recycled buffers of this type.
    #[doc(hidden)]
    fn pool() -> &'static crate::pool::LocalPool<Self>;
    /// `eˣ` in arithmetic only, for loops over slices that the compiler vectorises (a call to
    /// the C library's `expf` per element cannot be): for `f32`, within 2 ulp of `exp` where
    /// the result is at least `f32::MIN_POSITIVE`, 0 below `x = −103.98`, infinite above
    /// 88.73, NaN for NaN. `f64` calls `exp`.
    #[doc(hidden)]
    fn exp_vectorized(self) -> Self;
    /// `tanh x` in arithmetic only, likewise: for `f32`, Cephes' `tanhf` (an odd polynomial
    /// below `|x| = 0.625`, `1 − 2/(e^{2|x|} + 1)` above, on [`exp_vectorized`](Self::exp_vectorized)),
    /// within 2 ulp of `tanh`, `±0` kept, NaN for NaN. `f64` calls `tanh`.
    #[doc(hidden)]
    fn tanh_vectorized(self) -> Self;
}

thread_local! {
    static F32_POOL: std::cell::RefCell<crate::pool::Pool<f32>> = const { std::cell::RefCell::new(crate::pool::Pool::new()) };
    static F64_POOL: std::cell::RefCell<crate::pool::Pool<f64>> = const { std::cell::RefCell::new(crate::pool::Pool::new()) };
}

impl Float for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    const NAME: &'static str = "f32";
    fn pool() -> &'static crate::pool::LocalPool<Self> {
        &F32_POOL
    }
    #[inline(always)]
    fn exp_vectorized(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn tanh_vectorized(self) -> Self {
        tanh_f32(self)
    }
}

/// Runs `f` compiled for the widest vector instructions the CPU has, found at run time
/// (AVX-512 or AVX2 with FMA on x86-64), so that its loops vectorise beyond the baseline SSE2
/// build: 16 `f32` lanes instead of 4 for a loop of [`Float::exp_vectorized`]. The results are
/// the same bits on every path (Rust never fuses a multiply and an add on its own).
#[inline(always)]
pub(crate) fn with_widest_vectors<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Cephes' `expf`: `eˣ = 2ⁿ·eʳ` with `n = round(x/ln 2)`, `r = x − n·ln 2` (ln 2 in two parts,
/// so `r` is exact) and a degree-7 polynomial for `eʳ` on `|r| ≤ ln 2 / 2`. `2ⁿ` is built from
/// its exponent bits in two halves, so that `n` from −150 to 128 (results down to the smallest
/// subnormal) needs no special case.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    const LOWEST: f32 = -103.972_08;
    const HIGHEST: f32 = 88.722_83;
    let clamped = x.clamp(LOWEST, HIGHEST);
    // Rounded to the nearest integer by adding 1.5·2²³, whose last bits then hold n: no call
    // to `roundf` and no float-to-integer conversion, which baseline x86-64 would not vectorise.
    const ROUND: f32 = 12_582_912.0;
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let mut p = 1.987_569_1e-4;
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = p * r + c;
    }
    let er = p * r * r + r + 1.0;
    let n = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let half = n >> 1;
    let power = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = er * power(half) * power(n - half);
    if x > HIGHEST {
        f32::INFINITY
    } else if x < LOWEST {
        0.0
    } else {
        y
    }
}

/// Cephes' `tanhf`: for `|x| ≥ 0.625`, `1 − 2/(e^{2|x|} + 1)` with the sign of `x` (1 once
/// `e^{2|x|}` overflows); below, `x + x·x²·P(x²)` with a degree-4 `P`. Both are computed and
/// one is chosen, so a loop of it has no branch to stop the compiler vectorising it.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let z = x.abs();
    let large = (1.0 - 2.0 / ((z + z).exp_vectorized() + 1.0)).copysign(x);
    let s = x * x;
    let mut p = -5.704_988_7e-3;
    for c in [2.063_909e-2, -5.373_971_6e-2, 0.133_314_42, -0.333_332_8] {
        p = p * s + c;
    }
    let small = if x == 0.0 { x } else { p * s * x + x };
    if z >= 0.625 { large } else { small }
}

impl Float for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    const NAME: &'static str = "f64";
    fn pool() -> &'static crate::pool::LocalPool<Self> {
        &F64_POOL
    }
    #[inline(always)]
    fn exp_vectorized(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn tanh_vectorized(self) -> Self {
        self.tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::Float;

    /// The arithmetic `exp` of `f32` against `f64`'s, rounded: within 2 ulp over the whole
    /// range of normal results, subnormal results within 2 of the smallest subnormal, and the
    /// edges as documented.
    #[test]
    fn vectorisable_f32_exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for k in 0..=2_000_000 {
            let x = -104.0 + 193.0 * k as f64 / 2_000_000.0;
            let (got, exact) = ((x as f32).exp_vectorized(), ((x as f32) as f64).exp());
            if exact >= f32::MIN_POSITIVE as f64 && exact <= f32::MAX as f64 {
                let ulp = (exact as f32).to_bits().abs_diff(got.to_bits());
                worst = worst.max(ulp as f64);
            } else if exact < f32::MIN_POSITIVE as f64 {
                assert!((got as f64 - exact).abs() <= 2.0 * 1.4e-45, "exp({x}) = {got}, exactly {exact}");
            }
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!((-104.0f32).exp_vectorized(), 0.0);
        assert_eq!(f32::NEG_INFINITY.exp_vectorized(), 0.0);
        assert_eq!(89.0f32.exp_vectorized(), f32::INFINITY);
        assert_eq!(f32::INFINITY.exp_vectorized(), f32::INFINITY);
        assert!(f32::NAN.exp_vectorized().is_nan());
        assert_eq!(0.0f32.exp_vectorized(), 1.0);
        assert_eq!(1.5f64.exp_vectorized(), 1.5f64.exp());
    }

    /// The arithmetic `tanh` of `f32` against `f64`'s, rounded: within 2 ulp from −12 to 12
    /// (beyond, both are ±1), through the switch at 0.625, with the edges as documented.
    #[test]
    fn vectorisable_f32_tanh_is_within_two_ulp() {
        let mut worst = 0u32;
        for k in 0..=2_400_000 {
            let x = (-12.0 + 24.0 * k as f64 / 2_400_000.0) as f32;
            let (got, exact) = (x.tanh_vectorized(), (x as f64).tanh() as f32);
            worst = worst.max(exact.to_bits().abs_diff(got.to_bits()));
        }
        for x in [1e-30f32, 1e-10, 1e-4, 0.624_999_9, 0.625, 0.625_000_1] {
            let ulp = ((x as f64).tanh() as f32).to_bits().abs_diff(x.tanh_vectorized().to_bits());
            worst = worst.max(ulp);
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!((50.0f32).tanh_vectorized(), 1.0);
        assert_eq!((-100.0f32).tanh_vectorized(), -1.0);
        assert_eq!(f32::INFINITY.tanh_vectorized(), 1.0);
        assert_eq!(f32::NEG_INFINITY.tanh_vectorized(), -1.0);
        assert!(f32::NAN.tanh_vectorized().is_nan());
        assert_eq!((-0.0f32).tanh_vectorized().to_bits(), (-0.0f32).to_bits());
        assert_eq!(0.5f64.tanh_vectorized(), 0.5f64.tanh());
    }
}
