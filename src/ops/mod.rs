//! Every differentiable operation, by family. Each op sits in one place: its forward, its
//! backward (the math in a one-line comment) and its property-test entry, side by side.
//!
//! - [`binary`] — elementwise `+ − × ÷`, `pow`, `maximum`, `minimum` with broadcasting, and the
//!   same with a scalar on either side;
//! - [`unary`] — elementwise functions (`exp`, `tanh`, `relu`, …);
//! - [`reduce`] — sums, means, max/min, `logsumexp`, `softmax`, norms;
//! - [`shape`] — reshape, permute, broadcast, slicing, indexing, `where_cond`, concat, stack;
//! - [`linalg`] — `matmul`.
//!

pub mod binary;
mod elementwise;
pub mod linalg;
pub mod reduce;
pub mod shape;
pub mod unary;

#[cfg(test)]
pub(crate) mod cases;
