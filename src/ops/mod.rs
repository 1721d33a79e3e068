//! Every differentiable operation, by family. Each op sits in one place: its forward, its
//! backward (the math in a one-line comment), its method on [`Var`] and its property-test
//! entry, side by side.
//!
//! - [`binary`] — elementwise `+ − × ÷`, `pow`, `maximum`, `minimum` with broadcasting, and the
//!   same with a scalar on either side; the arithmetic operators on `Var`;
//! - [`unary`] — elementwise functions (`exp`, `tanh`, `relu`, …);
//! - [`reduce`] — sums, means, max/min, `logsumexp`, `softmax`, norms;
//! - [`shape`] — reshape, permute, broadcast, flatten, slicing, indexing (`select`, flat
//!   `take`), `where_cond`, concat, stack;
//! - [`linalg`] — `matmul` and the fused `affine`;
//! - [`conv`] — `im2col`, its adjoint `col2im`, and `conv2d`, `conv_transpose2d` composed from
//!   them;
//! - [`pool`] — max, average and adaptive average pooling, composed from `take`, `conv2d` and
//!   `matmul`;
//! - [`nn`] — fused ops of neural networks (softmax cross-entropy).

pub mod binary;
pub mod conv;
mod elementwise;
pub mod linalg;
pub mod nn;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod unary;

#[cfg(test)]
pub(crate) mod cases;

use crate::error::{Error, Result, or_panic};
use crate::float::Float;
use crate::tape::Var;
use crate::tape::op::Op;

/// Below this many elements, a kernel that can share its rows or columns between threads (the
/// label cross-entropy, the affine map's bias, a bias gradient's sum) runs on the calling
/// thread: handing out so little work costs more than it saves.
pub(crate) const PARALLEL_ELEMENTS: usize = 1 << 16;

/// Applies `op` to `inputs` on their tape, panicking at the caller's line with the op's error.
#[track_caller]
pub(crate) fn apply<'t, F: Float, const N: usize>(op: impl Op<F>, inputs: [Var<'t, F>; N]) -> Var<'t, F> {
    or_panic(try_apply(op, inputs))
}

/// Applies `op` to `inputs` on their tape, returning its error.
#[track_caller]
pub(crate) fn try_apply<'t, F: Float, const N: usize>(
    op: impl Op<F>,
    inputs: [Var<'t, F>; N],
) -> Result<Var<'t, F>> {
    inputs[0].tape().record(op, &inputs)
}

/// Checks an axis index against a rank.
pub(crate) fn check_axis(op: &'static str, axis: usize, ndim: usize) -> Result<()> {
    if axis < ndim {
        Ok(())
    } else {
        Err(Error::argument(
            op,
            format!("axis {axis} is out of range for a value of rank {ndim} (axes 0..{ndim})"),
        ))
    }
}
