//! Softmax rows: the one max-shifted log-sum-exp of the crate ([`Normaliser`]), and the fused
//! row kernels of softmax cross-entropy built on it.
//!
//! A row's normaliser is its shift (the maximum, or 0 when that is not finite, so a row of
//! `-∞` gives `-∞` and never NaN) and the sum of the shifted exponentials. `logsumexp`,
//! `softmax`, `log_softmax` and both cross-entropies take it from here. The exponentials and
//! the sum run in [`lanes`] of the widest vectors, so for `f32` a row costs a few vector
//! instructions per 16 elements.
//!
//! Invariant: the cross-entropy kernels give the same bits on any number of threads: rows are
//! shared between threads, and each row's result depends on that row alone; the loss adds the
//! rows' losses in order.

use ndarray::{ArrayD, ArrayView1, ArrayViewD, Axis, Zip};
use rayon::prelude::*;

use crate::float::Float;
use crate::kernels::vector::{exp, lanes, with_widest_vectors};
use crate::kernels::{PARALLEL_ELEMENTS, buffers};

/// A row's softmax normaliser: the shift (its maximum, or 0 when that is not finite) and the
/// sum of the shifted exponentials.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Normaliser<F> {
    /// What the exponentials are shifted by.
    pub shift: F,
    /// `Σ e^(x − shift)`.
    pub sum: F,
}

impl<F: Float> Normaliser<F> {
    /// The normaliser of a contiguous row, its sums in [`lanes`].
    #[inline(always)]
    pub(crate) fn of(row: &[F]) -> Self {
        let max = lanes(row, F::neg_infinity(), F::max).into_iter().fold(F::neg_infinity(), F::max);
        let shift = if max.is_finite() { max } else { F::zero() };
        let sums = lanes(row, F::zero(), |sum, v| sum + exp(v - shift));
        Normaliser { shift, sum: sums.into_iter().fold(F::zero(), |a, b| a + b) }
    }

    /// The normaliser of a row of any strides.
    fn of_lane(row: ArrayView1<'_, F>) -> Self {
        match row.as_slice() {
            Some(row) => Self::of(row),
            None => Self::of(&row.to_vec()),
        }
    }

    /// `ln Σ eˣ` of the row.
    #[inline(always)]
    pub(crate) fn log_sum_exp(self) -> F {
        self.sum.ln() + self.shift
    }
}

/// The rows of `x` along `axis` as one contiguous slice and the rows' length, when `axis` is
/// the last and `x` is in standard layout (a batch of logits): the kernels then run row by row
/// without an indexed walk.
fn contiguous_rows<'a, F>(x: &'a ArrayViewD<'_, F>, axis: usize) -> Option<(&'a [F], usize)> {
    let width = *x.shape().get(axis)?;
    if axis + 1 != x.ndim() || width == 0 {
        return None;
    }
    Some((x.as_slice()?, width))
}

/// The normaliser of every row of `x` along `axis`, with that axis kept (length 1).
pub(crate) fn normalisers<F: Float>(x: &ArrayViewD<'_, F>, axis: usize) -> ArrayD<Normaliser<F>> {
    if let Some((data, width)) = contiguous_rows(x, axis) {
        let mut kept = x.raw_dim();
        kept[axis] = 1;
        let rows = with_widest_vectors(
            #[inline(always)]
            || data.chunks_exact(width).map(Normaliser::of).collect(),
        );
        return ArrayD::from_shape_vec(kept, rows).expect("one normaliser per row");
    }
    with_widest_vectors(
        #[inline(always)]
        || Zip::from(x.lanes(Axis(axis))).map_collect(|row| Normaliser::of_lane(row)),
    )
    .insert_axis(Axis(axis))
}

/// `ln Σ eˣ` along `axis`, the axis kept.
pub(crate) fn log_sum_exp<F: Float>(x: &ArrayViewD<'_, F>, axis: usize) -> ArrayD<F> {
    normalisers(x, axis).mapv(Normaliser::log_sum_exp)
}

/// `eˣ / Σ eˣ` along `axis`.
pub(crate) fn softmax<F: Float>(x: &ArrayViewD<'_, F>, axis: usize) -> ArrayD<F> {
    each_element(x, axis, |v, n| exp(v - n.shift) / n.sum)
}

/// `x − ln Σ eˣ` along `axis`.
pub(crate) fn log_softmax<F: Float>(x: &ArrayViewD<'_, F>, axis: usize) -> ArrayD<F> {
    each_element(x, axis, |v, n| v - n.shift - n.sum.ln())
}

/// `f(v, normaliser of v's row)` for every element `v` of `x`, rows along `axis`.
#[inline(always)]
fn each_element<F: Float>(
    x: &ArrayViewD<'_, F>,
    axis: usize,
    f: impl Fn(F, Normaliser<F>) -> F,
) -> ArrayD<F> {
    if let Some((data, width)) = contiguous_rows(x, axis) {
        let mut out = buffers::to_overwrite(data.len());
        with_widest_vectors(
            #[inline(always)]
            || {
                for (row, out) in data.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
                    let n = Normaliser::of(row);
                    out.iter_mut().zip(row).for_each(|(o, &v)| *o = f(v, n));
                }
            },
        );
        return ArrayD::from_shape_vec(x.raw_dim(), out).expect("one value per element");
    }
    let n = normalisers(x, axis);
    let n = n.broadcast(x.raw_dim()).expect("one normaliser per row");
    Zip::from(x).and(&n).map_collect(|&v, &n| f(v, n))
}

