//! Saving and loading a module's parameters in the safetensors format, under the names the
//! module lists, so the weights open in other frameworks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView, View};

use super::Module;
use crate::float::Float;
use crate::tape::{Param, Tape};
use crate::value::Value;

/// What went wrong saving or loading weights.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// The file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{}: not a valid safetensors file: {error}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        error: safetensors::SafeTensorError,
    },
    /// The model has a parameter the file lacks.
    #[error("{}: no tensor named {name:?}; the file has {found:?}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The parameter's name.
        name: String,
        /// The names in the file.
        found: Vec<String>,
    },
    /// The file has a tensor the model does not.
    #[error("{}: tensor {name:?} matches no parameter of the model", path.display())]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// The model lists two parameters or buffers under one name, so a file cannot tell them
    /// apart.
    #[error(
        "{}: the model names two tensors {name:?} (shapes {first:?} and {second:?}); expected \
         each parameter and buffer name once",
        path.display()
    )]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
        /// The shape of the first tensor under that name.
        first: Vec<usize>,
        /// The shape of the second.
        second: Vec<usize>,
    },
    /// A tensor's shape or element type differs from the parameter's.
    #[error("{}: tensor {name:?} is {found}, expected {expected}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The parameter's element type and shape.
        expected: String,
        /// The tensor's.
        found: String,
    },
}

struct Tensor<F> {
    shape: Vec<usize>,
    bytes: Vec<u8>,
    dtype: Dtype,
    _element: std::marker::PhantomData<F>,
}

impl<F> View for &Tensor<F> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn dtype<F: Float>() -> Dtype {
    if F::NAME == "f32" { Dtype::F32 } else { Dtype::F64 }
}

/// Writes every parameter and buffer of `module` (values on `tape`) to `path` as safetensors.
///
/// Fails with [`SaveError::Duplicate`], before the file is opened, if two of them share a
/// name.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{self, Activation, Init, Mlp, Module};
/// let tape = tapegrad::Tape::<f32>::new();
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let a = Mlp::new(&tape, &[3, 4, 2], Activation::Tanh, Init::Xavier, &mut rng);
/// let b = Mlp::new(&tape, &[3, 4, 2], Activation::Tanh, Init::Xavier, &mut rng);
/// let path = std::env::temp_dir().join("tapegrad-doc-save.safetensors");
/// nn::save(&path, &tape, &a).unwrap();
/// nn::load(&path, &tape, &b).unwrap();
/// for ((_, p), (_, q)) in a.parameters().into_iter().zip(b.parameters()) {
///     assert_eq!(tape.get(p).to_array(), tape.get(q).to_array());
/// }
/// ```
pub fn save<F: Float>(
    path: impl AsRef<Path>,
    tape: &Tape<F>,
    module: &impl Module<F>,
) -> Result<(), SaveError> {
    let path = path.as_ref();
    let tensors: Vec<(String, Tensor<F>)> = named_tensors(path, tape, module)?
        .into_iter()
        .map(|(name, p)| {
            let value = tape.get(p).value();
            let bytes = value.view().iter().flat_map(|&x| le_bytes(x)).collect();
            (
                name,
                Tensor {
                    shape: value.shape().to_vec(),
                    bytes,
                    dtype: dtype::<F>(),
                    _element: Default::default(),
                },
            )
        })
        .collect();
    let views = tensors.iter().map(|(name, t)| (name.as_str(), t));
    let bytes = safetensors::serialize(views, None)
        .map_err(|error| SaveError::Format { path: path.to_path_buf(), error })?;
    std::fs::write(path, bytes).map_err(|error| SaveError::Io { path: path.to_path_buf(), error })
}

