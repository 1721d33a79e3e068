//! Shuffled mini-batches and train/test splits.
//!
//! [`DataLoader`] borrows a feature array (first axis = samples) and copies
//! its labels, then yields `(features, labels)` mini-batches per epoch:
//!
//! ```
//! use tapegrad::data::{DataLoader, Mnist};
//! let mnist = Mnist::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))?;
//! let loader = DataLoader::new(&mnist.train_images, &mnist.train_labels, 100)?
//!     .normalize() // u8 pixels -> [0, 1]
//!     .flatten() // (n, 28, 28) -> (n, 784)
//!     .seed(42)
//!     .one_hot(10)?;
//! assert_eq!(loader.len(), 80);
//! for epoch in 0..2 {
//!     for (x, y) in loader.epoch::<f32>(epoch) {
//!         assert_eq!(x.dim(), (100, 784));
//!         assert_eq!(y.dim(), (100, 10));
//!     }
//! }
//! # Ok::<(), tapegrad::data::DataError>(())
//! ```
//!
//! Shuffling is reproducible: epoch `e` of a loader with seed `s` always
//! visits the samples in the same order, and different epochs use different
//! orders.
//!
//! The loader keeps no order between epochs: each epoch's order is derived from the seed and
//! the epoch alone. A [`Targets`] type ([`ClassIndices`], [`OneHot`] or [`Values`]) chooses how
//! a batch presents its targets, and [`train_test_split`] partitions sample indices.

mod split;
mod targets;

use std::marker::PhantomData;

use ndarray::{Array, ArrayD, ArrayViewD, AsArray, Axis, Dimension, Ix2, IxDyn, RemoveAxis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

pub use self::split::train_test_split;
pub use self::targets::{ClassIndices, Feature, OneHot, Targets, Values};
use crate::data::DataError;
use crate::float::Float;

/// Iterates over shuffled mini-batches of a labelled data set.
///
/// `T` is the stored feature type, `D` the dimension of the feature batches
/// and `Y` selects the label format ([`ClassIndices`] or [`OneHot`]).
/// Construct with [`DataLoader::new`], configure with the builder methods,
/// then iterate with [`DataLoader::epoch`].
#[derive(Debug, Clone)]
pub struct DataLoader<'a, T, D: Dimension = IxDyn, Y = ClassIndices> {
    features: ArrayViewD<'a, T>,
    labels: Vec<usize>,
    /// Float targets, first axis = samples ([`Values`]); empty otherwise.
    values: ArrayD<f64>,
    out_dim: D,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    scale: f64,
    num_classes: usize,
    targets: PhantomData<Y>,
}

impl<'a, T: Feature, D: RemoveAxis> DataLoader<'a, T, D, ClassIndices> {
    /// A loader over `features` (first axis = samples) and one label per
    /// sample, yielding batches of `batch_size`.
    ///
    /// Defaults: shuffled with seed 0, the last partial batch kept, no
    /// scaling, no flattening, labels as class indices. Fails if the sample
    /// counts differ, `batch_size` is 0 or `features` is zero-dimensional.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::data::DataLoader;
    /// let x = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
    /// let loader = DataLoader::new(&x, &[0u8, 1, 0], 2)?.shuffle(false);
    /// let batches: Vec<_> = loader.epoch::<f64>(0).collect();
    /// assert_eq!(batches[0].0, array![[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(batches[1].1.to_vec(), [0]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn new<'b, L>(
        features: impl AsArray<'a, T, D>,
        labels: impl AsArray<'b, L>,
        batch_size: usize,
    ) -> Result<Self, DataError>
    where
        T: 'a,
        L: Copy + Into<usize> + 'b,
    {
        let features = features.into();
        let labels: Vec<usize> = labels.into().iter().map(|&l| l.into()).collect();
        if batch_size == 0 {
            return Err(DataError::InvalidArgument("batch size must be at least 1, got 0".into()));
        }
        if features.ndim() == 0 {
            return Err(DataError::InvalidArgument(
                "features must have at least one axis (samples), got a 0-dimensional array".into(),
            ));
        }
        if features.len_of(Axis(0)) != labels.len() {
            return Err(DataError::CountMismatch {
                what: "number of feature rows vs labels".into(),
                expected: labels.len(),
                found: features.len_of(Axis(0)),
            });
        }
        Ok(DataLoader {
            out_dim: features.raw_dim(),
            features: features.into_dyn(),
            num_classes: labels.iter().max().map_or(0, |m| m + 1),
            labels,
            values: ArrayD::zeros(IxDyn(&[0])),
            batch_size,
            shuffle: true,
            seed: 0,
            drop_last: false,
            scale: 1.0,
            targets: PhantomData,
        })
    }
}

