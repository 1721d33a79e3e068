//! Layers: [`Linear`], [`Activation`], [`Sequential`], the [`Mlp`] builder, [`Dropout`] and
//! batch normalisation ([`BatchNorm1d`], [`BatchNorm2d`]).

use std::cell::RefCell;
use std::marker::PhantomData;

use ndarray::{Array1, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::{Init, Module};
use crate::float::Float;
use crate::tape::{Param, Tape, Var};
use crate::value::Value;

/// An affine map `y = x·W + b`, with `W` of shape `(inputs, outputs)` (the textbook's layout:
/// a batch of row vectors times the weights).
#[derive(Debug, Clone, Copy)]
pub struct Linear<F> {
    /// `W`, shape `(inputs, outputs)`.
    pub weight: Param,
    /// `b`, shape `(outputs,)`.
    pub bias: Param,
    tape: u64,
    element: PhantomData<fn() -> F>,
}

impl<F: Float> Linear<F> {
    /// A layer with weights drawn by `init` and zero bias, on `tape`.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::nn::{Init, Linear, Module};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let layer = Linear::new(&tape, 3, 2, Init::Normal(0.01), &mut rand::rngs::StdRng::seed_from_u64(0));
    /// let y = layer.forward(tape.constant(ndarray::Array2::<f64>::ones((4, 3))));
    /// assert_eq!(y.shape().as_slice(), &[4, 2]);
    /// ```
    ///
    /// Panics, at the caller's line, if `init` is invalid (see [`Init::sample`]).
    #[track_caller]
    pub fn new(tape: &Tape<F>, inputs: usize, outputs: usize, init: Init, rng: &mut impl Rng) -> Self {
        let weight = tape.param(init.sample::<F>(&[inputs, outputs], rng));
        let bias = tape.param(ArrayD::<F>::zeros(IxDyn(&[outputs])));
        Linear { weight, bias, tape: tape.id(), element: PhantomData }
    }

    /// A layer with the given weights and bias (the textbook's fixed networks).
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::nn::{Linear, Module};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let layer = Linear::from_arrays(&tape, array![[1.0, 2.0]], array![0.5, 0.0]);
    /// assert_eq!(layer.forward(tape.constant(array![[3.0]])).to_array(), array![[3.5, 6.0]].into_dyn());
    /// ```
    ///
    /// Panics unless `weight` is `(inputs, outputs)` and `bias` is `(outputs,)`.
    #[track_caller]
    pub fn from_arrays(tape: &Tape<F>, weight: impl Into<Value<F>>, bias: impl Into<Value<F>>) -> Self {
        let (weight, bias) = (weight.into(), bias.into());
        let fits = weight.ndim() == 2 && bias.ndim() == 1 && weight.shape()[1] == bias.shape()[0];
        if !fits {
            let expected = "a weight of shape (inputs, outputs) and a bias of shape (outputs,)";
            panic!(
                "{}",
                crate::Error::shape("Linear::from_arrays", &[weight.shape(), bias.shape()], expected)
            );
        }
        Linear { weight: tape.param(weight), bias: tape.param(bias), tape: tape.id(), element: PhantomData }
    }
}

impl<F: Float> Module<F> for Linear<F> {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        check_tape("Linear", self.tape, x);
        let tape = x.tape();
        let (weight, bias) = (tape.get(self.weight), tape.get(self.bias));
        let (shape, inputs) = (x.shape(), weight.shape()[0]);
        if shape.last() != Some(&inputs) {
            let expected = format!("an input [..., inputs] with inputs = {inputs}");
            panic!("{}", crate::Error::shape("Linear", &[&shape], expected));
        }
        match x.ndim() {
            2 => x.affine(weight, bias),
            _ => x.matmul(weight) + bias,
        }
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        vec![("weight".into(), self.weight), ("bias".into(), self.bias)]
    }
}

/// An activation function, usable as a layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `1/(1 + e⁻ˣ)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `x` where positive, `slope·x` elsewhere.
    LeakyRelu(f64),
    /// Softmax along the last axis.
    Softmax,
    /// `x` unchanged.
    Identity,
    /// The perceptron's step: 1 where `x > 0`, else 0.
    Step,
}

impl Activation {
    /// Applies the activation.
    ///
    /// ```
    /// use tapegrad::nn::Activation;
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let x = tape.var(vec![-1.0, 2.0]);
    /// assert_eq!(Activation::Relu.apply(x).to_array().into_raw_vec_and_offset().0, vec![0.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn apply<'t, F: Float>(&self, x: Var<'t, F>) -> Var<'t, F> {
        match *self {
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => x.leaky_relu(F::of(slope)),
            Activation::Softmax => x.softmax(x.ndim().saturating_sub(1)),
            Activation::Identity => x,
            Activation::Step => x.step(),
        }
    }
}

