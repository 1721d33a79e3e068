//! The MNIST handwritten digits.
//!
//! [`Mnist::load`] accepts either the four standard files of the full data set
//! (60,000 training and 10,000 test digits) or the 10,000-digit sample shipped
//! with this repository under `data/mnist/`, which it splits 8,000 / 2,000.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array3, Axis, Ix1, Ix3, Slice};

use super::DataError;
use super::idx::read_idx;

/// Image height and width in pixels.
pub const SIDE: usize = 28;
/// Number of digit classes.
pub const NUM_CLASSES: usize = 10;

/// The standard file stems, in the order train images, train labels, test
/// images, test labels. Each may also carry a `.gz` suffix.
pub const STANDARD_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The sample file stems (images, labels). Each may also lack its `.gz` suffix.
pub const SAMPLE_FILES: [&str; 2] = ["mnist-10k-images-idx3-ubyte", "mnist-10k-labels-idx1-ubyte"];

/// The fraction of the pre-shuffled sample used for training (8,000 of 10,000).
pub const SAMPLE_TRAIN_FRACTION: f64 = 0.8;

/// MNIST images (`0` = background, `255` = ink) and their labels (`0..=9`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// Training images, shape `(n_train, 28, 28)`.
    pub train_images: Array3<u8>,
    /// Training labels, length `n_train`.
    pub train_labels: Array1<u8>,
    /// Test images, shape `(n_test, 28, 28)`.
    pub test_images: Array3<u8>,
    /// Test labels, length `n_test`.
    pub test_labels: Array1<u8>,
}

impl Mnist {
    /// Loads MNIST from `dir`.
    ///
    /// Uses the four [`STANDARD_FILES`] if all are present (each raw or
    /// `.gz`); otherwise the two [`SAMPLE_FILES`], whose first 80% become the
    /// training split and the rest the test split. Fails with
    /// [`DataError::MissingFiles`], listing every name tried, if neither set
    /// is complete.
    ///
    /// ```
    /// use tapegrad::data::Mnist;
    /// let mnist = Mnist::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))?;
    /// assert_eq!(mnist.train_images.shape(), &[8000, 28, 28]);
    /// assert_eq!(mnist.test_labels.len(), 2000);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist, DataError> {
        let dir = dir.as_ref();
        let find = |stem: &str, gz_first: bool| {
            let names = if gz_first {
                [format!("{stem}.gz"), stem.to_owned()]
            } else {
                [stem.to_owned(), format!("{stem}.gz")]
            };
            let found = names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
            (found, names)
        };
        let mut tried = Vec::new();
        let mut standard: Vec<PathBuf> = Vec::new();
        for stem in STANDARD_FILES {
            let (found, names) = find(stem, false);
            tried.extend(names);
            standard.extend(found);
        }
        if let [train_x, train_y, test_x, test_y] = standard.as_slice() {
            let (train_images, train_labels) = load_pair(train_x, train_y)?;
            let (test_images, test_labels) = load_pair(test_x, test_y)?;
            return Ok(Mnist { train_images, train_labels, test_images, test_labels });
        }
        let mut sample = Vec::new();
        for stem in SAMPLE_FILES {
            let (found, names) = find(stem, true);
            tried.extend(names);
            sample.extend(found);
        }
        if let [images, labels] = sample.as_slice() {
            let (images, labels) = load_pair(images, labels)?;
            return Ok(Mnist::split(images, labels, SAMPLE_TRAIN_FRACTION));
        }
        Err(DataError::MissingFiles { what: "complete MNIST file set".into(), dir: dir.to_path_buf(), tried })
    }

    /// Splits one set of images and labels into training (the first
    /// `round(n * train_fraction)`) and test (the rest), without shuffling.
    ///
    /// `train_fraction` is clamped to `[0, 1]`.
    ///
    /// ```
    /// use ndarray::{Array1, Array3};
    /// use tapegrad::data::Mnist;
    /// let m = Mnist::split(Array3::zeros((10, 28, 28)), Array1::from_elem(10, 3), 0.8);
    /// assert_eq!((m.train_labels.len(), m.test_labels.len()), (8, 2));
    /// ```
    pub fn split(images: Array3<u8>, labels: Array1<u8>, train_fraction: f64) -> Mnist {
        let n = images.len_of(Axis(0)).min(labels.len());
        let n_train = ((n as f64 * train_fraction.clamp(0.0, 1.0)).round() as usize).min(n);
        Mnist {
            train_images: images.slice_axis(Axis(0), Slice::from(..n_train)).to_owned(),
            train_labels: labels.slice_axis(Axis(0), Slice::from(..n_train)).to_owned(),
            test_images: images.slice_axis(Axis(0), Slice::from(n_train..n)).to_owned(),
            test_labels: labels.slice_axis(Axis(0), Slice::from(n_train..n)).to_owned(),
        }
    }
}

