//! Matrix products on `ndarray` matrices of any strides (transposed views included, so no
//! transpose is ever copied): [`general_mat_mul`], `c ← α·a·b + β·c`, ndarray's function of that
//! name with the same arguments, and [`matmul`], a product into a recycled buffer that large
//! products share between threads. Every product tapegrad computes goes through here.
//!
//! The products run on the `gemm` crate (the kernels candle uses), which picks AVX2 or AVX-512
//! kernels at run time (`cargo bench --bench gemm` compares it with matrixmultiply, ndarray's
//! own backend). With the `blas` feature they go to the system BLAS through ndarray instead.
//!
//! Each element's sum runs over `k` in order, in blocks whose size depends on `k` and the cache
//! sizes, and not on `m` or `n` as long as one of them is above [`SMALL_SIDE`] (smaller
//! products have kernels of their own). So a block of rows or columns of `c` with more than
//! `SMALL_SIDE` rows or columns gets the same bits as the whole product, and [`matmul`]'s
//! result does not depend on the thread count.
//!
//! This module holds the crate's only `unsafe` code: the call into `gemm`, which takes raw
//! pointers.

use ndarray::{ArrayBase, ArrayView2, ArrayViewMut2, Axis, Data, DataMut, Ix2};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;

/// Products whose `m` and `n` are both at most this are computed by `gemm`'s kernels for small
/// products, which may add the terms of a sum in another order.
pub(crate) const SMALL_SIDE: usize = 64;

