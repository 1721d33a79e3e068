//! Neural-network building blocks on the ops: layers, initialisers, losses and metrics, and
//! saving weights.
//!
//! A [`Module`] owns its parameters as [`Param`] handles, persistent leaves on the tape it was
//! built on, lists them by name (`"fc1.weight"`, …) and builds its forward pass on that tape
//! each step. Parameters survive [`Tape::reset`]; after `backward`, each parameter's gradient is
//! `grads[param]`.
//!
//! ```
//! use rand::SeedableRng;
//! use tapegrad::nn::{self, Activation, Init, Mlp, Module};
//! use tapegrad::Tape;
//!
//! let tape = Tape::<f32>::new();
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let model = Mlp::new(&tape, &[4, 8, 3], Activation::Relu, Init::He, &mut rng);
//! let names: Vec<_> = model.parameters().into_iter().map(|(name, _)| name).collect();
//! assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
//!
//! let x = tape.constant(ndarray::Array2::<f32>::ones((5, 4)));
//! let loss = nn::softmax_cross_entropy(model.forward(x), &[0, 1, 2, 0, 1]);
//! let grads = loss.backward();
//! for (name, p) in model.parameters() {
//!     assert_eq!(grads[p].shape(), tape.get(p).shape().as_slice(), "{name}");
//! }
//! ```
//!
//! [`Param`]: crate::Param
//! [`Tape::reset`]: crate::Tape::reset

mod conv;
mod init;
mod layers;
mod loss;
mod recurrent;
pub(crate) mod save;

pub use crate::ops::nn::{SoftmaxCrossEntropy, softmax_cross_entropy, softmax_cross_entropy_with_targets};
pub use conv::{AdaptiveAvgPool2d, AvgPool2d, Conv2d, ConvTranspose2d, Convolution, Flatten, MaxPool2d};
pub use init::Init;
pub use layers::{
    Activation, BatchNorm, BatchNorm1d, BatchNorm2d, Dropout, Embedding, Linear, Mlp, Sequential,
};
pub use loss::{
    accuracy, binary_cross_entropy_with_logits, mean_absolute_error, mean_squared_error, predicted_classes,
    softmax_cross_entropy_ignoring, sum_squared_error,
};
pub use recurrent::{Cell, GRU, Gru, GruCell, LSTM, Lstm, LstmCell, RNN, Recurrent, Rnn, RnnCell, State};
pub use save::{load, load_state_dict, save, state_dict};

use std::collections::HashSet;

use crate::float::Float;
use crate::tape::{Param, Var};

/// A model or layer: parameters it owns, and a forward pass built on the tape of its input.
pub trait Module<F: Float> {
    /// The forward pass, recorded on `x`'s tape (the tape the module was built on).
    ///
    /// Panics, pointing at the caller's line, if `x` is on another tape than the module's
    /// parameters or its shape does not fit the module.
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F>;

    /// The parameters with their names, in a stable order. Containers prefix their children's
    /// names (`"fc1.weight"`).
    fn parameters(&self) -> Vec<(String, Param)>;

    /// State that is not trained but belongs to the model (batch-norm running statistics),
    /// named like the parameters; [`save`] and [`load`] carry it. The default has none.
    fn buffers(&self) -> Vec<(String, Param)> {
        Vec::new()
    }

    /// Switches between training and evaluation behaviour (dropout, batch statistics). The
    /// default does nothing.
    fn set_training(&mut self, _training: bool) {}
}

/// The parameters of `module`, without names: what optimizers take. A parameter the module
/// lists under several names (a layer used twice, tied weights) comes once, at its first place,
/// as in PyTorch's `parameters()`.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{params, Init, Linear, Module, Sequential};
/// let tape = tapegrad::Tape::<f64>::new();
/// let layer = Linear::new(&tape, 3, 3, Init::Xavier, &mut rand::rngs::StdRng::seed_from_u64(1));
/// assert_eq!(params(&layer).len(), 2);
/// let twice = Sequential::new().add("first", layer).add("again", layer);
/// assert_eq!((twice.parameters().len(), params(&twice).len()), (4, 2));
/// ```
pub fn params<F: Float>(module: &impl Module<F>) -> Vec<Param> {
    let mut seen = HashSet::new();
    module.parameters().into_iter().map(|(_, p)| p).filter(|&p| seen.insert(p)).collect()
}