impl<F: Float> Module<F> for Activation {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        self.apply(x)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}

/// Modules applied in order; parameter names are prefixed with each module's name.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{Activation, Init, Linear, Module, Sequential};
/// let tape = tapegrad::Tape::<f32>::new();
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = Sequential::new()
///     .add("hidden", Linear::new(&tape, 2, 4, Init::He, &mut rng))
///     .add("relu", Activation::Relu)
///     .add("out", Linear::new(&tape, 4, 1, Init::Xavier, &mut rng));
/// assert_eq!(model.parameters()[2].0, "out.weight");
/// ```
pub struct Sequential<F: Float> {
    layers: Vec<(String, Box<dyn Module<F>>)>,
}

impl<F: Float> Default for Sequential<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Float> Sequential<F> {
    /// An empty sequence.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a module under `name`, which prefixes its parameters' names (`"name.weight"`).
    ///
    /// Panics if `name` is empty, contains a `.`, or is already taken in this sequence (as
    /// PyTorch's `add_module` refuses them): the names must stay unique for [`save`](super::save)
    /// and [`load`](super::load).
    ///
    /// ```
    /// use tapegrad::nn::{Activation, Sequential};
    /// let model = Sequential::<f64>::new().add("relu", Activation::Relu);
    /// let again = std::panic::AssertUnwindSafe(|| model.add("relu", Activation::Tanh));
    /// let message = *std::panic::catch_unwind(again).err().unwrap().downcast::<String>().unwrap();
    /// assert!(message.starts_with("Sequential::add: the layer name \"relu\" is already taken"));
    /// ```
    #[track_caller]
    pub fn add(mut self, name: impl Into<String>, module: impl Module<F> + 'static) -> Self {
        let name = name.into();
        let problem = if name.is_empty() {
            Some("is empty")
        } else if name.contains('.') {
            Some("contains '.', which separates a layer's name from its parameters'")
        } else if self.layers.iter().any(|(taken, _)| *taken == name) {
            Some("is already taken")
        } else {
            None
        };
        if let Some(problem) = problem {
            let taken: Vec<&str> = self.layers.iter().map(|(taken, _)| taken.as_str()).collect();
            let message =
                format!("the layer name {name:?} {problem} (layers so far: {taken:?}); expected a new name");
            panic!("{}", crate::Error::argument("Sequential::add", message));
        }
        self.layers.push((name, Box::new(module)));
        self
    }
}

impl<F: Float> Module<F> for Sequential<F> {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        let mut y = x;
        for (_, layer) in &self.layers {
            y = layer.forward(y);
        }
        y
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        let mut named = Vec::new();
        for (name, layer) in &self.layers {
            named.extend(layer.parameters().into_iter().map(|(p, param)| (format!("{name}.{p}"), param)));
        }
        named
    }
    fn buffers(&self) -> Vec<(String, Param)> {
        let mut named = Vec::new();
        for (name, layer) in &self.layers {
            named.extend(layer.buffers().into_iter().map(|(b, buffer)| (format!("{name}.{b}"), buffer)));
        }
        named
    }
    fn set_training(&mut self, training: bool) {
        for (_, layer) in &mut self.layers {
            layer.set_training(training);
        }
    }
}

/// A multilayer perceptron: `Linear` layers `fc1`, `fc2`, … of the given sizes, with an
/// activation between them (none after the last, which gives logits).
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{Activation, Init, Mlp, Module};
/// let tape = tapegrad::Tape::<f32>::new();
/// // the textbook's TwoLayerNet: 784-50-10, sigmoid, weights N(0, 0.01²)
/// let net = Mlp::new(&tape, &[784, 50, 10], Activation::Sigmoid, Init::Normal(0.01), &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(net.layers().len(), 2);
/// let y = net.forward(tape.constant(ndarray::Array2::<f32>::zeros((3, 784))));
/// assert_eq!(y.shape().as_slice(), &[3, 10]);
/// ```
#[derive(Debug, Clone)]
pub struct Mlp<F> {
    layers: Vec<Linear<F>>,
    activation: Activation,
}