/// Reads an MNIST image file, checking that it holds `u8` images of 28x28.
///
/// ```
/// use tapegrad::data::mnist::load_images;
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist/mnist-10k-images-idx3-ubyte.gz");
/// let images = load_images(path)?;
/// assert_eq!(images.dim(), (10_000, 28, 28));
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn load_images(path: impl AsRef<Path>) -> Result<Array3<u8>, DataError> {
    let path = path.as_ref();
    let array = read_idx(path)?.into_u8().map_err(|e| e.in_file(path))?;
    let shape = array.shape().to_vec();
    match array.into_dimensionality::<Ix3>() {
        Ok(images) if images.shape()[1..] == [SIDE, SIDE] => Ok(images),
        _ => Err(DataError::Shape {
            what: "MNIST images".into(),
            expected: "[n, 28, 28]".into(),
            found: shape,
        }
        .in_file(path)),
    }
}

/// Reads an MNIST label file, checking that it holds `u8` labels in `0..=9`.
///
/// ```
/// use tapegrad::data::mnist::load_labels;
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist/mnist-10k-labels-idx1-ubyte.gz");
/// let labels = load_labels(path)?;
/// assert_eq!(labels.len(), 10_000);
/// assert!(labels.iter().all(|&l| l <= 9));
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn load_labels(path: impl AsRef<Path>) -> Result<Array1<u8>, DataError> {
    let path = path.as_ref();
    let array = read_idx(path)?.into_u8().map_err(|e| e.in_file(path))?;
    let shape = array.shape().to_vec();
    let labels = array.into_dimensionality::<Ix1>().map_err(|_| {
        DataError::Shape { what: "MNIST labels".into(), expected: "[n]".into(), found: shape }.in_file(path)
    })?;
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| usize::from(**l) >= NUM_CLASSES) {
        let what = "MNIST labels".into();
        return Err(DataError::InvalidLabel { what, index, label: label.into(), num_classes: NUM_CLASSES }
            .in_file(path));
    }
    Ok(labels)
}