/// Each row's cross-entropy against its label, `ln Σ eˣ − x[label]`, and its normaliser, for
/// contiguous `rows` of `classes` logits; rows shared between threads when there are many.
pub(crate) fn label_losses<F: Float>(
    rows: &[F],
    classes: usize,
    labels: &[usize],
) -> Vec<(F, Normaliser<F>)> {
    let loss = |(row, &label): (&[F], &usize)| {
        let normaliser = with_widest_vectors(
            #[inline(always)]
            || Normaliser::of(row),
        );
        (normaliser.log_sum_exp() - row[label], normaliser)
    };
    if rows.len() >= PARALLEL_ELEMENTS {
        rows.par_chunks_exact(classes).zip(labels.par_iter()).map(loss).collect()
    } else {
        rows.chunks_exact(classes).zip(labels).map(loss).collect()
    }
}

/// The logits' gradient of the label cross-entropy, `(softmax(x) − onehot(label))·scale` per
/// row, into `out` (every element written): one pass per row, from the rows' normalisers when
/// the loss kept them (`kept`), else computed again.
pub(crate) fn label_gradient<F: Float>(
    out: &mut [F],
    rows: &[F],
    classes: usize,
    labels: &[usize],
    kept: Option<&[Normaliser<F>]>,
    scale: F,
) {
    let row = |r: usize, out: &mut [F], row: &[F], label: usize| {
        with_widest_vectors(
            #[inline(always)]
            || {
                let normaliser = kept.map_or_else(|| Normaliser::of(row), |rows| rows[r]);
                let factor = scale / normaliser.sum;
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = exp(v - normaliser.shift) * factor;
                }
                out[label] -= scale;
            },
        )
    };
    if rows.len() >= PARALLEL_ELEMENTS {
        let pairs = out.par_chunks_exact_mut(classes).zip(rows.par_chunks_exact(classes));
        pairs.zip(labels.par_iter()).enumerate().for_each(|(r, ((o, x), &l))| row(r, o, x, l));
    } else {
        let pairs = out.chunks_exact_mut(classes).zip(rows.chunks_exact(classes));
        pairs.zip(labels).enumerate().for_each(|(r, ((o, x), &l))| row(r, o, x, l));
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn, array};

    use super::*;

    /// The plain definitions, in `f64`, one row at a time.
    fn plain_log_sum_exp(row: &[f64]) -> f64 {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let shift = if max.is_finite() { max } else { 0.0 };
        row.iter().map(|&v| (v - shift).exp()).sum::<f64>().ln() + shift
    }

    #[test]
    fn log_sum_exp_matches_the_definition_along_any_axis() {
        let x = ArrayD::from_shape_fn(IxDyn(&[3, 37, 2]), |i| {
            ((i[0] * 131 + i[1] * 7 + i[2]) as f64).sin() * 5.0
        });
        for axis in 0..3 {
            let lse = log_sum_exp(&x.view(), axis);
            for (lane, &got) in x.lanes(Axis(axis)).into_iter().zip(lse.iter()) {
                let want = plain_log_sum_exp(&lane.to_vec());
                assert!((got - want).abs() < 1e-13 * want.abs().max(1.0), "axis {axis}: {got} vs {want}");
            }
        }
        // no overflow, and a row of −∞ gives −∞, never NaN
        let edge = array![[1000.0, 1000.0], [f64::NEG_INFINITY, f64::NEG_INFINITY]].into_dyn();
        let lse = log_sum_exp(&edge.view(), 1);
        assert!((lse[[0, 0]] - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(lse[[1, 0]], f64::NEG_INFINITY);
    }

    #[test]
    fn softmax_and_log_softmax_match_the_definitions() {
        let x = array![[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]].into_dyn();
        let (s, l) = (softmax(&x.view(), 1), log_softmax(&x.view(), 1));
        for (r, row) in x.outer_iter().enumerate() {
            let lse = plain_log_sum_exp(&row.iter().copied().collect::<Vec<f64>>());
            for (c, &v) in row.iter().enumerate() {
                assert!((s[[r, c]] - (v - lse).exp()).abs() < 1e-15);
                assert!((l[[r, c]] - (v - lse)).abs() < 1e-15);
            }
        }
        assert_eq!(
            softmax(&array![[1000.0f32, 1000.0]].into_dyn().view(), 1),
            array![[0.5f32, 0.5]].into_dyn()
        );
    }

    /// The fused loss and gradient rows against the plain definitions, on enough rows that
    /// they are shared between threads, and the same bits with and without kept normalisers.
    #[test]
    fn cross_entropy_rows_match_the_plain_definitions() {
        let (n, classes) = (2000, 37);
        let rows: Vec<f32> = (0..n * classes).map(|k| ((k * 7919) % 101) as f32 / 9.0 - 5.0).collect();
        let labels: Vec<usize> = (0..n).map(|r| (r * 13) % classes).collect();
        let losses = label_losses(&rows, classes, &labels);
        let (mut kept, mut again) = (vec![f32::NAN; rows.len()], vec![f32::NAN; rows.len()]);
        let normalisers: Vec<_> = losses.iter().map(|&(_, n)| n).collect();
        label_gradient(&mut kept, &rows, classes, &labels, Some(&normalisers), 0.5);
        label_gradient(&mut again, &rows, classes, &labels, None, 0.5);
        assert_eq!(kept, again);
        for r in [0, 1, 999, 1999] {
            let row: Vec<f64> = rows[r * classes..][..classes].iter().map(|&v| v as f64).collect();
            let lse = plain_log_sum_exp(&row);
            let want = lse - row[labels[r]];
            assert!((losses[r].0 as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "row {r}");
            for c in 0..classes {
                let onehot = if c == labels[r] { 1.0 } else { 0.0 };
                let want = ((row[c] - lse).exp() - onehot) * 0.5;
                assert!((kept[r * classes + c] as f64 - want).abs() < 1e-6, "row {r}, class {c}");
            }
        }
    }
}