impl<F: Float> Mlp<F> {
    /// Builds the network on `tape`; `sizes` lists the widths from input to output.
    ///
    /// Panics, at the caller's line, if fewer than two sizes are given or `init` is invalid
    /// (see [`Init::sample`]).
    #[track_caller]
    pub fn new(
        tape: &Tape<F>,
        sizes: &[usize],
        activation: Activation,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        assert!(
            sizes.len() >= 2,
            "Mlp::new: got sizes {sizes:?}, expected at least an input and an output size"
        );
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        for fans in sizes.windows(2) {
            layers.push(Linear::new(tape, fans[0], fans[1], init, rng));
        }
        Mlp { layers, activation }
    }

    /// The `Linear` layers, first to last.
    pub fn layers(&self) -> &[Linear<F>] {
        &self.layers
    }
}

impl<F: Float> Module<F> for Mlp<F> {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        let (last, hidden) = self.layers.split_last().expect("Mlp::new makes at least one layer");
        let mut y = x;
        for layer in hidden {
            y = self.activation.apply(layer.forward(y));
        }
        last.forward(y)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        let named = |(i, layer): (usize, &Linear<F>)| {
            layer.parameters().into_iter().map(move |(p, param)| (format!("fc{}.{p}", i + 1), param))
        };
        self.layers.iter().enumerate().flat_map(named).collect()
    }
}

/// Zeroes each element with probability `p` while training, scaling the rest by `1/(1 − p)`;
/// the identity in evaluation mode.
///
/// ```
/// use tapegrad::nn::{Dropout, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let mut dropout = Dropout::new(0.5, 42);
/// let x = tape.var(ndarray::Array1::<f64>::ones(1000));
/// let y = dropout.forward(x).to_array();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// dropout.set_training(false);
/// assert_eq!(dropout.forward(x).to_array(), x.to_array());
/// ```
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    training: bool,
    rng: RefCell<StdRng>,
}

impl Dropout {
    /// Dropout with probability `p` (in `[0, 1)`), masks drawn from `seed`.
    ///
    /// Panics, at the caller's line, if `p` is outside `[0, 1)`.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Self {
        assert!((0.0..1.0).contains(&p), "Dropout::new: p = {p}, expected 0 ≤ p < 1");
        Dropout { p, training: true, rng: RefCell::new(StdRng::seed_from_u64(seed)) }
    }

    /// Switches between dropping (training) and the identity (evaluation).
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl<F: Float> Module<F> for Dropout {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        if !self.training || self.p == 0.0 {
            return x;
        }
        let keep = F::of(1.0 / (1.0 - self.p));
        let mut rng = self.rng.borrow_mut();
        let mask = ArrayD::from_shape_fn(IxDyn(&x.shape()), |_| {
            if rng.random::<f64>() < self.p { F::zero() } else { keep }
        });
        x * x.tape().constant(mask)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
    fn set_training(&mut self, training: bool) {
        Dropout::set_training(self, training);
    }
}

/// Batch normalisation per channel (axis 1): in training, each channel is standardised with
/// the mean and (biased) variance over the batch and, for images, every position, then scaled
/// by `weight` and shifted by `bias`; running averages of the statistics are kept for
/// evaluation mode, as buffers on the tape that [`save`](super::save) and [`load`](super::load)
/// carry. Use it as [`BatchNorm1d`] on `(batch, features)` and as [`BatchNorm2d`] on images
/// `[N, C, H, W]`; `SPATIAL` counts the axes after the channel axis.
///
/// Its forward panics unless the input has that shape, and in training unless each channel
/// has at least two values (PyTorch: "Expected more than 1 value per channel when training");
/// in evaluation mode any batch will do.
///
/// ```
/// use tapegrad::nn::{BatchNorm1d, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let mut bn = BatchNorm1d::new(&tape, 2);
/// let x = tape.var(ndarray::array![[1.0, 10.0], [3.0, 30.0]]);
/// let y = bn.forward(x).to_array();
/// assert!((y[[0, 0]] + 1.0).abs() < 1e-3 && (y[[1, 1]] - 1.0).abs() < 1e-3);
/// bn.set_training(false);
/// let running = tape.get(bn.running_mean).to_array();
/// assert!((running[[0]] - 0.2).abs() < 1e-12 && (running[[1]] - 2.0).abs() < 1e-12);
/// ```
#[derive(Debug)]
pub struct BatchNorm<F: Float, const SPATIAL: usize> {
    /// Scale, shape `(channels,)`, initially ones.
    pub weight: Param,
    /// Shift, shape `(channels,)`, initially zeros.
    pub bias: Param,
    /// The running mean used in evaluation mode (a buffer: no gradient).
    pub running_mean: Param,
    /// The running (unbiased) variance used in evaluation mode (a buffer: no gradient).
    pub running_var: Param,
    tape: u64,
    momentum: f64,
    eps: f64,
    training: bool,
    element: PhantomData<fn() -> F>,
}

