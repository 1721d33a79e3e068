//! Elementwise math compiled for the widest vectors the CPU has.
//!
//! The crate is built for baseline x86-64 (SSE2). [`with_widest_vectors`] compiles a closure
//! again for AVX2 + FMA and AVX-512 and picks one at run time (the `pulp` crate), with the same
//! results on every path (Rust never fuses a multiply and an add on its own). For a loop to
//! vectorise, the functions it calls must be arithmetic only: [`exp`], [`tanh`] and
//! [`sigmoid`] are, for `f32` (Cephes' polynomials, within 2 ulp of the C library, tested over
//! their whole range); for `f64` they call the C library. [`lanes`] folds a row in independent
//! running sums that fill a vector register.

use std::any::Any;

use crate::float::Float;

/// Runs `f` compiled for the widest vector instructions the CPU has, found at run time
/// (AVX-512 or AVX2 with FMA on x86-64), so that its loops vectorise beyond the baseline SSE2
/// build: 16 `f32` lanes instead of 4 for a loop of [`exp`]. The results are the same bits on
/// every path.
#[inline(always)]
pub(crate) fn with_widest_vectors<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `xs` mapped by `f` into `out` (of the same length), compiled for the widest vectors.
#[inline(always)]
pub(crate) fn map_into<F: Float>(out: &mut [F], xs: &[F], f: impl Fn(F) -> F) {
    with_widest_vectors(
        #[inline(always)]
        || out.iter_mut().zip(xs).for_each(|(o, &x)| *o = f(x)),
    );
}

/// `x` as an `f32` when `F` is `f32`: a check of types that the compiler resolves, no code.
#[inline(always)]
fn as_f32<F: Float>(x: F) -> Option<f32> {
    (&x as &dyn Any).downcast_ref::<f32>().copied()
}

/// An `f32` as `F`, which is `f32` (see [`as_f32`]).
#[inline(always)]
fn from_f32<F: Float>(x: f32) -> F {
    *(&x as &dyn Any).downcast_ref::<F>().expect("F is f32")
}

/// `eˣ` in arithmetic only: for `f32`, within 2 ulp of `exp` where the result is at least
/// `f32::MIN_POSITIVE`, 0 below `x = −103.98`, infinite above 88.73, NaN for NaN. `f64` calls
/// the C library.
#[inline(always)]
pub(crate) fn exp<F: Float>(x: F) -> F {
    match as_f32(x) {
        Some(x) => from_f32(exp_f32(x)),
        None => x.exp(),
    }
}

/// `tanh x` in arithmetic only: for `f32`, Cephes' `tanhf` (an odd polynomial below
/// `|x| = 0.625`, `1 − 2/(e^{2|x|} + 1)` above), within 2 ulp of `tanh`, `±0` kept, NaN for
/// NaN. `f64` calls the C library.
#[inline(always)]
pub(crate) fn tanh<F: Float>(x: F) -> F {
    match as_f32(x) {
        Some(x) => from_f32(tanh_f32(x)),
        None => x.tanh(),
    }
}

/// The error function `erf x = 2/√π ∫₀ˣ e^{−t²} dt`, from `libm` (a port of the C library's,
/// which Rust's `std` lacks): `erff` for `f32`, `erf` for `f64`.
#[inline(always)]
pub(crate) fn erf<F: Float>(x: F) -> F {
    match as_f32(x) {
        Some(x) => from_f32(libm::erff(x)),
        None => F::of(libm::erf(x.as_f64())),
    }
}

/// The logistic sigmoid: `1/(1 + e⁻ˣ)` for `x ≥ 0`, `eˣ/(1 + eˣ)` below, from one `e^−|x|`
/// (so it never overflows), both computed and one chosen: a loop of it vectorises.
#[inline(always)]
pub(crate) fn sigmoid<F: Float>(x: F) -> F {
    let e = exp(-x.abs());
    let d = F::one() + e;
    if x >= F::zero() { F::one() / d } else { e / d }
}

/// Independent running folds of `row`, element `i` going to lane `i % LANES`: the lanes fill a
/// vector register, where a single running sum or maximum would be one long chain of
/// dependent steps.
#[inline(always)]
pub(crate) fn lanes<F: Float>(row: &[F], init: F, f: impl Fn(F, F) -> F) -> [F; LANES] {
    let mut acc = [init; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a = f(*a, v);
    }
    acc
}