/// Reads parameters saved by [`save`] (or by another framework, with the same names, shapes
/// and element type) from `path` into `module`'s parameters on `tape`. Nothing is changed
/// unless every parameter matches and the model's names are unique.
///
/// From PyTorch, `safetensors.torch.save_file(model.state_dict(), path)` gives the names and,
/// for convolutions and batch norm, the layouts; two differences: a [`Linear`](super::Linear)
/// weight is stored `(inputs, outputs)`, the transpose of `nn.Linear`'s, and BatchNorm's int64
/// `num_batches_tracked` counter has no counterpart (leave it out).
/// `benches/pytorch/make_conv_fixture.py` in the repository does both.
///
/// ```
/// use tapegrad::nn::{self, Linear, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let saved = Linear::from_arrays(&tape, ndarray::array![[1.0, 2.0]], ndarray::array![0.5, 0.0]);
/// let path = std::env::temp_dir().join("tapegrad-doc-load.safetensors");
/// nn::save(&path, &tape, &saved).unwrap();
/// let loaded = Linear::from_arrays(&tape, ndarray::array![[0.0, 0.0]], ndarray::array![0.0, 0.0]);
/// nn::load(&path, &tape, &loaded).unwrap();
/// assert_eq!(tape.get(loaded.weight).to_array(), ndarray::array![[1.0, 2.0]].into_dyn());
/// ```
pub fn load<F: Float>(
    path: impl AsRef<Path>,
    tape: &Tape<F>,
    module: &impl Module<F>,
) -> Result<(), SaveError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| SaveError::Io { path: path.to_path_buf(), error })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|error| SaveError::Format { path: path.to_path_buf(), error })?;
    let params = named_tensors(path, tape, module)?;
    let found: Vec<String> = file.names().into_iter().map(String::from).collect();
    if let Some(extra) = found.iter().find(|n| !params.iter().any(|(name, _)| name == *n)) {
        return Err(SaveError::Unexpected { path: path.to_path_buf(), name: extra.clone() });
    }
    let mut values = Vec::with_capacity(params.len());
    for (name, p) in &params {
        let view: TensorView<'_> = file.tensor(name).map_err(|_| SaveError::Missing {
            path: path.to_path_buf(),
            name: name.clone(),
            found: found.clone(),
        })?;
        let shape = tape.get(*p).shape();
        if view.dtype() != dtype::<F>() || view.shape() != shape.as_slice() {
            return Err(SaveError::Mismatch {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: format!("{} {:?}", F::NAME, shape.as_slice()),
                found: format!("{:?} {:?}", view.dtype(), view.shape()),
            });
        }
        let data: Vec<F> = view.data().chunks_exact(std::mem::size_of::<F>()).map(from_le_bytes).collect();
        let array =
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(view.shape()), data).expect("checked length");
        values.push((*p, Value::from(array)));
    }
    for (p, value) in values {
        tape.get(p).set_value(value);
    }
    Ok(())
}

/// The parameters and buffers of `module`, named; an error if a name repeats.
fn named_tensors<F: Float>(
    path: &Path,
    tape: &Tape<F>,
    module: &impl Module<F>,
) -> Result<Vec<(String, Param)>, SaveError> {
    let mut named = module.parameters();
    named.extend(module.buffers());
    let mut seen = HashMap::with_capacity(named.len());
    for &(ref name, p) in &named {
        if let Some(first) = seen.insert(name.as_str(), p) {
            return Err(SaveError::Duplicate {
                path: path.to_path_buf(),
                name: name.clone(),
                first: tape.get(first).shape().to_vec(),
                second: tape.get(p).shape().to_vec(),
            });
        }
    }
    Ok(named)
}

fn le_bytes<F: Float>(x: F) -> Vec<u8> {
    if F::NAME == "f32" {
        (x.as_f64() as f32).to_le_bytes().to_vec()
    } else {
        x.as_f64().to_le_bytes().to_vec()
    }
}

fn from_le_bytes<F: Float>(b: &[u8]) -> F {
    match b.len() {
        4 => F::of(f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64),
        _ => F::of(f64::from_le_bytes(b.try_into().expect("8 bytes"))),
    }
}
