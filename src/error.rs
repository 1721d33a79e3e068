//! The crate's error type. Every message names the operation, the shapes involved and what was
//! expected, so that it can be read without a debugger.

use std::fmt;

/// What went wrong, in words a user can act on.
///
/// Operators and methods on [`Var`](crate::Var) panic with this message (pointing at the caller's
/// line); the `try_` functions return it instead.
///
/// ```
/// use tapegrad::{Error, Tape};
/// let tape = Tape::<f64>::new();
/// let a = tape.var(ndarray::Array2::<f64>::zeros((2, 3)));
/// let err = a.try_matmul(a).unwrap_err();
/// assert!(matches!(err, Error::Shape { .. }));
/// assert!(err.to_string().starts_with("matmul: got shapes [2, 3] and [2, 3]"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operands' shapes do not fit the operation.
    #[error("{op}: got shapes {}, expected {expected}", Shapes(shapes))]
    Shape {
        /// The operation, such as `"matmul"`.
        op: &'static str,
        /// The shapes of the operands, in order.
        shapes: Vec<Vec<usize>>,
        /// What the operation needs.
        expected: String,
    },
    /// An argument other than a shape is out of range (an axis, a norm order, an index).
    #[error("{op}: {message}")]
    Argument {
        /// The operation.
        op: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
    /// `backward()` was called on a non-scalar output.
    #[error(
        "backward: the output has shape {shape:?}, expected a scalar (shape []); reduce it first \
         with .sum() or .mean(), or pass a seed gradient of shape {shape:?} to backward_with()"
    )]
    NotScalar {
        /// The output's shape.
        shape: Vec<usize>,
    },
    /// A `Var` whose node was freed, by [`Tape::reset`](crate::Tape::reset) or at the end of
    /// the [`Tape::scope`](crate::Tape::scope) that made it, was used.
    #[error(
        "{op}: {var} was freed (by Tape::reset(), or at the end of the Tape::scope that made it); \
         only parameters and buffers survive, so build this value again"
    )]
    Freed {
        /// Where it was used.
        op: &'static str,
        /// The handle, as `Var#index(vversion)`.
        var: String,
    },
    /// Anomaly mode ([`Tape::set_detect_anomaly`](crate::Tape::set_detect_anomaly)) found a NaN or
    /// an infinity made from finite values.
    #[error("{op}: {message}")]
    Anomaly {
        /// The op that produced it.
        op: &'static str,
        /// What it produced, from which shapes, and where its node was created.
        message: String,
    },
    /// A `Var` (or `Gradients`) of one tape was used with another tape.
    #[error("{op}: {what} belongs to a different Tape; values from two tapes cannot be mixed")]
    ForeignTape {
        /// Where it was used.
        op: &'static str,
        /// Which operand.
        what: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

struct Shapes<'a>(&'a [Vec<usize>]);

impl fmt::Display for Shapes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, shape) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == self.0.len() { " and " } else { ", " })?;
            }
            write!(f, "{shape:?}")?;
        }
        Ok(())
    }
}

impl Error {
    /// A shape error for `op` over `shapes`.
    pub fn shape(op: &'static str, shapes: &[&[usize]], expected: impl Into<String>) -> Self {
        Error::Shape { op, shapes: shapes.iter().map(|s| s.to_vec()).collect(), expected: expected.into() }
    }

    /// An argument error for `op`.
    pub fn argument(op: &'static str, message: impl Into<String>) -> Self {
        Error::Argument { op, message: message.into() }
    }
}

/// Unwraps at the caller's line, with the error's message: how every panicking method reports.
#[track_caller]
pub(crate) fn or_panic<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