/// Loads an image file and its label file and checks that their counts agree.
fn load_pair(images: &Path, labels: &Path) -> Result<(Array3<u8>, Array1<u8>), DataError> {
    let (x, y) = (load_images(images)?, load_labels(labels)?);
    if x.len_of(Axis(0)) != y.len() {
        return Err(DataError::CountMismatch {
            what: format!("number of images in {} vs labels in {}", images.display(), labels.display()),
            expected: y.len(),
            found: x.len_of(Axis(0)),
        });
    }
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::IdxArray;
    use ndarray::ArrayD;

    const SAMPLE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");

    fn counts<'a>(labels: impl IntoIterator<Item = &'a u8>) -> [usize; 10] {
        let mut c = [0; 10];
        labels.into_iter().for_each(|&l| c[usize::from(l)] += 1);
        c
    }

    /// A fresh temporary directory for one test.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tapegrad-mnist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_idx(path: &Path, shape: &[usize], fill: u8) {
        let a = IdxArray::U8(ArrayD::from_elem(shape, fill));
        std::fs::write(path, a.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn sample_splits_8000_2000_with_known_class_counts() {
        let m = Mnist::load(SAMPLE_DIR).unwrap();
        assert_eq!(m.train_images.dim(), (8000, 28, 28));
        assert_eq!(m.train_labels.len(), 8000);
        assert_eq!(m.test_images.dim(), (2000, 28, 28));
        assert_eq!(m.test_labels.len(), 2000);
        let all = counts(m.train_labels.iter().chain(&m.test_labels));
        assert_eq!(all, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
        // The sample is shuffled: every class appears in both splits.
        assert!(counts(&m.test_labels).iter().all(|&c| c > 100), "{:?}", counts(&m.test_labels));
        // Real pixel data: full range used, mostly background.
        let (min, max) = m.train_images.iter().fold((255, 0), |(lo, hi), &p| (p.min(lo), p.max(hi)));
        assert_eq!((min, max), (0, 255));
        let zeros = m.train_images.iter().filter(|&&p| p == 0).count() as f64 / m.train_images.len() as f64;
        assert!((0.7..0.9).contains(&zeros), "background fraction {zeros}");
        // Borders of MNIST digits are empty.
        assert!(m.test_images.index_axis(Axis(1), 0).iter().all(|&p| p == 0));
    }

    #[test]
    fn sample_split_is_a_prefix_and_suffix_of_the_file() {
        let m = Mnist::load(SAMPLE_DIR).unwrap();
        let labels = load_labels(format!("{SAMPLE_DIR}/mnist-10k-labels-idx1-ubyte.gz")).unwrap();
        assert_eq!(m.train_labels, labels.slice_axis(Axis(0), Slice::from(..8000)));
        assert_eq!(m.test_labels, labels.slice_axis(Axis(0), Slice::from(8000..)));
    }

    #[test]
    fn prefers_the_full_standard_files() {
        let dir = temp_dir("full");
        write_idx(&dir.join("train-images-idx3-ubyte"), &[3, 28, 28], 7);
        write_idx(&dir.join("train-labels-idx1-ubyte"), &[3], 1);
        write_idx(&dir.join("t10k-images-idx3-ubyte"), &[2, 28, 28], 9);
        // Gzipped variant of the fourth file.
        let raw = IdxArray::U8(ArrayD::from_elem(vec![2], 5)).to_bytes().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gz.finish().unwrap()).unwrap();
        let m = Mnist::load(&dir).unwrap();
        assert_eq!(m.train_images.dim(), (3, 28, 28));
        assert_eq!(m.train_labels.to_vec(), [1, 1, 1]);
        assert_eq!(m.test_images[[1, 27, 27]], 9);
        assert_eq!(m.test_labels.to_vec(), [5, 5]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_lists_every_name_tried() {
        let dir = temp_dir("empty");
        write_idx(&dir.join("train-images-idx3-ubyte"), &[1, 28, 28], 0); // incomplete set
        let err = Mnist::load(&dir).unwrap_err();
        let DataError::MissingFiles { tried, .. } = &err else { panic!("{err}") };
        assert_eq!(tried.len(), 12);
        let msg = err.to_string();
        for name in ["t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte", "mnist-10k-images-idx3-ubyte.gz"]
        {
            assert!(msg.contains(name), "{msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_bad_shapes_labels_and_counts() {
        let dir = temp_dir("bad");
        let (x, y) = (dir.join("mnist-10k-images-idx3-ubyte"), dir.join("mnist-10k-labels-idx1-ubyte"));
        write_idx(&x, &[4, 28, 27], 0);
        write_idx(&y, &[4], 3);
        let err = Mnist::load(&dir).unwrap_err();
        assert!(matches!(err.root(), DataError::Shape { found, .. } if found == &[4, 28, 27]), "{err}");
        assert!(err.to_string().contains("mnist-10k-images-idx3-ubyte"), "{err}");

        write_idx(&x, &[4, 28, 28], 0);
        write_idx(&y, &[5], 3);
        let err = Mnist::load(&dir).unwrap_err();
        assert!(matches!(err, DataError::CountMismatch { expected: 5, found: 4, .. }), "{err}");

        write_idx(&y, &[4], 10);
        let err = Mnist::load(&dir).unwrap_err();
        assert!(
            matches!(err.root(), DataError::InvalidLabel { index: 0, label: 10, num_classes: 10, .. }),
            "{err}"
        );

        let f32_labels = IdxArray::F32(ArrayD::zeros(vec![4])).to_bytes().unwrap();
        std::fs::write(&y, f32_labels).unwrap();
        let err = Mnist::load(&dir).unwrap_err();
        assert!(matches!(err.root(), DataError::WrongType { found: crate::data::IdxType::F32, .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