/// Batch normalisation of `(batch, features)`: see [`BatchNorm`].
pub type BatchNorm1d<F> = BatchNorm<F, 0>;

/// Batch normalisation of images `[N, C, H, W]`, per channel over the batch and every
/// position (PyTorch's `nn.BatchNorm2d`): see [`BatchNorm`].
///
/// ```
/// use tapegrad::nn::{BatchNorm2d, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let bn = BatchNorm2d::new(&tape, 3);
/// let x = tape.var(ndarray::Array4::from_shape_fn((2, 3, 4, 5), |(n, c, h, w)| (n + 7 * c + h * w) as f64));
/// let y = bn.forward(x).to_array();
/// // every channel now has mean 0 and variance 1 (up to eps)
/// for c in 0..3 {
///     let channel = y.index_axis(ndarray::Axis(1), c);
///     assert!(channel.mean().unwrap().abs() < 1e-12);
///     assert!((channel.mapv(|v| v * v).mean().unwrap() - 1.0).abs() < 1e-4);
/// }
/// ```
pub type BatchNorm2d<F> = BatchNorm<F, 2>;

impl<F: Float, const SPATIAL: usize> BatchNorm<F, SPATIAL> {
    /// A layer for `channels` channels (momentum 0.1, eps 1e-5, as in PyTorch).
    pub fn new(tape: &Tape<F>, channels: usize) -> Self {
        BatchNorm {
            weight: tape.param(Array1::<F>::ones(channels)),
            bias: tape.param(Array1::<F>::zeros(channels)),
            running_mean: tape.buffer(Array1::<F>::zeros(channels)),
            running_var: tape.buffer(Array1::<F>::ones(channels)),
            tape: tape.id(),
            momentum: 0.1,
            eps: 1e-5,
            training: true,
            element: PhantomData,
        }
    }

    /// `BatchNorm1d` or `BatchNorm2d`, for errors.
    fn layer() -> &'static str {
        if SPATIAL == 0 { "BatchNorm1d" } else { "BatchNorm2d" }
    }
}

