//! # tapegrad
//!
//! Define-by-run reverse-mode automatic differentiation over `ndarray` tensors.
//!
//! Every operation on a [`Var`] records a node on a [`Tape`]; [`Var::backward`] walks the tape
//! in reverse and returns exact gradients. Backward rules are themselves written with
//! differentiable operations, so gradients can be differentiated again ([`Tape::grad`] with
//! `create_graph`), and every op's gradient is checked against central differences by the same
//! public [`gradcheck`] users call.
//!
//! ```
//! use tapegrad::Tape;
//!
//! let tape = Tape::<f64>::new();
//! let apple = tape.var(100.0);
//! let num = tape.var(2.0);
//! let tax = tape.var(1.1);
//! let price = apple * num * tax;
//! let grads = price.backward();
//! assert!((price.scalar() - 220.0).abs() < 1e-9);
//! assert!((grads[tax].scalar().unwrap() - 200.0).abs() < 1e-12);
//! ```
//!
//! Layers, from the ground up: [`Float`] and [`Error`]; the kernels, where all that exists for
//! speed lives (the products, recycled buffers, vectorised math, fused row, window and
//! convolution loops; not public, but for [`general_mat_mul`] and [`release_cached_buffers`]);
//! [`Value`]; the [`tape`](Tape) (nodes, [`Var`], backward, with one extension point,
//! [`FastBackward`]) and the [`op`] protocol; the [`ops`] families, which define all math on
//! `Var`; [`gradcheck`] and [`gradgradcheck`]; [`functional`] (Hessian- and Jacobian-vector
//! products, Hessians and Jacobians of whole functions); [`nn`] and [`optim`], with their
//! [`state`] as named arrays; [`checkpoint`] (files that resume a run exactly) and
//! [`parallel`] (data-parallel training on threads or MPI processes).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod checkpoint;
pub mod data;
mod error;
mod float;
pub mod functional;
mod gradcheck;
mod kernels;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod parallel;
pub mod state;
mod tape;
mod value;

pub use error::{Error, Result};
pub use float::Float;
pub use gradcheck::{GradcheckError, GradcheckOptions, gradcheck, gradgradcheck, numerical_gradient};
pub use kernels::buffers::release_cached_buffers;
pub use kernels::gemm::general_mat_mul;
pub use kernels::window::Window;
pub use ops::conv::ConvOptions;
pub use ops::reduce::Norm;
pub use ops::shape::{concat, stack, where_cond};
pub use tape::op;
pub use tape::op::{Context, FastBackward, Grads, IntoGrad, Op};
pub use tape::{
    DotOptions, GradOptions, Gradients, NoGradGuard, NodeId, OpStats, Param, SparseRows, Tape, TapeStats, Var,
};
pub use value::{Shape, Value, broadcast_shape};

// Links the BLAS implementation behind ndarray's `blas` feature.
#[cfg(feature = "blas")]
extern crate blas_src;

/// `s![..]` slicing arguments for [`Var::slice`], re-exported from ndarray.
pub use ndarray::s;

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

/// The Korean README's example, likewise.
#[cfg(doctest)]
#[doc = include_str!("../README.ko.md")]
struct ReadmeKoExample;

/// The architecture notes' examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/ARCHITECTURE.md")]
struct ArchitectureDoc;

/// The guide to adding an op, its examples compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/ADDING_AN_OP.md")]
struct AddingAnOpDoc;

/// The learner's guide in both editions (`docs/guide/`, `docs/ko/guide/`): every Rust block of
/// every page compiles and runs as a doc test, so the guide cannot drift from the API.
#[cfg(doctest)]
mod guide {
    macro_rules! pages {
        ($($page:ident = $path:literal,)*) => {
            $(#[doc = include_str!($path)] struct $page;)*
        };
    }
    pages! {
        EnIntroduction = "../docs/guide/src/introduction.md",
        EnRustYouNeed = "../docs/guide/src/rust-you-need.md",
        En01Arrays = "../docs/guide/src/01-arrays.md",
        En02Perceptrons = "../docs/guide/src/02-perceptrons.md",
        En03LossesAndDescent = "../docs/guide/src/03-losses-and-descent.md",
        En04Backpropagation = "../docs/guide/src/04-backpropagation.md",
        En05CheckingGradients = "../docs/guide/src/05-checking-gradients.md",
        En06Mlp = "../docs/guide/src/06-mlp.md",
        En07Cnn = "../docs/guide/src/07-cnn.md",
        En08Sequences = "../docs/guide/src/08-sequences.md",
        En09HigherOrder = "../docs/guide/src/09-higher-order.md",
        En10YourOwnOp = "../docs/guide/src/10-your-own-op.md",
        En11Performance = "../docs/guide/src/11-performance.md",
        EnNumpyPytorch = "../docs/guide/src/numpy-pytorch.md",
        KoIntroduction = "../docs/ko/guide/src/introduction.md",
        KoRustYouNeed = "../docs/ko/guide/src/rust-you-need.md",
        Ko01Arrays = "../docs/ko/guide/src/01-arrays.md",
        Ko02Perceptrons = "../docs/ko/guide/src/02-perceptrons.md",
        Ko03LossesAndDescent = "../docs/ko/guide/src/03-losses-and-descent.md",
        Ko04Backpropagation = "../docs/ko/guide/src/04-backpropagation.md",
        Ko05CheckingGradients = "../docs/ko/guide/src/05-checking-gradients.md",
        Ko06Mlp = "../docs/ko/guide/src/06-mlp.md",
        Ko07Cnn = "../docs/ko/guide/src/07-cnn.md",
        Ko08Sequences = "../docs/ko/guide/src/08-sequences.md",
        Ko09HigherOrder = "../docs/ko/guide/src/09-higher-order.md",
        Ko10YourOwnOp = "../docs/ko/guide/src/10-your-own-op.md",
        Ko11Performance = "../docs/ko/guide/src/11-performance.md",
        KoNumpyPytorch = "../docs/ko/guide/src/numpy-pytorch.md",
        KoGlossary = "../docs/ko/guide/src/glossary.md",
    }
}
