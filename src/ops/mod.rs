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
//! - [`conv`] — `im2col`, its adjoint `col2im`, and `conv2d` and `conv_transpose2d`, which are
//!   each other's gradients;
//! - [`pooling`] — max, average and adaptive average pooling (average pooling composed from
//!   `conv2d`, adaptive pooling from `matmul`);
//! - [`nn`] — fused ops of neural networks (softmax cross-entropy).
//!
//! An op's forward computes with the kernels (`crate::kernels`) by name; its rule is written
//! with `Var` methods, so it is differentiable again. Fallible methods are written once, as
//! `pub fn name / try_name(…)` inside `var_methods!`, which makes the pair.

/// Defines `Var` methods. A method written `pub fn name / try_name(self, …) -> T { body }`,
/// with a `body` that returns `Result<T>`, becomes a pair: `try_name` returns the error, and
/// `name` panics with it at the caller's line (both are `#[track_caller]`). Any other method is
/// passed through as written. The first form is how every fallible op method is written, so
/// the pair never drifts apart and `grep "fn reshape"` finds both.
macro_rules! var_methods {
    () => {};
    (
        $(#[$meta:meta])*
        pub fn $name:ident / $try_name:ident($self:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty $body:block
        $($rest:tt)*
    ) => {
        impl<'t, F: Float> Var<'t, F> {
            $(#[$meta])*
            #[track_caller]
            pub fn $name($self $(, $arg: $ty)*) -> $ret {
                crate::error::or_panic($self.$try_name($($arg),*))
            }

            #[doc = concat!("Like [`", stringify!($name), "`](Self::", stringify!($name), "), returning the error instead of panicking.")]
            #[track_caller]
            pub fn $try_name($self $(, $arg: $ty)*) -> crate::error::Result<$ret> $body
        }
        var_methods!($($rest)*);
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident $args:tt $(-> $ret:ty)? $body:block
        $($rest:tt)*
    ) => {
        impl<'t, F: Float> Var<'t, F> {
            $(#[$meta])*
            $vis fn $name $args $(-> $ret)? $body
        }
        var_methods!($($rest)*);
    };
}

/// Defines free functions over `Var`s the way [`var_methods!`] defines methods: a function
/// written `pub fn name / try_name(…) -> T { body }` becomes `try_name`, which returns the
/// error, and `name`, which panics with it at the caller's line. Both take the lifetime `'t`
/// and the element type `F`.
macro_rules! var_functions {
    ($(
        $(#[$meta:meta])*
        pub fn $name:ident / $try_name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block
    )*) => {$(
        $(#[$meta])*
        #[track_caller]
        pub fn $name<'t, F: Float>($($arg: $ty),*) -> $ret {
            crate::error::or_panic($try_name($($arg),*))
        }

        #[doc = concat!("Like [`", stringify!($name), "()`], returning the error instead of panicking.")]
        #[track_caller]
        pub fn $try_name<'t, F: Float>($($arg: $ty),*) -> crate::error::Result<$ret> $body
    )*};
}

pub mod binary;
pub mod conv;
mod elementwise;
pub mod linalg;
pub mod nn;
pub mod pooling;
pub mod reduce;
pub mod shape;
pub mod unary;

#[cfg(test)]
pub(crate) mod cases;

use crate::error::{Error, Result, or_panic};
use crate::float::Float;
use crate::tape::Var;
use crate::tape::op::Op;

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

/// The number of elements of a tensor of `shape` that `op` (a layer, say) is about to make,
/// checked: an error naming `op` when the size overflows or the allocator cannot hand out that
/// much memory, instead of an abort when it is made.
pub(crate) fn check_size<F: Float>(op: &'static str, shape: &[usize]) -> Result<usize> {
    let len = crate::kernels::buffers::elements::<F>(op, shape)?;
    crate::kernels::buffers::check_room::<F>(op, len)?;
    Ok(len)
}

/// The number of elements of a tensor of `shape`, checked (see [`check_size`]), without
/// asking for the memory.
pub(crate) fn check_shape<F: Float>(op: &'static str, shape: &[usize]) -> Result<usize> {
    crate::kernels::buffers::elements::<F>(op, shape)
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

#[cfg(test)]
mod tests {
    /// The outputs built on `kernels::buffers::to_overwrite` write every element: after the pool has been
    /// filled with buffers of NaN (and index buffers pointing nowhere), a product, an affine
    /// map, the cross-entropy gradient and max pooling give the same bits as from a clean
    /// pool, and shapes large enough that the buffers come from the pool.
    #[test]
    fn outputs_on_recycled_buffers_do_not_depend_on_their_old_contents() {
        use crate::kernels::buffers::{recycle, release_cached_buffers};
        use crate::{Tape, Window};
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut random = |shape: &[usize]| {
            ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(shape), |_| rng.random::<f32>() - 0.5)
        };
        let (a, b, bias) = (random(&[300, 70]), random(&[70, 200]), random(&[200]));
        let image = random(&[4, 5, 60, 60]);
        let labels: Vec<usize> = (0..300).map(|i| (i * 7) % 200).collect();
        let run = || {
            let tape = Tape::<f32>::new();
            let (a, b, bias) = (tape.var(a.clone()), tape.constant(b.clone()), tape.constant(bias.clone()));
            let product = a.matmul(b).to_array();
            let logits = a.affine(b, bias);
            let grad = crate::ops::nn::softmax_cross_entropy(logits, &labels).backward()[a].to_array();
            let x = tape.var(image.clone());
            let pooled = x.max_pool2d(Window::pool((2, 2)));
            let strided = x.max_pool2d(Window { stride: (2, 2), padding: (1, 1), ..Window::new((3, 3)) });
            let image_grad = (pooled.sum() + strided.sum()).backward()[x].to_array();
            (product, logits.to_array(), grad, pooled.to_array(), strided.to_array(), image_grad)
        };
        release_cached_buffers::<f32>();
        let clean = run();
        for len in [300 * 200, 300 * 70, 4 * 5 * 30 * 30] {
            for _ in 0..4 {
                recycle(vec![f32::NAN; len]);
                recycle(vec![usize::MAX; len]);
            }
        }
        let poisoned = run();
        release_cached_buffers::<f32>();
        assert!(clean.0.iter().chain(&clean.2).chain(&clean.5).all(|v| v.is_finite()));
        assert_eq!(clean, poisoned);
    }
}