/// `c ← α·a·b + β·c` for `a` `[m, k]`, `b` `[k, n]` and `c` `[m, n]` of any strides, on the GEMM
/// tapegrad's own products use: a drop-in for ndarray's `general_mat_mul` (hand-written code
/// beside tapegrad, such as the benches' baselines, then runs on the same kernels). With
/// `β = 0`, `c` is only written, never read.
///
/// Panics if the shapes do not fit.
///
/// ```
/// use ndarray::array;
/// let (a, b) = (array![[1.0, 2.0], [3.0, 4.0]], array![[5.0], [6.0]]);
/// let mut c = array![[1.0], [1.0]];
/// tapegrad::general_mat_mul(2.0, &a, &b, 1.0, &mut c); // c ← 2·a·b + c
/// assert_eq!(c, array![[35.0], [79.0]]);
/// tapegrad::general_mat_mul(1.0, &a.t(), &b, 0.0, &mut c); // c ← aᵀ·b
/// assert_eq!(c, array![[23.0], [34.0]]);
/// ```
#[track_caller]
pub fn general_mat_mul<F, S1, S2, S3>(
    alpha: F,
    a: &ArrayBase<S1, Ix2>,
    b: &ArrayBase<S2, Ix2>,
    beta: F,
    c: &mut ArrayBase<S3, Ix2>,
) where
    F: Float,
    S1: Data<Elem = F>,
    S2: Data<Elem = F>,
    S3: DataMut<Elem = F>,
{
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    if k != k2 || c.dim() != (m, n) {
        let shapes = [a.shape(), b.shape(), c.shape()];
        panic!("{}", Error::shape("general_mat_mul", &shapes, "[m, k]·[k, n] into [m, n]"));
    }
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(feature = "blas")]
    ndarray::linalg::general_mat_mul(alpha, a, b, beta, c);
    #[cfg(not(feature = "blas"))]
    {
        let (sa, sb, sc) = (a.strides(), b.strides(), [c.strides()[0], c.strides()[1]]);
        // SAFETY: each pointer is a live array's first element, and with that array's strides
        // addresses exactly its elements (`m·k`, `k·n`, `m·n`, checked above); `gemm` reads
        // only those of `a` and `b`, and reads and writes only those of `c`. `c` is borrowed
        // mutably, so it overlaps neither operand, and a mutable array never addresses one
        // element twice. `F` is `f32` or `f64`, both of which `gemm` implements.
        #[allow(unsafe_code)]
        unsafe {
            // gemm's own names: dst ← alpha·dst + beta·lhs·rhs, strides column first
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                sc[1],
                sc[0],
                beta != F::zero(),
                a.as_ptr(),
                sa[1],
                sa[0],
                b.as_ptr(),
                sb[1],
                sb[0],
                beta,
                alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// `a·b` in a recycled buffer, `[m, n]` flat; an error naming `op` when `[m, n]` is too large
/// to hold (operands with no elements may still have long sides).
pub(crate) fn matmul<F: Float>(
    op: &'static str,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
) -> Result<Vec<F>> {
    let (m, n) = (a.nrows(), b.ncols());
    let len = buffers::elements::<F>(op, &[m, n])?;
    // a product over k = 0 is zeros, which the GEMM leaves as it finds them
    let mut out =
        if a.ncols() == 0 { buffers::try_zeros(op, len)? } else { buffers::try_to_overwrite(op, len)? };
    let c = ArrayViewMut2::from_shape((m, n), &mut out[..]).expect("m·n values");
    shared_product(a, b, c);
    Ok(out)
}

/// Below this many multiply-adds a product runs on the calling thread: sharing it costs more
/// than it saves (the recurrent step of an LSTM, `[20, 100]·[100, 400]`, stays whole).
const PARALLEL_PRODUCTS: usize = 1 << 24;

/// Blocks of the result are multiples of this many rows or columns, so that no kernel tile is
/// split.
const BLOCK_ALIGN: usize = 16;

/// `c = a·b`, writing every element of `c` without reading it. A large product is cut into one
/// block of rows of `c` per thread (of columns, when `c` has more of them), each block computed
/// by its own GEMM: an element's sum runs over `k` in the same order whatever the cut (each
/// block keeps more than [`SMALL_SIDE`] rows or columns), so the result does not depend on the
/// thread count.
fn shared_product<F: Float>(a: ArrayView2<'_, F>, b: ArrayView2<'_, F>, mut c: ArrayViewMut2<'_, F>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    if m == 0 || n == 0 {
        return; // nothing to write (and no block of rows or columns to cut)
    }
    let threads = rayon::current_num_threads().min(m.saturating_mul(k).saturating_mul(n) / PARALLEL_PRODUCTS);
    let (axis, len) = if m >= n { (Axis(0), m) } else { (Axis(1), n) };
    let block = len.div_ceil(threads.max(1)).next_multiple_of(BLOCK_ALIGN);
    // the last block is the smallest; it must not fall to gemm's kernels for small products
    let last = len - len.saturating_sub(1) / block * block;
    if threads < 2 || block >= len || (last <= SMALL_SIDE && m.min(n) <= SMALL_SIDE) {
        general_mat_mul(F::one(), &a, &b, F::zero(), &mut c);
        return;
    }
    let blocks: Vec<_> = if axis == Axis(0) {
        a.axis_chunks_iter(axis, block).map(|a| (a, b)).zip(c.axis_chunks_iter_mut(axis, block)).collect()
    } else {
        b.axis_chunks_iter(axis, block).map(|b| (a, b)).zip(c.axis_chunks_iter_mut(axis, block)).collect()
    };
    blocks.into_par_iter().for_each(|((a, b), mut c)| general_mat_mul(F::one(), &a, &b, F::zero(), &mut c));
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ShapeBuilder, s};
    use proptest::prelude::*;

    use super::{general_mat_mul, matmul};

    /// The product by the definition, each sum in `f64`.
    fn by_definition(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|l| a[[i, l]] * b[[l, j]]).sum()
        })
    }

    proptest! {
        /// Every layout the ops hand it (row-major, transposed, reversed, strided, a
        /// column-major result), with `β = 0` (`c` full of NaN, never read), 1 or ½, and sizes
        /// from 0 to past one block of `k` (512).
        #[test]
        fn general_mat_mul_matches_the_definition(
            (m, k, n) in (0usize..40, prop_oneof![0usize..20, 500usize..530], 0usize..40),
            layout in 0usize..4,
            (alpha, beta) in (prop_oneof![Just(1.0), Just(-0.5)], prop_oneof![Just(0.0), Just(1.0), Just(0.5)]),
            seed: u64,
        ) {
            use rand::{RngExt, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut random = |r, c| Array2::from_shape_fn((r, c), |_| rng.random::<f64>() - 0.5);
            let (a, b) = (random(m, k), random(k, n));
            let c0 = if beta == 0.0 { Array2::from_elem((m, n), f64::NAN) } else { random(m, n) };
            // the same matrices, stored as ops store them
            let (at, bt) = (a.t().to_owned(), b.t().to_owned());
            let a_reversed = a.slice(s![..;-1, ..]).to_owned();
            let mut b_wide = Array2::zeros((k, 2 * n));
            b_wide.slice_mut(s![.., ..;2]).assign(&b);
            let mut c = if layout == 3 { Array2::zeros((m, n).f()) } else { Array2::zeros((m, n)) };
            c.assign(&c0);
            match layout {
                0 | 3 => general_mat_mul(alpha, &a, &b, beta, &mut c),
                1 => general_mat_mul(alpha, &at.t(), &bt.t(), beta, &mut c),
                _ => general_mat_mul(alpha, &a_reversed.slice(s![..;-1, ..]), &b_wide.slice(s![.., ..;2]), beta, &mut c),
            }
            let kept = if beta == 0.0 { Array2::zeros((m, n)) } else { c0 * beta };
            let expected = by_definition(&a, &b) * alpha + kept;
            for (x, y) in c.iter().zip(&expected) {
                prop_assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} against {y}");
            }
        }
    }

    /// Sharing a product by blocks of rows or columns of the result, each with more than
    /// `SMALL_SIDE` rows or columns, gives the whole product's bits with `k` past one block
    /// ([`matmul`] relies on it).
    #[test]
    fn blocks_of_the_result_give_the_whole_products_bits() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut random = |r, c| Array2::from_shape_fn((r, c), |_| rng.random::<f32>() - 0.5);
        let (a, b) = (random(150, 1100), random(1100, 90));
        let mut whole = Array2::zeros((150, 90));
        general_mat_mul(1.0, &a, &b, 0.0, &mut whole);
        let mut blocks = Array2::zeros((150, 90));
        for (rows, cols) in [(0..16, 0..90), (16..150, 0..48), (16..150, 48..90)] {
            let mut c = blocks.slice_mut(s![rows.clone(), cols.clone()]);
            general_mat_mul(1.0, &a.slice(s![rows, ..]), &b.slice(s![.., cols]), 0.0, &mut c);
        }
        assert_eq!(whole, blocks);
        let reference = a.dot(&b);
        assert!(whole.iter().zip(&reference).all(|(x, y)| (x - y).abs() < 1e-4), "against ndarray's product");
    }

    /// A product large enough to be shared gives the very same bits on one thread as on two,
    /// cut by rows or by columns (but never into blocks small enough for `gemm`'s kernels for
    /// small products: halves of `[128, 4500]·[4500, 64]`, or the last 50 rows of
    /// `[130, 4500]·[4500, 60]`), and agrees with ndarray's own product.
    #[test]
    fn shared_products_do_not_depend_on_the_thread_count() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut random = |r: usize, c: usize| Array2::from_shape_fn((r, c), |_| rng.random::<f32>() - 0.5);
        for (m, k, n) in [(1200, 100, 300), (100, 700, 1000), (128, 4500, 64), (130, 4500, 60)] {
            let (a, b) = (random(m, k), random(k, n));
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| matmul("test", a.view(), b.view()).unwrap())
            };
            let (one, two) = (on(1), on(2));
            assert_eq!(one, two, "[{m}, {k}]·[{k}, {n}]");
            let expected = a.dot(&b);
            assert!(one.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-4));
        }
    }

    /// Shapes that do not fit name the function and all three shapes.
    #[test]
    #[should_panic(
        expected = "general_mat_mul: got shapes [2, 3], [2, 1] and [2, 1], expected [m, k]·[k, n] into [m, n]"
    )]
    fn shapes_that_do_not_fit_panic_with_the_shapes() {
        general_mat_mul(
            1.0,
            &Array2::<f32>::zeros((2, 3)),
            &Array2::zeros((2, 1)),
            0.0,
            &mut Array2::zeros((2, 1)),
        );
    }
}
