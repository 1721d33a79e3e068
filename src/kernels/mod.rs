//! The kernels: how the ops compute fast, kept apart from what they compute.
//!
//! An op file says *what* an op is: its forward (calling the kernels here by name), its
//! backward rule and its test entry. This layer says *how fast*: every mechanism that exists
//! only for speed lives here, below [`Value`](crate::Value) (whose drop hands large buffers to
//! [`buffers`]), and knows nothing of values, tapes or ops; it works on slices and `ndarray`
//! views.
//!
//! - [`gemm`]: every matrix product ([`general_mat_mul`](gemm::general_mat_mul), on the `gemm`
//!   crate), and large products shared between threads with the bits of one thread;
//! - [`buffers`]: recycled array buffers, and the allocator tuning they need;
//! - [`vector`]: elementwise math compiled for the widest vectors the CPU has, found at run time;
//! - [`softmax`]: the one max-shifted log-sum-exp, and the fused softmax cross-entropy rows;
//! - [`window`]: the index math of a sliding window, one implementation for im2col, convolution
//!   and pooling;
//! - [`conv`]: the convolution as one GEMM per image and group, its transpose and its filters'
//!   gradient, images shared between threads;
//! - [`pooling`]: each window's largest element, with a vectorised path for tiling 2×2 and 3×3
//!   windows;
//! - [`sum`]: sums over leading axes, columns shared between threads.
//!
//! Every kernel has a test against a plain reference (the definition written as loops), and
//! every kernel that shares work between threads gives the same bits on any number of them:
//! work is cut so that each result element is computed whole by one thread, and partial sums
//! are added in a fixed order.

pub(crate) mod buffers;
pub(crate) mod conv;
pub(crate) mod gemm;
pub(crate) mod pooling;
pub(crate) mod softmax;
pub(crate) mod sum;
pub(crate) mod vector;
pub(crate) mod window;

use rayon::prelude::*;

/// Below this many elements, a kernel that can share its rows or columns between threads runs
/// on the calling thread: handing out so little work costs more than it saves.
pub(crate) const PARALLEL_ELEMENTS: usize = 1 << 16;

/// Calls `f` on each row of `width` elements of `values`, sharing the rows between threads
/// when there are at least [`PARALLEL_ELEMENTS`] values.
pub(crate) fn for_each_row<T: Send>(values: &mut [T], width: usize, f: impl Fn(&mut [T]) + Sync + Send) {
    let width = width.max(1);
    if values.len() >= PARALLEL_ELEMENTS {
        values.par_chunks_exact_mut(width).for_each(f);
    } else {
        values.chunks_exact_mut(width).for_each(f);
    }
}
