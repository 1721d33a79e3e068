//! Sums over the leading axes of a contiguous array (a bias gradient summed over the batch):
//! whole rows added slice by slice, where ndarray's `sum_axis` would walk the rows through its
//! general indexing. Wide rows share their columns between threads; each column's sum runs
//! over the rows in order, so the bits do not depend on the thread count.

use ndarray::{ArrayD, ArrayViewD};
use rayon::prelude::*;

use crate::float::Float;
use crate::kernels::PARALLEL_ELEMENTS;

/// The sum over the leading axes `0..k` of a standard-layout array (a bias gradient summed over
/// the batch), as whole rows added slice by slice; `None` when `x` or `axes` are not of that
/// form. ndarray's `sum_axis` walks such a sum row by row through its general indexing.
pub(crate) fn sum_leading_axes<F: Float>(
    x: &ArrayViewD<'_, F>,
    axes: &[usize],
    keepdims: bool,
) -> Option<ArrayD<F>> {
    let k = axes.len();
    if k == 0 || k == x.ndim() || axes.iter().enumerate().any(|(i, &a)| i != a) {
        return None;
    }
    let data = x.as_slice()?;
    let width: usize = x.shape()[k..].iter().product();
    let mut sum = vec![F::zero(); width];
    // each column's sum runs over the rows in order, so sharing columns between threads (a
    // read-out's bias over 10,000 words) gives the same bits
    let columns = |(start, sum): (usize, &mut [F])| {
        for row in data.chunks_exact(width.max(1)) {
            sum.iter_mut().zip(&row[start..]).for_each(|(s, &v)| *s += v);
        }
    };
    if data.len() >= PARALLEL_ELEMENTS && width >= 2 * COLUMN_BLOCK {
        sum.par_chunks_mut(COLUMN_BLOCK).enumerate().for_each(|(i, s)| columns((i * COLUMN_BLOCK, s)));
    } else {
        columns((0, &mut sum));
    }
    let shape: Vec<usize> = (0..x.ndim())
        .filter_map(|a| if a < k { keepdims.then_some(1) } else { Some(x.shape()[a]) })
        .collect();
    ArrayD::from_shape_vec(ndarray::IxDyn(&shape), sum).ok()
}

/// The columns [`sum_leading_axes`] hands a thread at a time: 4 KiB of `f32` sums.
const COLUMN_BLOCK: usize = 1024;

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, Axis, IxDyn};

    use super::*;

    /// Against ndarray's `sum_axis`, on rows wide enough that their columns are shared between
    /// threads, and on a narrow array; other axes are refused.
    #[test]
    fn sums_over_leading_axes_match_sum_axis() {
        for shape in [[40, 3, 2000], [3, 2, 5]] {
            let x =
                ArrayD::from_shape_fn(IxDyn(&shape), |i| ((i[0] * 7 + i[1] * 3 + i[2]) % 17) as f64 - 8.0);
            let one = sum_leading_axes(&x.view(), &[0], false).unwrap();
            assert_eq!(one, x.sum_axis(Axis(0)));
            let two = sum_leading_axes(&x.view(), &[0, 1], true).unwrap();
            let expected = x.sum_axis(Axis(0)).sum_axis(Axis(0)).insert_axis(Axis(0)).insert_axis(Axis(0));
            assert_eq!(two, expected);
        }
        let x = ArrayD::<f64>::zeros(IxDyn(&[2, 3]));
        assert!(sum_leading_axes(&x.view(), &[1], false).is_none());
        assert!(sum_leading_axes(&x.view(), &[0, 1], false).is_none());
    }
}
