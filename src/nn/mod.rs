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
use crate::tape::{Param, Tape, Var};

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

/// The parameters of `module` split for weight decay, as usually done: `(decay, no_decay)`,
/// where `decay` holds the weights of two or more dimensions (linear, convolution, embedding,
/// recurrent) and `no_decay` the biases and normalisation parameters (one dimension or none).
/// Each parameter comes once, as in [`params`].
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{self, Activation, Init, Mlp};
/// let tape = tapegrad::Tape::<f32>::new();
/// let mlp = Mlp::new(&tape, &[3, 4, 2], Activation::Relu, Init::He, &mut rand::rngs::StdRng::seed_from_u64(0));
/// let (decay, no_decay) = nn::decay_split(&tape, &mlp);
/// assert_eq!((decay.len(), no_decay.len()), (2, 2));
/// assert_eq!(tape.get(no_decay[0]).shape().as_slice(), [4]);
/// ```
pub fn decay_split<F: Float>(tape: &Tape<F>, module: &impl Module<F>) -> (Vec<Param>, Vec<Param>) {
    params(module).into_iter().partition(|&p| tape.get(p).shape().len() >= 2)
}

/// A table of `module`'s parameters and buffers: name, shape and number of values, with the
/// totals, as PyTorch users print with `torchinfo`. Its `Display` is the table.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{self, Activation, Init, Mlp};
/// let tape = tapegrad::Tape::<f32>::new();
/// let mlp = Mlp::new(&tape, &[784, 100, 10], Activation::Relu, Init::He, &mut rand::rngs::StdRng::seed_from_u64(0));
/// let summary = nn::summary(&tape, &mlp);
/// assert_eq!(summary.parameters, 784 * 100 + 100 + 100 * 10 + 10);
/// let table = summary.to_string();
/// assert!(table.contains("fc1.weight"));
/// assert!(table.contains("[784, 100]"));
/// assert!(table.ends_with("79,510 parameters, 0 buffer values\n"), "{table}");
/// ```
pub fn summary<F: Float>(tape: &Tape<F>, module: &impl Module<F>) -> Summary {
    let row = |(name, p): (String, Param), kind: &'static str| {
        let shape = tape.get(p).shape().to_vec();
        let count = shape.iter().product();
        SummaryRow { name, kind, shape, count }
    };
    let mut seen = HashSet::new();
    let params: Vec<SummaryRow> = module
        .parameters()
        .into_iter()
        .filter(|(_, p)| seen.insert(*p))
        .map(|named| row(named, "parameter"))
        .collect();
    let buffers: Vec<SummaryRow> = module.buffers().into_iter().map(|named| row(named, "buffer")).collect();
    let parameters = params.iter().map(|r| r.count).sum();
    let buffer_values = buffers.iter().map(|r| r.count).sum();
    Summary { rows: params.into_iter().chain(buffers).collect(), parameters, buffer_values }
}

/// What [`summary`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// One row per parameter (each once) and buffer, in the module's order.
    pub rows: Vec<SummaryRow>,
    /// The number of trained values.
    pub parameters: usize,
    /// The number of buffer values (batch-norm statistics).
    pub buffer_values: usize,
}

/// One row of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// The name, as in the saved weights.
    pub name: String,
    /// `"parameter"` or `"buffer"`.
    pub kind: &'static str,
    /// The shape.
    pub shape: Vec<usize>,
    /// The number of values.
    pub count: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<String> = self.rows.iter().map(|r| format!("{:?}", r.shape)).collect();
        let name_width = self.rows.iter().map(|r| r.name.chars().count()).chain([4]).max().unwrap_or(4);
        let shape_width = shapes.iter().map(String::len).chain([5]).max().unwrap_or(5);
        let counts: Vec<String> = self.rows.iter().map(|r| thousands(r.count)).collect();
        let count_width = counts.iter().map(String::len).chain([6]).max().unwrap_or(6);
        let head = ("name", "kind", "shape", "values");
        writeln!(
            f,
            "{:name_width$}  {:9}  {:shape_width$}  {:>count_width$}",
            head.0, head.1, head.2, head.3
        )?;
        for ((r, shape), count) in self.rows.iter().zip(&shapes).zip(&counts) {
            writeln!(
                f,
                "{:name_width$}  {:9}  {:shape_width$}  {count:>count_width$}",
                r.name, r.kind, shape
            )?;
        }
        writeln!(
            f,
            "{} parameters, {} buffer values",
            thousands(self.parameters),
            thousands(self.buffer_values)
        )
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