impl<'a, T: Feature, D: RemoveAxis> DataLoader<'a, T, D, Values> {
    /// A loader over `features` and float `targets` (both with samples on the first axis; the
    /// targets of any shape after it), yielding `(features, targets)` batches: regression.
    /// The same defaults and errors as [`DataLoader::new`].
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::data::DataLoader;
    /// let x = array![[1.0], [2.0], [3.0]];
    /// let y = array![[2.5, 0.0], [4.5, 1.0], [6.5, 2.0]];
    /// let loader = DataLoader::regression(&x, &y, 2)?.shuffle(false);
    /// let (xb, yb) = loader.epoch::<f32>(0).next().unwrap();
    /// assert_eq!(xb, array![[1.0f32], [2.0]]);
    /// assert_eq!(yb, array![[2.5f32, 0.0], [4.5, 1.0]].into_dyn());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn regression<'b, U: Feature + 'b, E: Dimension>(
        features: impl AsArray<'a, T, D>,
        targets: impl AsArray<'b, U, E>,
        batch_size: usize,
    ) -> Result<Self, DataError>
    where
        T: 'a,
    {
        let targets = targets.into();
        if targets.ndim() == 0 {
            return Err(DataError::InvalidArgument(
                "targets must have at least one axis (samples), got a 0-dimensional array".into(),
            ));
        }
        let (features, n) = (features.into(), targets.len_of(Axis(0)));
        if features.ndim() > 0 && features.len_of(Axis(0)) != n {
            return Err(DataError::CountMismatch {
                what: "number of feature rows vs target rows".into(),
                expected: n,
                found: features.len_of(Axis(0)),
            });
        }
        let loader = DataLoader::new(features, &vec![0usize; n], batch_size)?;
        Ok(DataLoader {
            features: loader.features,
            labels: loader.labels,
            values: targets.mapv(Feature::to_f64).into_dyn(),
            out_dim: loader.out_dim,
            batch_size: loader.batch_size,
            shuffle: loader.shuffle,
            seed: loader.seed,
            drop_last: loader.drop_last,
            scale: loader.scale,
            num_classes: 0,
            targets: PhantomData,
        })
    }
}

