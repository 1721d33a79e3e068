//! A module's state: its parameters and buffers as a [`StateDict`] under the names the module
//! lists, and saved as safetensors, so the weights open in other frameworks.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::Module;
use crate::float::Float;
use crate::state::{Entry, Mismatch, StateDict, StateError};
use crate::tape::{Param, Tape};
use crate::value::Value;

/// Every parameter and buffer of `module` (values on `tape`), copied into a [`StateDict`]: to
/// copy weights into another model, onto another tape or thread, without a file.
///
/// Fails with [`StateError::Duplicate`] if two of them share a name.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{self, Activation, Init, Mlp};
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let (a, b) = (tapegrad::Tape::<f32>::new(), tapegrad::Tape::<f32>::new());
/// let first = Mlp::new(&a, &[3, 4, 2], Activation::Tanh, Init::Xavier, &mut rng);
/// let second = Mlp::new(&b, &[3, 4, 2], Activation::Tanh, Init::Xavier, &mut rng);
/// let state = nn::state_dict(&a, &first).unwrap();
/// assert_eq!(state.names(), ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
/// nn::load_state_dict(&b, &second, &state).unwrap();
/// assert_eq!(nn::state_dict(&b, &second).unwrap(), state);
/// ```
pub fn state_dict<F: Float>(tape: &Tape<F>, module: &impl Module<F>) -> Result<StateDict<F>, StateError> {
    let mut state = StateDict::new();
    for (name, p) in named_tensors(tape, module)? {
        state.insert(name, Entry::Tensor(tape.get(p).value().to_array()));
    }
    Ok(state)
}

/// Copies `state` into `module`'s parameters and buffers on `tape`. Every name, element type
/// and shape must match; otherwise the error lists each difference and nothing changes.
///
/// ```
/// use tapegrad::nn::{self, Linear};
/// use tapegrad::state::{Entry, Mismatch, StateError};
/// let tape = tapegrad::Tape::<f64>::new();
/// let layer = Linear::from_arrays(&tape, ndarray::array![[1.0, 2.0]], ndarray::array![0.5, 0.0]);
/// let mut state = nn::state_dict(&tape, &layer).unwrap();
/// state.insert("weight", Entry::Tensor(ndarray::Array2::zeros((2, 1)).into_dyn()));
/// state.remove("bias");
/// let Err(StateError::Mismatch { mismatches, .. }) = nn::load_state_dict(&tape, &layer, &state) else {
///     panic!("a wrong shape and a missing bias")
/// };
/// assert_eq!(mismatches.len(), 2, "{mismatches:?}");
/// assert_eq!(tape.get(layer.weight).to_array(), ndarray::array![[1.0, 2.0]].into_dyn(), "unchanged");
/// ```
pub fn load_state_dict<F: Float>(
    tape: &Tape<F>,
    module: &impl Module<F>,
    state: &StateDict<F>,
) -> Result<(), StateError> {
    apply(tape, module, state, Vec::new())
}

/// Checks `state` against `module`, adding to the mismatches a file reader found, then copies it.
fn apply<F: Float>(
    tape: &Tape<F>,
    module: &impl Module<F>,
    state: &StateDict<F>,
    mut mismatches: Vec<Mismatch>,
) -> Result<(), StateError> {
    let foreign: Vec<String> = mismatches.iter().map(|m| m.name().to_string()).collect();
    let found = state_mismatches(tape, module, state)?;
    mismatches.extend(found.into_iter().filter(|m| !foreign.iter().any(|n| n == m.name())));
    if !mismatches.is_empty() {
        return Err(StateError::Mismatch { file: None, mismatches });
    }
    for (name, p) in named_tensors(tape, module)? {
        let array = state.tensor(&name).expect("checked").clone();
        tape.get(p).set_value(Value::from(array));
    }
    Ok(())
}

/// Every way `state` does not fit `module`'s parameters and buffers (an error if the module
/// repeats a name).
pub(crate) fn state_mismatches<F: Float>(
    tape: &Tape<F>,
    module: &impl Module<F>,
    state: &StateDict<F>,
) -> Result<Vec<Mismatch>, StateError> {
    let expected: Vec<(String, String)> = named_tensors(tape, module)?
        .into_iter()
        .map(|(name, p)| (name, format!("{} {:?}", F::NAME, tape.get(p).shape().as_slice())))
        .collect();
    Ok(state.mismatches(expected.iter().map(|(n, d)| (n.as_str(), d.clone()))))
}

/// Writes every parameter and buffer of `module` (values on `tape`) to `path` as safetensors.
///
/// Fails with [`StateError::Duplicate`], before the file is opened, if two of them share a
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
) -> Result<(), StateError> {
    let path = path.as_ref();
    state_dict(tape, module).map_err(|e| e.in_file(path))?.save(path, &BTreeMap::new())
}

/// Reads parameters saved by [`save`] (or by another framework, with the same names, shapes
/// and element type) from `path` into `module`'s parameters on `tape`. Nothing is changed
/// unless every parameter matches and the model's names are unique; the error lists every
/// missing, unexpected or misshapen tensor.
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
) -> Result<(), StateError> {
    let path = path.as_ref();
    let (state, _, foreign) = StateDict::<F>::read(path)?;
    apply(tape, module, &state, foreign).map_err(|e| e.in_file(path))
}

/// The parameters and buffers of `module`, named; an error if a name repeats.
fn named_tensors<F: Float>(
    tape: &Tape<F>,
    module: &impl Module<F>,
) -> Result<Vec<(String, Param)>, StateError> {
    let mut named = module.parameters();
    named.extend(module.buffers());
    let mut seen = HashMap::with_capacity(named.len());
    for &(ref name, p) in &named {
        if let Some(first) = seen.insert(name.as_str(), p) {
            return Err(StateError::Duplicate {
                file: None,
                name: name.clone(),
                first: tape.get(first).shape().to_vec(),
                second: tape.get(p).shape().to_vec(),
            });
        }
    }
    Ok(named)
}
