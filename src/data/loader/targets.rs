//! What a [`DataLoader`](super::DataLoader) reads and yields: the feature element types
//! ([`Feature`]) and the target formats ([`ClassIndices`], [`OneHot`], [`Values`]).
//!
//! A target batch always has one entry (a label, a one-hot row or a row of values) per sample
//! of the feature batch, in the same order.

use ndarray::{Array2, ArrayD, Axis, IxDyn};

use crate::float::Float;

/// Element types a [`DataLoader`](super::DataLoader) can read features from.
pub trait Feature: Copy {
    /// The value as `f64` (exact for every implementing type but `f64`
    /// itself, which is returned unchanged).
    fn to_f64(self) -> f64;
}

macro_rules! feature {
    ($($t:ty),*) => {$(
        impl Feature for $t {
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
        }
    )*};
}
feature!(u8, i8, u16, i16, u32, i32, f32, f64);

/// How a [`DataLoader`](super::DataLoader) presents targets; see [`ClassIndices`], [`OneHot`] and [`Values`].
pub trait Targets {
    /// The target batch type.
    type Batch<F: Float>;
    /// The targets of the samples `indices`: class labels (validated to be `< num_classes`)
    /// or, for [`Values`], rows of `values`.
    fn batch<F: Float>(
        labels: &[usize],
        values: &ArrayD<f64>,
        indices: &[usize],
        num_classes: usize,
    ) -> Self::Batch<F>;
}

/// Labels as class indices: batches of `Vec<usize>` (the default), which the losses take as
/// slices: `nn::softmax_cross_entropy(logits, &y)`.
#[derive(Debug, Clone, Copy)]
pub struct ClassIndices;

/// Float targets (regression): batches of `ArrayD<F>`, the rows of the targets array given to
/// [`DataLoader::regression`](super::DataLoader::regression).
#[derive(Debug, Clone, Copy)]
pub struct Values;

impl Targets for Values {
    type Batch<F: Float> = ArrayD<F>;
    fn batch<F: Float>(_: &[usize], values: &ArrayD<f64>, indices: &[usize], _: usize) -> ArrayD<F> {
        let mut shape = values.shape().to_vec();
        shape[0] = indices.len();
        let mut y = ArrayD::from_elem(IxDyn(&shape), F::zero());
        for (mut row, &i) in y.outer_iter_mut().zip(indices) {
            row.iter_mut().zip(values.index_axis(Axis(0), i)).for_each(|(out, &v)| *out = F::of(v));
        }
        y
    }
}

/// One-hot labels: batches of `Array2<F>` of shape `(batch, num_classes)`.
#[derive(Debug, Clone, Copy)]
pub struct OneHot;

impl Targets for ClassIndices {
    type Batch<F: Float> = Vec<usize>;
    fn batch<F: Float>(labels: &[usize], _: &ArrayD<f64>, indices: &[usize], _: usize) -> Vec<usize> {
        indices.iter().map(|&i| labels[i]).collect()
    }
}

impl Targets for OneHot {
    type Batch<F: Float> = Array2<F>;
    fn batch<F: Float>(
        labels: &[usize],
        _: &ArrayD<f64>,
        indices: &[usize],
        num_classes: usize,
    ) -> Array2<F> {
        let mut y = Array2::from_elem((indices.len(), num_classes), F::zero());
        for (row, &i) in indices.iter().enumerate() {
            y[[row, labels[i]]] = F::one();
        }
        y
    }
}