impl<'a, T: Feature, D: RemoveAxis, Y: Targets> DataLoader<'a, T, D, Y> {
    /// Whether to shuffle each epoch (default `true`).
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..5u8);
    /// let loader = DataLoader::new(&x, &x, 5)?.shuffle(false);
    /// let (_, y) = loader.epoch::<f32>(3).next().unwrap();
    /// assert_eq!(y.to_vec(), [0, 1, 2, 3, 4]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// The seed from which every epoch's order is derived (default 0).
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..50u8);
    /// let order = |seed| DataLoader::new(&x, &x, 50).unwrap().seed(seed).epoch::<f32>(0).next().unwrap().1;
    /// assert_eq!(order(1), order(1));
    /// assert_ne!(order(1), order(2));
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether to drop a final batch smaller than the batch size (default
    /// `false`).
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..10u8);
    /// assert_eq!(DataLoader::new(&x, &x, 4)?.len(), 3);
    /// assert_eq!(DataLoader::new(&x, &x, 4)?.drop_last(true).len(), 2);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Yields features flattened to `(batch, features)`, e.g. MNIST images
    /// `(n, 28, 28)` as `(n, 784)`.
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array3::<u8>::zeros((6, 2, 3));
    /// let loader = DataLoader::new(&x, &[0u8; 6], 4)?.flatten();
    /// let (x, _) = loader.epoch::<f64>(0).next().unwrap();
    /// assert_eq!(x.dim(), (4, 6));
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn flatten(self) -> DataLoader<'a, T, Ix2, Y> {
        let n = self.features.len_of(Axis(0));
        let row = self.features.shape()[1..].iter().product();
        DataLoader {
            features: self.features,
            labels: self.labels,
            values: self.values,
            out_dim: Ix2(n, row),
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            seed: self.seed,
            drop_last: self.drop_last,
            scale: self.scale,
            num_classes: self.num_classes,
            targets: PhantomData,
        }
    }

    /// Yields labels one-hot encoded as `(batch, num_classes)` arrays.
    ///
    /// Fails with [`DataError::InvalidLabel`] if a label is `>= num_classes`.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::data::DataLoader;
    /// let x = array![[0.0], [1.0]];
    /// let loader = DataLoader::new(&x, &[2usize, 0], 2)?.shuffle(false).one_hot(3)?;
    /// let (_, y) = loader.epoch::<f32>(0).next().unwrap();
    /// assert_eq!(y, array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]);
    /// assert!(DataLoader::new(&x, &[2usize, 0], 2)?.one_hot(2).is_err());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn one_hot(self, num_classes: usize) -> Result<DataLoader<'a, T, D, OneHot>, DataError> {
        if let Some((index, &label)) = self.labels.iter().enumerate().find(|(_, l)| **l >= num_classes) {
            return Err(DataError::InvalidLabel { what: "one-hot labels".into(), index, label, num_classes });
        }
        Ok(DataLoader {
            features: self.features,
            labels: self.labels,
            values: self.values,
            out_dim: self.out_dim,
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            seed: self.seed,
            drop_last: self.drop_last,
            scale: self.scale,
            num_classes,
            targets: PhantomData,
        })
    }

    /// Number of batches per epoch.
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..10u8);
    /// assert_eq!(DataLoader::new(&x, &x, 3)?.len(), 4);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn len(&self) -> usize {
        let n = self.labels.len();
        if self.drop_last { n / self.batch_size } else { n.div_ceil(self.batch_size) }
    }

    /// Whether an epoch yields no batches.
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..3u8);
    /// assert!(DataLoader::new(&x, &x, 4)?.drop_last(true).is_empty());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of samples.
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..3u8);
    /// assert_eq!(DataLoader::new(&x, &x, 2)?.num_samples(), 3);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn num_samples(&self) -> usize {
        self.labels.len()
    }

    /// The batch size.
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..3u8);
    /// assert_eq!(DataLoader::new(&x, &x, 2)?.batch_size(), 2);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The sample order of epoch `epoch`: a permutation of `0..num_samples()`
    /// derived from the seed and the epoch, or the identity without
    /// shuffling.
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array1::from_iter(0..100u8);
    /// let loader = DataLoader::new(&x, &x, 10)?.seed(5);
    /// assert_eq!(loader.order(0), loader.order(0));
    /// assert_ne!(loader.order(0), loader.order(1));
    /// let mut sorted = loader.order(1);
    /// sorted.sort();
    /// assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        if self.shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(splitmix64(self.seed ^ splitmix64(epoch))));
        }
        order
    }

    /// The mini-batches of epoch `epoch` as `(features, labels)` in `F`
    /// (`f32` or `f64`).
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::Array2::<f64>::ones((10, 3));
    /// let loader = DataLoader::new(&x, &[1u8; 10], 4)?;
    /// let sizes: Vec<usize> = loader.epoch::<f32>(0).map(|(x, y)| { assert_eq!(x.nrows(), y.len()); y.len() }).collect();
    /// assert_eq!(sizes, [4, 4, 2]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn epoch<F: Float>(&self, epoch: u64) -> Epoch<'_, 'a, T, D, Y, F> {
        Epoch { loader: self, order: self.order(epoch), pos: 0, real: PhantomData }
    }
}

impl<D: RemoveAxis, Y: Targets> DataLoader<'_, u8, D, Y> {
    /// Scales `u8` pixels from `0..=255` to `[0, 1]`.
    ///
    /// ```
    /// use tapegrad::data::DataLoader;
    /// let x = ndarray::array![[0u8, 51, 255]];
    /// let loader = DataLoader::new(&x, &[0u8], 1)?.normalize();
    /// let (x, _) = loader.epoch::<f64>(0).next().unwrap();
    /// assert_eq!(x, ndarray::array![[0.0, 0.2, 1.0]]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn normalize(mut self) -> Self {
        self.scale = 1.0 / 255.0;
        self
    }
}

/// The mini-batches of one epoch; see [`DataLoader::epoch`].
#[derive(Debug)]
pub struct Epoch<'l, 'a, T, D: Dimension, Y, F> {
    loader: &'l DataLoader<'a, T, D, Y>,
    order: Vec<usize>,
    pos: usize,
    real: PhantomData<F>,
}