/// Lanes of [`lanes`]: sixteen `f32`, one AVX-512 register.
pub(crate) const LANES: usize = 16;

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
    let large = (1.0 - 2.0 / (exp_f32(z + z) + 1.0)).copysign(x);
    let s = x * x;
    let mut p = -5.704_988_7e-3;
    for c in [2.063_909e-2, -5.373_971_6e-2, 0.133_314_42, -0.333_332_8] {
        p = p * s + c;
    }
    let small = if x == 0.0 { x } else { p * s * x + x };
    if z >= 0.625 { large } else { small }
}

#[cfg(test)]
mod tests {
    use super::{exp, tanh};

    /// The arithmetic `exp` of `f32` against `f64`'s, rounded: within 2 ulp over the whole
    /// range of normal results, subnormal results within 2 of the smallest subnormal, and the
    /// edges as documented.
    #[test]
    fn vectorisable_f32_exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for k in 0..=2_000_000 {
            let x = -104.0 + 193.0 * k as f64 / 2_000_000.0;
            let (got, exact) = (exp(x as f32), ((x as f32) as f64).exp());
            if exact >= f32::MIN_POSITIVE as f64 && exact <= f32::MAX as f64 {
                let ulp = (exact as f32).to_bits().abs_diff(got.to_bits());
                worst = worst.max(ulp as f64);
            } else if exact < f32::MIN_POSITIVE as f64 {
                assert!((got as f64 - exact).abs() <= 2.0 * 1.4e-45, "exp({x}) = {got}, exactly {exact}");
            }
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!(exp(-104.0f32), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(89.0f32), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0f32), 1.0);
        assert_eq!(exp(1.5f64), 1.5f64.exp());
    }

    /// The arithmetic `tanh` of `f32` against `f64`'s, rounded: within 2 ulp from −12 to 12
    /// (beyond, both are ±1), through the switch at 0.625, with the edges as documented.
    #[test]
    fn vectorisable_f32_tanh_is_within_two_ulp() {
        let mut worst = 0u32;
        for k in 0..=2_400_000 {
            let x = (-12.0 + 24.0 * k as f64 / 2_400_000.0) as f32;
            let (got, exact) = (tanh(x), (x as f64).tanh() as f32);
            worst = worst.max(exact.to_bits().abs_diff(got.to_bits()));
        }
        for x in [1e-30f32, 1e-10, 1e-4, 0.624_999_9, 0.625, 0.625_000_1] {
            let ulp = ((x as f64).tanh() as f32).to_bits().abs_diff(tanh(x).to_bits());
            worst = worst.max(ulp);
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(tanh(50.0f32), 1.0);
        assert_eq!(tanh(-100.0f32), -1.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!(tanh(-0.0f32).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(0.5f64), 0.5f64.tanh());
    }

    /// The sigmoid against `1/(1 + e⁻ˣ)` in `f64`: within 4 ulp in `f32` (its `exp` is within
    /// 2), exact to a few ulp in `f64`, no overflow at ±1000, and the folds of [`lanes`] equal to
    /// a plain fold for every length.
    #[test]
    fn sigmoid_matches_its_definition_and_lanes_fold_every_element() {
        use super::{lanes, sigmoid};
        let mut worst = 0u32;
        for k in 0..=200_000 {
            let x = -30.0 + 60.0 * k as f64 / 200_000.0;
            let x32 = x as f32;
            let exact = (1.0 / (1.0 + (-(x32 as f64)).exp())) as f32;
            worst = worst.max(exact.to_bits().abs_diff(sigmoid(x32).to_bits()));
            let exact = 1.0 / (1.0 + (-x).exp());
            assert!((sigmoid(x) - exact).abs() <= 4.0 * f64::EPSILON * exact, "sigmoid({x})");
        }
        assert!(worst <= 4, "{worst} ulp");
        assert_eq!((sigmoid(1000.0f32), sigmoid(-1000.0f32)), (1.0, 0.0));
        for n in 0..40 {
            let row: Vec<f64> = (0..n).map(|i| (i * i) as f64).collect();
            let folded = lanes(&row, 0.0, |a, b| a + b).into_iter().sum::<f64>();
            assert_eq!(folded, row.iter().sum::<f64>(), "length {n}");
        }
    }
}
