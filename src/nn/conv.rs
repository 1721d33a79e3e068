//! Layers of convolutional networks: [`Conv2d`], [`ConvTranspose2d`], [`MaxPool2d`],
//! [`AvgPool2d`], [`AdaptiveAvgPool2d`] and [`Flatten`] (batch norm over images is
//! [`BatchNorm2d`](super::BatchNorm2d)). Weights use PyTorch's layouts and names, so a state
//! dict exported from PyTorch loads with [`load`](super::load).

use std::marker::PhantomData;

use ndarray::{ArrayD, IxDyn};
use rand::Rng;

use super::layers::check_tape;
use super::{Init, Module};
use crate::float::Float;
use crate::ops::conv::{ConvOptions, Window};
use crate::tape::{Param, Tape, Var};
use crate::value::Value;

/// A convolution layer, plain ([`Conv2d`]) or transposed ([`ConvTranspose2d`]): its filters,
/// an optional bias `[O]` and its options, with PyTorch's names and layouts.
#[derive(Debug, Clone, Copy)]
pub struct Convolution<F, const TRANSPOSED: bool> {
    /// The filters: `[O, C/groups, KH, KW]` for a convolution, `[C, O/groups, KH, KW]` for a
    /// transposed one (PyTorch's layouts).
    pub weight: Param,
    /// One shift per output channel, `[O]`; `None` for a layer without bias.
    pub bias: Option<Param>,
    /// Stride, padding, dilation, groups (and output padding, for the transposed layer).
    pub options: ConvOptions,
    tape: u64,
    element: PhantomData<fn() -> F>,
}

/// A 2-D convolution layer: [`Var::conv2d`] with a weight `[O, C/groups, KH, KW]` and a bias
/// `[O]` (PyTorch's `nn.Conv2d`, same names and layouts).
///
/// ```
/// use ndarray::{Array4, array};
/// use rand::SeedableRng;
/// use tapegrad::nn::{Conv2d, Init, Module};
/// use tapegrad::ConvOptions;
/// let tape = tapegrad::Tape::<f64>::new();
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let same = ConvOptions { padding: (1, 1), ..ConvOptions::default() };
/// let conv = Conv2d::new(&tape, 3, 16, (3, 3), same, Init::He, &mut rng);
/// let y = conv.forward(tape.constant(Array4::<f64>::zeros((2, 3, 28, 28))));
/// assert_eq!(y.shape().as_slice(), &[2, 16, 28, 28]);
/// assert_eq!(tape.get(conv.weight).shape().as_slice(), &[16, 3, 3, 3]);
///
/// // the textbook's 3×3 filter, no bias
/// let filter = array![[2.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 0.0, 2.0]].into_shape_with_order((1, 1, 3, 3)).unwrap();
/// let conv = Conv2d::from_arrays(&tape, filter, None::<Array4<f64>>, ConvOptions::default());
/// let x = array![[1.0, 2.0, 3.0, 0.0], [0.0, 1.0, 2.0, 3.0], [3.0, 0.0, 1.0, 2.0], [2.0, 3.0, 0.0, 1.0]];
/// let y = conv.forward(tape.constant(x.into_shape_with_order((1, 1, 4, 4)).unwrap()));
/// assert_eq!(y.to_array(), array![[[[15.0, 16.0], [6.0, 15.0]]]].into_dyn());
/// ```
pub type Conv2d<F> = Convolution<F, false>;

/// A transposed 2-D convolution layer (PyTorch's `nn.ConvTranspose2d`): [`Var::conv_transpose2d`]
/// with a weight `[C, O/groups, KH, KW]` and a bias `[O]`. It upsamples: with stride 2, kernel
/// 4 and padding 1 it doubles the height and width.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{ConvTranspose2d, Init, Module};
/// use tapegrad::ConvOptions;
/// let tape = tapegrad::Tape::<f32>::new();
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let double = ConvOptions { stride: (2, 2), padding: (1, 1), ..ConvOptions::default() };
/// let up = ConvTranspose2d::new(&tape, 8, 4, (4, 4), double, Init::PyTorchDefault, &mut rng);
/// let y = up.forward(tape.constant(ndarray::Array4::<f32>::zeros((1, 8, 7, 7))));
/// assert_eq!(y.shape().as_slice(), &[1, 4, 14, 14]);
/// assert_eq!(tape.get(up.weight).shape().as_slice(), &[8, 4, 4, 4]);
/// ```
pub type ConvTranspose2d<F> = Convolution<F, true>;