impl<T: Feature, D: RemoveAxis, Y: Targets, F: Float> Iterator for Epoch<'_, '_, T, D, Y, F> {
    type Item = (Array<F, D>, Y::Batch<F>);

    fn next(&mut self) -> Option<Self::Item> {
        let l = self.loader;
        let remaining = self.order.len() - self.pos;
        if remaining == 0 || (l.drop_last && remaining < l.batch_size) {
            return None;
        }
        let indices = &self.order[self.pos..self.pos + remaining.min(l.batch_size)];
        self.pos += indices.len();
        let mut dim = l.out_dim.clone();
        dim[0] = indices.len();
        let mut x = Array::from_elem(dim, F::zero());
        for (mut row, &i) in x.outer_iter_mut().zip(indices) {
            for (out, &v) in row.iter_mut().zip(l.features.index_axis(Axis(0), i)) {
                *out = F::of(v.to_f64() * l.scale);
            }
        }
        Some((x, Y::batch(&l.labels, &l.values, indices, l.num_classes)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (remaining, bs) = (self.order.len() - self.pos, self.loader.batch_size);
        let n = if self.loader.drop_last { remaining / bs } else { remaining.div_ceil(bs) };
        (n, Some(n))
    }
}

impl<T: Feature, D: RemoveAxis, Y: Targets, F: Float> ExactSizeIterator for Epoch<'_, '_, T, D, Y, F> {}

/// The SplitMix64 finaliser, used to derive independent per-epoch seeds.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array3, array};
    use proptest::prelude::*;

    use super::*;
    use crate::data::Mnist;

    #[test]
    fn every_sample_once_per_epoch_in_a_new_order() {
        let x = Array1::from_iter(0..103u16);
        let loader = DataLoader::new(&x, &x, 10).unwrap().seed(9);
        assert_eq!(loader.len(), 11);
        let mut seen = Vec::new();
        for (xb, yb) in loader.epoch::<f64>(0) {
            // Features and labels stay paired.
            assert_eq!(xb.to_vec(), yb.iter().map(|&y| y as f64).collect::<Vec<_>>());
            seen.extend(yb);
        }
        assert_ne!(seen, (0..103).collect::<Vec<_>>());
        let first = seen.clone();
        seen.sort();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
        let again: Vec<usize> = loader.epoch::<f32>(0).flat_map(|(_, y)| y).collect();
        assert_eq!(again, first, "same seed and epoch: same order");
        let next: Vec<usize> = loader.epoch::<f32>(1).flat_map(|(_, y)| y).collect();
        assert_ne!(next, first, "a new shuffle each epoch");
    }

    #[test]
    fn drop_last_and_exact_size() {
        let x = Array1::from_iter(0..10u8);
        let keep = DataLoader::new(&x, &x, 4).unwrap();
        let sizes: Vec<usize> = keep.epoch::<f32>(0).map(|(x, _)| x.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let drop = keep.clone().drop_last(true);
        let mut it = drop.epoch::<f32>(0);
        assert_eq!(it.len(), 2);
        it.next();
        assert_eq!(it.len(), 1);
        assert_eq!(it.map(|(x, _)| x.len()).collect::<Vec<_>>(), [4]);
        assert_eq!(DataLoader::new(&x, &x, 10).unwrap().drop_last(true).len(), 1);
    }

    #[test]
    fn mnist_batches_are_normalised_flat_and_one_hot() {
        let m = Mnist::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")).unwrap();
        let loader =
            DataLoader::new(&m.test_images, &m.test_labels, 256).unwrap().normalize().flatten().seed(3);
        assert_eq!(loader.len(), 8);
        let mut total = 0.0;
        for (x, y) in loader.epoch::<f32>(0) {
            assert_eq!(x.ncols(), 784);
            assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
            total += x.iter().map(|&v| v as f64).sum::<f64>();
            assert!(y.iter().all(|&l| l <= 9));
        }
        let expect = m.test_images.iter().map(|&p| p as f64 / 255.0).sum::<f64>();
        assert!((total - expect).abs() / expect < 1e-6, "{total} vs {expect}");

        // Unshuffled, unflattened batch 0 is exactly the first images.
        let plain =
            DataLoader::new(&m.test_images, &m.test_labels, 32).unwrap().shuffle(false).one_hot(10).unwrap();
        let (x, y): (Array3<f64>, Array2<f64>) = plain.epoch(0).next().unwrap();
        assert_eq!(x, m.test_images.slice_axis(ndarray::Axis(0), ndarray::Slice::from(..32)).mapv(f64::from));
        assert_eq!(y.sum_axis(Axis(1)), Array1::<f64>::ones(32));
        for (row, &label) in y.outer_iter().zip(&m.test_labels) {
            assert_eq!(row[usize::from(label)], 1.0);
        }
    }

    #[test]
    fn dynamic_dimension_input() {
        let x = Array3::from_shape_fn((5, 2, 2), |(i, j, k)| (i * 4 + j * 2 + k) as f64).into_dyn();
        let loader = DataLoader::new(&x, &[0u8; 5], 2).unwrap().shuffle(false);
        let (b, _) = loader.epoch::<f64>(0).nth(2).unwrap();
        assert_eq!(b.shape(), &[1, 2, 2]);
        assert_eq!(b.into_raw_vec_and_offset().0, [16.0, 17.0, 18.0, 19.0]);
    }

    #[test]
    fn non_contiguous_views_keep_logical_order() {
        let x = array![[1.0, 2.0], [3.0, 4.0]];
        let t = x.t();
        let loader = DataLoader::new(t, &[0u8, 1], 2).unwrap().shuffle(false).flatten();
        let (b, _) = loader.epoch::<f64>(0).next().unwrap();
        assert_eq!(b, array![[1.0, 3.0], [2.0, 4.0]]);
    }

    #[test]
    fn invalid_arguments() {
        let x = array![[1.0], [2.0]];
        assert!(matches!(
            DataLoader::new(&x, &[0u8], 1),
            Err(DataError::CountMismatch { expected: 1, found: 2, .. })
        ));
        assert!(matches!(DataLoader::new(&x, &[0u8, 1], 0), Err(DataError::InvalidArgument(_))));
        let err = DataLoader::new(&x, &[0u8, 7], 1).unwrap().one_hot(5).unwrap_err();
        assert!(matches!(err, DataError::InvalidLabel { index: 1, label: 7, num_classes: 5, .. }), "{err}");
    }

    proptest! {
        #[test]
        fn batches_cover_the_data(n in 1usize..60, bs in 1usize..20, drop: bool, seed: u64, epoch: u64) {
            let x = Array1::from_iter(0..n as u32);
            let loader = DataLoader::new(&x, &x.mapv(|v| v as u16), bs).unwrap().drop_last(drop).seed(seed);
            let batches: Vec<_> = loader.epoch::<f64>(epoch).collect();
            prop_assert_eq!(batches.len(), loader.len());
            let seen: usize = batches.iter().map(|(x, _)| x.len()).sum();
            prop_assert_eq!(seen, if drop { n - n % bs } else { n });
            prop_assert!(batches.iter().all(|(x, y)| x.len() <= bs && x.len() == y.len()));
        }
    }

    /// Float targets stay paired with their features through shuffling, keep their own shape
    /// after the sample axis, and a count mismatch names the targets.
    #[test]
    fn regression_targets_follow_their_features() {
        let x = Array1::from_iter((0..23).map(|i| i as f64)).into_shape_with_order((23, 1)).unwrap();
        let y = ndarray::Array3::from_shape_fn((23, 2, 2), |(i, j, k)| (10 * i + 2 * j + k) as f64);
        let loader = DataLoader::regression(&x, &y, 5).unwrap().seed(9);
        let mut seen = 0;
        for (xb, yb) in loader.epoch::<f64>(1) {
            assert_eq!(&yb.shape()[1..], [2, 2]);
            for (row, targets) in xb.outer_iter().zip(yb.outer_iter()) {
                let i = row[0];
                assert_eq!(
                    targets.iter().copied().collect::<Vec<_>>(),
                    [10.0 * i, 10.0 * i + 1.0, 10.0 * i + 2.0, 10.0 * i + 3.0]
                );
                seen += 1;
            }
        }
        assert_eq!(seen, 23);
        let short = ndarray::Array2::<f32>::zeros((22, 1));
        let err = DataLoader::regression(&x, &short, 5).unwrap_err();
        assert!(err.to_string().contains("number of feature rows vs target rows"), "{err}");
    }
}