impl<F: Float, const SPATIAL: usize> Module<F> for BatchNorm<F, SPATIAL> {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        let layer = Self::layer();
        check_tape(layer, self.tape, x);
        let tape = x.tape();
        let (shape, channels) = (x.shape(), tape.get(self.running_mean).shape()[0]);
        if shape.len() != 2 + SPATIAL || shape[1] != channels {
            let expected =
                if SPATIAL == 0 { format!("(batch, {channels})") } else { format!("[N, {channels}, H, W]") };
            panic!("{}", crate::Error::shape(layer, &[&shape], expected));
        }
        // the statistics are over every axis but the channel axis, kept as [1, C, 1, …]
        let axes: Vec<usize> = (0..shape.len()).filter(|&a| a != 1).collect();
        let per_channel: usize = axes.iter().map(|&a| shape[a]).product();
        let mut stat_shape = vec![1; shape.len()];
        stat_shape[1] = channels;
        if self.training && per_channel < 2 {
            let expected = "more than 1 value per channel when training (one value has zero variance, so \
                            every output would be the bias); evaluation mode takes any batch";
            panic!("{}", crate::Error::shape(layer, &[&shape], expected));
        }
        let eps = F::of(self.eps);
        let normalized = if self.training {
            let mean = x.mean_axes(&axes, true);
            let centered = x - mean;
            let var = centered.square().mean_axes(&axes, true);
            let n = per_channel as f64;
            let momentum = F::of(self.momentum);
            let update = |running: Param, batch: ArrayD<F>, scale: F| {
                let batch = batch.into_shape_with_order(channels).expect("one statistic per channel");
                tape.get(running).update(|mut r| {
                    r.zip_mut_with(&batch, |r, &b| *r = *r * (F::one() - momentum) + momentum * b * scale)
                });
            };
            update(self.running_mean, mean.to_array(), F::one());
            update(self.running_var, var.to_array(), F::of(n / (n - 1.0)));
            centered / (var + eps).sqrt()
        } else {
            let mean = tape.get(self.running_mean).detach().reshape(&stat_shape);
            let std = tape.get(self.running_var).map_constant(|v| (v + eps).sqrt()).reshape(&stat_shape);
            (x - mean) / std
        };
        let (weight, bias) = (tape.get(self.weight), tape.get(self.bias));
        if SPATIAL == 0 {
            normalized * weight + bias
        } else {
            normalized * weight.reshape(&stat_shape) + bias.reshape(&stat_shape)
        }
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        vec![("weight".into(), self.weight), ("bias".into(), self.bias)]
    }
    fn buffers(&self) -> Vec<(String, Param)> {
        vec![("running_mean".into(), self.running_mean), ("running_var".into(), self.running_var)]
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// A table of `vocab` vectors of `dim` numbers, looked up by id (PyTorch's `nn.Embedding`,
/// parameter `weight` `[vocab, dim]`, drawn from N(0, 1) as PyTorch does). Its gradient is
/// row-sparse: [`Sgd`](crate::optim::Sgd) and [`Adam`](crate::optim::Adam) update only the rows
/// a step looked up.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::Embedding;
/// let tape = tapegrad::Tape::<f32>::new();
/// let table = Embedding::new(&tape, 10_000, 100, &mut rand::rngs::StdRng::seed_from_u64(0));
/// let ids = ndarray::Array2::from_shape_fn((20, 35), |(n, t)| (n * 35 + t) % 10_000).into_dyn();
/// let vectors = table.lookup(&tape, &ids);
/// assert_eq!(vectors.shape().as_slice(), &[20, 35, 100]);
/// let grads = vectors.sum().backward();
/// assert_eq!(grads.sparse_param(table.weight).unwrap().rows().len(), 700); // not 10,000
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Embedding<F> {
    /// The vectors, `[vocab, dim]`.
    pub weight: Param,
    tape: u64,
    element: PhantomData<fn() -> F>,
}

impl<F: Float> Embedding<F> {
    /// A table of `vocab` vectors of `dim`, drawn from N(0, 1).
    pub fn new(tape: &Tape<F>, vocab: usize, dim: usize, rng: &mut impl Rng) -> Self {
        let weight = tape.param(Init::Normal(1.0).sample::<F>(&[vocab, dim], rng));
        Embedding { weight, tape: tape.id(), element: PhantomData }
    }

    /// The vectors of `ids` (any shape): `[ids…, dim]`.
    ///
    /// Panics, at the caller's line, if `tape` is not the table's or an id is out of range.
    #[track_caller]
    pub fn lookup<'t>(&self, tape: &'t Tape<F>, ids: &ArrayD<usize>) -> Var<'t, F> {
        if tape.id() != self.tape {
            let message = "the lookup is on another tape than the table; expected the tape it was built on";
            panic!("{}", crate::Error::argument("Embedding", message));
        }
        match tape.get(self.weight).try_embedding(ids) {
            Ok(vectors) => vectors,
            Err(e) => panic!("{}", rename(e, "Embedding")),
        }
    }
}

impl<F: Float> Module<F> for Embedding<F> {
    /// The vectors of the ids that `x` holds as numbers (whole, from 0): as
    /// [`lookup`](Embedding::lookup).
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        check_tape("Embedding", self.tape, x);
        let values = x.to_array();
        let ids = values.mapv(|v| v.as_f64());
        if let Some(bad) = ids.iter().find(|&&v| !(v.fract() == 0.0 && v >= 0.0)) {
            let message = format!("id {bad} is not a whole number ≥ 0; expected ids as whole numbers");
            panic!("{}", crate::Error::argument("Embedding", message));
        }
        self.lookup(x.tape(), &ids.mapv(|v| v as usize))
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        vec![("weight".into(), self.weight)]
    }
}

/// Panics unless `x` is on the tape, `built_on`, that `layer`'s parameters live on.
#[track_caller]
pub(super) fn check_tape<F: Float>(layer: &'static str, built_on: u64, x: Var<'_, F>) {
    crate::error::or_panic(same_tape(layer, built_on, x))
}

/// An error naming `layer` unless `x` is on the tape, `built_on`, that its parameters live on.
pub(super) fn same_tape<F: Float>(layer: &'static str, built_on: u64, x: Var<'_, F>) -> crate::Result<()> {
    if x.tape().id() != built_on {
        let message = format!(
            "the input (shape {:?}) is on another tape than the layer's parameters; expected an \
             input recorded on the tape the layer was built on",
            x.shape().as_slice()
        );
        return Err(crate::Error::argument(layer, message));
    }
    Ok(())
}

/// `error` with its op renamed to `op`: an op's error reported by the layer that ran it.
pub(super) fn rename(error: crate::Error, op: &'static str) -> crate::Error {
    use crate::Error;
    match error {
        Error::Shape { shapes, expected, .. } => Error::Shape { op, shapes, expected },
        Error::Argument { message, .. } => Error::Argument { op, message },
        other => other,
    }
}