impl<F: Float, const TRANSPOSED: bool> Convolution<F, TRANSPOSED> {
    /// A layer from `in_channels` to `out_channels` with a `kernel` `(KH, KW)`, weights drawn by
    /// `init` (fans as PyTorch computes them) and zero bias.
    ///
    /// Panics, at the caller's line, unless both channel counts are divisible by
    /// `options.groups`, or if `init` is invalid.
    #[track_caller]
    pub fn new(
        tape: &Tape<F>,
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: ConvOptions,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        let groups = options.groups;
        if groups == 0 || !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
            let message = format!(
                "{in_channels} input and {out_channels} output channels with groups = {groups}; expected both \
                 channel counts divisible by groups ≥ 1"
            );
            panic!("{}", crate::Error::argument(Self::layer(), message));
        }
        let (first, second) = if TRANSPOSED {
            (in_channels, out_channels / groups)
        } else {
            (out_channels, in_channels / groups)
        };
        let weight = init.sample::<F>(&[first, second, kernel.0, kernel.1], rng);
        Self::from_arrays(tape, weight, Some(ArrayD::<F>::zeros(IxDyn(&[out_channels]))), options)
    }

    /// A layer with the given weight (`[O, C/groups, KH, KW]`, or `[C, O/groups, KH, KW]` when
    /// transposed) and optional bias `[O]`.
    ///
    /// Panics, at the caller's line, unless the weight is 4-D and the bias has one value per
    /// output channel.
    #[track_caller]
    pub fn from_arrays(
        tape: &Tape<F>,
        weight: impl Into<Value<F>>,
        bias: Option<impl Into<Value<F>>>,
        options: ConvOptions,
    ) -> Self {
        let (weight, bias) = (weight.into(), bias.map(Into::into));
        let outputs = |w: &Value<F>| if TRANSPOSED { w.shape()[1] * options.groups } else { w.shape()[0] };
        if weight.ndim() != 4 || bias.as_ref().is_some_and(|b| b.shape() != [outputs(&weight)]) {
            let mut shapes = vec![weight.shape()];
            shapes.extend(bias.as_ref().map(Value::shape));
            let weight = if TRANSPOSED { "[C, O/groups, KH, KW]" } else { "[O, C/groups, KH, KW]" };
            let expected = format!("a weight {weight} and a bias [O]");
            panic!("{}", crate::Error::shape(Self::layer(), &shapes, expected));
        }
        Convolution {
            weight: tape.param(weight),
            bias: bias.map(|b| tape.param(b)),
            options,
            tape: tape.id(),
            element: PhantomData,
        }
    }

    /// `Conv2d` or `ConvTranspose2d`, for errors.
    fn layer() -> &'static str {
        if TRANSPOSED { "ConvTranspose2d" } else { "Conv2d" }
    }
}

impl<F: Float, const TRANSPOSED: bool> Module<F> for Convolution<F, TRANSPOSED> {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        check_tape(Self::layer(), self.tape, x);
        let tape = x.tape();
        let (weight, bias) = (tape.get(self.weight), self.bias.map(|b| tape.get(b)));
        let (shape, ws) = (x.shape(), weight.shape());
        let channels = if TRANSPOSED { ws[0] } else { ws[1].saturating_mul(self.options.groups) };
        if shape.len() != 4 || shape[1] != channels {
            let expected = format!("an input [N, C, H, W] with C = {channels}");
            panic!("{}", crate::Error::shape(Self::layer(), &[&shape], expected));
        }
        if TRANSPOSED {
            x.conv_transpose2d(weight, bias, self.options)
        } else {
            x.conv2d(weight, bias, self.options)
        }
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        let mut named = vec![("weight".to_string(), self.weight)];
        named.extend(self.bias.map(|b| ("bias".to_string(), b)));
        named
    }
}

/// Max pooling as a layer: [`Var::max_pool2d`] over its window. `MaxPool2d(Window::pool((2, 2)))`
/// halves the height and width.
///
/// ```
/// use tapegrad::nn::{MaxPool2d, Module};
/// use tapegrad::Window;
/// let tape = tapegrad::Tape::<f64>::new();
/// let x = tape.constant(ndarray::Array4::<f64>::zeros((2, 30, 24, 24)));
/// assert_eq!(MaxPool2d(Window::pool((2, 2))).forward(x).shape().as_slice(), &[2, 30, 12, 12]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d(pub Window);

impl<F: Float> Module<F> for MaxPool2d {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        x.max_pool2d(self.0)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}

/// Average pooling as a layer: [`Var::avg_pool2d`] over its window (padding counted as zeros,
/// as PyTorch's default).
///
/// ```
/// use tapegrad::nn::{AvgPool2d, Module};
/// use tapegrad::Window;
/// let tape = tapegrad::Tape::<f64>::new();
/// let x = tape.constant(ndarray::Array4::<f64>::ones((1, 2, 4, 4)));
/// let y = AvgPool2d(Window::pool((2, 2))).forward(x).to_array();
/// assert_eq!(y, ndarray::Array4::<f64>::ones((1, 2, 2, 2)).into_dyn());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d(pub Window);

impl<F: Float> Module<F> for AvgPool2d {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        x.avg_pool2d(self.0)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}

/// Adaptive average pooling to a fixed output size `(OH, OW)`: [`Var::adaptive_avg_pool2d`].
/// `AdaptiveAvgPool2d((1, 1))` is global average pooling.
///
/// ```
/// use tapegrad::nn::{AdaptiveAvgPool2d, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let x = tape.constant(ndarray::Array4::<f64>::ones((2, 5, 7, 9)));
/// assert_eq!(AdaptiveAvgPool2d((1, 1)).forward(x).shape().as_slice(), &[2, 5, 1, 1]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d(pub (usize, usize));

impl<F: Float> Module<F> for AdaptiveAvgPool2d {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        x.adaptive_avg_pool2d(self.0)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}

/// Merges every axis after the batch axis: `[N, C, H, W]` → `[N, C·H·W]` (PyTorch's
/// `nn.Flatten()`), between convolutions and `Linear` layers.
///
/// ```
/// use tapegrad::nn::{Flatten, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let x = tape.constant(ndarray::Array4::<f64>::zeros((2, 30, 12, 12)));
/// assert_eq!(Flatten.forward(x).shape().as_slice(), &[2, 4320]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flatten;

impl<F: Float> Module<F> for Flatten {
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        x.flatten(1)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
