//! Convolution. `im2col` unrolls every sliding window of an NCHW image into one row of a
//! matrix and `col2im` is its adjoint (sums rows back into the image): each is the other's
//! backward. `conv2d` is one op (`Conv2dOp`), not composed from them: its kernel unrolls a
//! small block of columns per image and multiplies it with the filters in one GEMM. Its
//! gradients are the transposed convolution (`ConvTransposeOp`) and the filters' gradient
//! (`ConvWeightGrad`), and the three ops are each other's backward, so every derivative order
//! is available. The computing is in `kernels::conv`; a test checks `conv2d` against
//! `im2col` followed by a product, the textbook's definition.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::kernels::conv::{self, Geometry};
pub use crate::kernels::window::Window;
use crate::ops::{apply, try_apply};
use crate::tape::Var;
use crate::tape::op::{Context, Grads, Op};
use crate::value::Value;

/// Every window of an NCHW image `[N, C, H, W]` as a row of `[N·OH·OW, C·KH·KW]`: rows by
/// image and output position `(oh, ow)`, columns by `(c, kh, kw)`; padding reads as zeros.
#[derive(Debug, Clone, Copy)]
pub struct Im2Col(pub Window);

impl<F: Float> Op<F> for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let image = x[0].shape();
        if image.len() != 4 {
            return Err(Error::shape("im2col", &[image], "a 4-D image [N, C, H, W]"));
        }
        let out = self.0.output_size("im2col", image)?;
        let shape = [image[0], image[1], image[2], image[3]];
        let [rows, cols] = columns_shape::<F>("im2col", shape, &self.0, out)?;
        let columns = conv::im2col(&flat(x[0]), shape, &self.0, out)?;
        Ok(Value::from_buffer(&[rows, cols], columns))
    }
    // dx = col2im(gy): each pixel gets the sum of the columns that read it
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let s = cx.input_shape(0);
        crate::grads![apply(Col2Im { window: self.0, image: [s[0], s[1], s[2], s[3]] }, [gy])]
    }
}

/// Sums the rows of `[N·OH·OW, C·KH·KW]` back into an image `[N, C, H, W]`, dropping what falls
/// in the padding: the adjoint of [`Im2Col`], and its gradient.
#[derive(Debug, Clone, Copy)]
pub struct Col2Im {
    /// The window the columns were taken with.
    pub window: Window,
    /// The image's shape `[N, C, H, W]`.
    pub image: [usize; 4],
}

impl<F: Float> Op<F> for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let shape = self.image;
        let out = self.window.output_size("col2im", &shape)?;
        buffers::elements::<F>("col2im", &shape)?;
        let [rows, cols] = columns_shape::<F>("col2im", shape, &self.window, out)?;
        if x[0].shape() != [rows, cols] {
            let expected = format!("columns [N·OH·OW, C·KH·KW] = [{rows}, {cols}] for the image");
            return Err(Error::shape("col2im", &[x[0].shape(), &shape], expected));
        }
        let image = conv::col2im(&flat(x[0]), shape, &self.window, out)?;
        Ok(Value::from_buffer(&shape, image))
    }
    // dx = im2col(gy)
    fn backward<'a>(&self, _cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        crate::grads![apply(Im2Col(self.window), [gy])]
    }
}

/// The columns matrix `[N·OH·OW, C·KH·KW]` of an image `[N, C, H, W]`, its sizes checked.
fn columns_shape<F: Float>(
    op: &'static str,
    [n, c, _, _]: [usize; 4],
    window: &Window,
    (oh, ow): (usize, usize),
) -> Result<[usize; 2]> {
    let (kh, kw) = window.kernel;
    let rows = buffers::elements::<F>(op, &[n, oh, ow])?;
    let cols = buffers::elements::<F>(op, &[c, kh, kw])?;
    buffers::elements::<F>(op, &[rows, cols])?;
    Ok([rows, cols])
}

/// The options of [`Var::conv2d`] and [`Var::conv_transpose2d`]: stride, zero padding and
/// dilation as (rows, columns), the number of channel groups, and (for the transposed
/// convolution only) extra rows and columns on the output's far side.
///
/// ```
/// use tapegrad::ConvOptions;
/// let same = ConvOptions { padding: (1, 1), ..ConvOptions::default() };
/// assert_eq!((same.stride, same.groups), ((1, 1), 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvOptions {
    /// The step between windows.
    pub stride: (usize, usize),
    /// Zeros added on each side.
    pub padding: (usize, usize),
    /// The spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups: input and output channels split into this many groups, each output group
    /// seeing only its input group.
    pub groups: usize,
    /// `conv_transpose2d` only: rows and columns added to the output's bottom and right, to
    /// pick one of the sizes a strided convolution maps to the same input size (each less than
    /// the stride). Must be `(0, 0)` for `conv2d`.
    pub output_padding: (usize, usize),
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions { stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1, output_padding: (0, 0) }
    }
}

var_methods! {
    /// Every window of an NCHW image `[N, C, H, W]` as a row of `[N·OH·OW, C·KH·KW]`, rows by
    /// image and output position, columns by `(c, kh, kw)`; padding reads as zeros.
    ///
    /// ```
    /// use tapegrad::{Tape, ops::conv::Window};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(ndarray::Array::from_shape_vec((1, 1, 2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap());
    /// let y = x.im2col(Window::new((2, 2)));
    /// assert_eq!(y.to_array(), ndarray::array![[1.0, 2.0, 4.0, 5.0], [2.0, 3.0, 5.0, 6.0]].into_dyn());
    /// // Each pixel's gradient counts the windows that read it.
    /// let g = y.sum().backward();
    /// assert_eq!(g[x].to_array().into_raw_vec_and_offset().0, vec![1.0, 2.0, 1.0, 1.0, 2.0, 1.0]);
    /// ```
    pub fn im2col / try_im2col(self, window: Window) -> Self {
        try_apply(Im2Col(window), [self])
    }

    /// Sums the rows of columns `[N·OH·OW, C·KH·KW]` back into an image of shape `image`
    /// `[N, C, H, W]`, dropping the padding: the adjoint of [`im2col`](Self::im2col).
    ///
    /// ```
    /// use tapegrad::{Tape, ops::conv::Window};
    /// let tape = Tape::<f64>::new();
    /// let columns = tape.var(ndarray::Array2::<f64>::ones((2, 4)));
    /// let image = columns.col2im(Window::new((2, 2)), [1, 1, 2, 3]);
    /// assert_eq!(image.to_array().into_raw_vec_and_offset().0, vec![1.0, 2.0, 1.0, 1.0, 2.0, 1.0]);
    /// ```
    pub fn col2im / try_col2im(self, window: Window, image: [usize; 4]) -> Self {
        try_apply(Col2Im { window, image }, [self])
    }

    /// The 2-D convolution (cross-correlation, as in PyTorch) of an NCHW input `[N, C, H, W]`
    /// with a weight `[O, C/groups, KH, KW]` and an optional bias `[O]`, giving
    /// `[N, O, OH, OW]`. One op ([`Conv2dOp`]) whose gradients are the transposed convolution
    /// and [`ConvWeightGrad`], each differentiable in turn, so every derivative order is there.
    ///
    /// ```
    /// use ndarray::{Array, array};
    /// use tapegrad::{Tape, ops::conv::ConvOptions};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Array::from_shape_vec((1, 1, 3, 3), (1..=9).map(f64::from).collect()).unwrap());
    /// let w = tape.var(array![[[[1.0, 0.0], [0.0, -1.0]]]]);
    /// let b = tape.var(array![0.5]);
    /// let y = x.conv2d(w, Some(b), ConvOptions::default());
    /// assert_eq!(y.to_array(), array![[[[-3.5, -3.5], [-3.5, -3.5]]]].into_dyn()); // x[i][j] − x[i+1][j+1] + 0.5
    /// let g = y.sum().backward();
    /// assert_eq!(g[b].to_array(), array![4.0].into_dyn());
    /// assert_eq!(g[w].to_array(), array![[[[12.0, 16.0], [24.0, 28.0]]]].into_dyn());
    /// ```
    pub fn conv2d / try_conv2d(self, weight: Self, bias: Option<Self>, options: ConvOptions) -> Self {
        let bias_shape = bias.map(|b| b.shape());
        conv2d_output_shape(&self.shape(), &weight.shape(), bias_shape.as_deref(), options)?;
        let op = Conv2dOp { window: options.window(&weight.shape()), groups: options.groups };
        match bias {
            Some(b) => try_apply(op, [self, weight, b]),
            None => try_apply(op, [self, weight]),
        }
    }

    /// The transposed convolution of an NCHW input `[N, C, H, W]` with a weight
    /// `[C, O/groups, KH, KW]` (PyTorch's layout) and an optional bias `[O]`: the gradient of
    /// [`conv2d`](Self::conv2d) with respect to its input, used to upsample. The output is
    /// `[N, O, OH, OW]` with `OH = (H − 1)·S − 2P + D(K − 1) + output_padding + 1`.
    ///
    /// ```
    /// use ndarray::{Array, array};
    /// use tapegrad::{ConvOptions, Tape};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(array![[[[1.0, 2.0], [3.0, 4.0]]]]);
    /// let w = tape.var(Array::ones((1, 1, 2, 2)));
    /// // stride 2: each input pixel paints its own 2×2 block
    /// let y = x.conv_transpose2d(w, None, ConvOptions { stride: (2, 2), ..ConvOptions::default() });
    /// assert_eq!(y.to_array(), array![[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]]].into_dyn());
    /// // stride 1: the blocks overlap and add up
    /// let z = x.conv_transpose2d(w, None, ConvOptions::default());
    /// assert_eq!(z.to_array(), array![[[[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]]]].into_dyn());
    /// ```
    pub fn conv_transpose2d / try_conv_transpose2d(self, weight: Self, bias: Option<Self>, options: ConvOptions) -> Self {
        let ws = weight.shape();
        let bias_shape = bias.map(|b| b.shape());
        let [_, _, h, w] = conv_transpose2d_output_shape(&self.shape(), &ws, bias_shape.as_deref(), options)?;
        let window = options.window(&ws);
        let op = ConvTransposeOp { window, groups: options.groups, image: (h, w) };
        match bias {
            Some(b) => try_apply(op, [self, weight, b]),
            None => try_apply(op, [self, weight]),
        }
    }
}

/// The output shape `[N, O, OH, OW]` of [`Var::conv2d`] for an input `[N, C, H, W]`, a weight
/// `[O, C/groups, KH, KW]` and an optional bias `[O]`, without computing it: per axis
/// `OH = ⌊(H + 2P − D(K − 1) − 1)/S⌋ + 1` (see [`Window::output_size`]), every size computed
/// without overflow. The error `try_conv2d` would return when the shapes or options do not
/// fit, or the output would be too large to hold.
///
/// ```
/// use tapegrad::{ConvOptions, ops::conv::conv2d_output_shape};
/// let same = ConvOptions { padding: (1, 1), ..ConvOptions::default() };
/// assert_eq!(conv2d_output_shape(&[8, 3, 32, 32], &[16, 3, 3, 3], Some(&[16]), same).unwrap(), [8, 16, 32, 32]);
/// let huge = ConvOptions { padding: (1 << 62, 1 << 62), ..same };
/// assert!(conv2d_output_shape(&[8, 3, 32, 32], &[16, 3, 3, 3], None, huge).is_err());
/// ```
pub fn conv2d_output_shape(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    options: ConvOptions,
) -> Result<[usize; 4]> {
    if options.output_padding != (0, 0) {
        let message = format!(
            "output_padding {:?} belongs to conv_transpose2d; conv2d takes (0, 0)",
            options.output_padding
        );
        return Err(Error::argument("conv2d", message));
    }
    let mut shapes = vec![input, weight];
    shapes.extend(bias);
    let expected = "an input [N, C, H, W], a weight [O, C/groups, KH, KW] and a bias [O]";
    let window = options.window(weight);
    let geo = Geometry::new("conv2d", window, options.groups, input, weight, &shapes, expected)?;
    let channels = geo.og * geo.groups;
    if bias.is_some_and(|b| b != [channels]) {
        let expected = format!("{expected}, with C and O divisible by groups = {}", options.groups);
        return Err(Error::shape("conv2d", &shapes, expected));
    }
    Ok([geo.n, channels, geo.oh, geo.ow])
}

/// The output shape `[N, O, OH, OW]` of [`Var::conv_transpose2d`] for an input `[N, C, H, W]`, a
/// weight `[C, O/groups, KH, KW]` and an optional bias `[O]`, without computing it: per axis
/// `OH = (H − 1)·S − 2P + D(K − 1) + output_padding + 1`, every size computed without
/// overflow. The error `try_conv_transpose2d` would return when the shapes or options do not
/// fit, or the output would be too large to hold.
///
/// ```
/// use tapegrad::{ConvOptions, ops::conv::conv_transpose2d_output_shape};
/// let double = ConvOptions { stride: (2, 2), padding: (1, 1), ..ConvOptions::default() };
/// assert_eq!(conv_transpose2d_output_shape(&[1, 8, 7, 7], &[8, 4, 4, 4], None, double).unwrap(), [1, 4, 14, 14]);
/// let huge = ConvOptions { stride: (1 << 62, 1), ..ConvOptions::default() };
/// assert!(conv_transpose2d_output_shape(&[1, 8, 7, 7], &[8, 4, 4, 4], None, huge).is_err());
/// ```
pub fn conv_transpose2d_output_shape(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    options: ConvOptions,
) -> Result<[usize; 4]> {
    const OP: &str = "conv_transpose2d";
    let ConvOptions { stride, padding, output_padding, dilation, groups } = options;
    let mut shapes = vec![input, weight];
    shapes.extend(bias);
    if output_padding.0 >= stride.0 || output_padding.1 >= stride.1 {
        let message = format!("output_padding {output_padding:?} must be smaller than the stride {stride:?}");
        return Err(Error::argument(OP, message));
    }
    let expected = "an input [N, C, H, W], a weight [C, O/groups, KH, KW] and a bias [O]";
    let fits = input.len() == 4 && weight.len() == 4 && groups > 0 && input[1] == weight[0];
    if !fits {
        return Err(Error::shape(OP, &shapes, format!("{expected}, with C divisible by groups = {groups}")));
    }
    let window = options.window(weight);
    // in u128, where nothing overflows; then the size must fit a usize
    let size = |n: usize, k: usize, s: usize, p: usize, d: usize, extra: usize| {
        let full = (n.max(1) as u128 - 1) * s as u128
            + d as u128 * (k as u128).saturating_sub(1)
            + extra as u128
            + 1;
        full.checked_sub(2 * p as u128)
            .filter(|&size| size > 0 && size <= usize::MAX as u128)
            .map(|size| size as usize)
    };
    let (Some(h), Some(w)) = (
        size(input[2], weight[2], stride.0, padding.0, dilation.0, output_padding.0),
        size(input[3], weight[3], stride.1, padding.1, dilation.1, output_padding.1),
    ) else {
        let expected = format!(
            "an input whose upsampled size stays positive after removing padding {padding:?}, and at most \
             usize::MAX"
        );
        return Err(Error::shape(OP, &shapes, expected));
    };
    let Some(channels) = weight[1].checked_mul(groups) else {
        return Err(Error::shape(
            OP,
            &shapes,
            format!("{expected}, with O = weight[1]·groups = {} · {groups} at most usize::MAX", weight[1]),
        ));
    };
    let image = [input[0], channels, h, w];
    let geo = Geometry::new(OP, window, groups, &image, weight, &shapes, expected)?;
    if (geo.oh, geo.ow) != (input[2], input[3]) || bias.is_some_and(|b| b != [channels]) {
        return Err(Error::shape(OP, &shapes, format!("{expected} that upsample to {:?}", (h, w))));
    }
    Ok(image)
}

impl ConvOptions {
    /// The window of a weight `[·, ·, KH, KW]` with these options.
    fn window(&self, weight: &[usize]) -> Window {
        let kernel = match *weight {
            [_, _, kh, kw] => (kh, kw),
            _ => (1, 1), // the op reports the weight's shape
        };
        Window { kernel, stride: self.stride, padding: self.padding, dilation: self.dilation }
    }
}

/// A flat standard-layout copy of a value (a borrow when it is already one).
fn flat<F: Float>(v: &Value<F>) -> Cow<'_, [F]> {
    match v {
        Value::Scalar(x) => Cow::Borrowed(std::slice::from_ref(x)),
        Value::Array(a) => match a.as_slice() {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(a.iter().copied().collect()),
        },
    }
}

/// `grads` with the bias's gradient (`Σ gy` over every axis but the channels) when the op has
/// a bias, its third input.
fn with_bias_grad<'a, F: Float>(
    cx: &Context<'a, F>,
    gy: Var<'a, F>,
    mut grads: Grads<'a, F>,
) -> Grads<'a, F> {
    if cx.num_inputs() == 3 {
        grads.push(cx.grad_if(2, || gy.sum_axes(&[0, 2, 3], false)));
    }
    grads
}

/// The 2-D convolution `conv2d(x, w) + b` of an image `[N, C, H, W]` by filters
/// `[O, C/groups, KH, KW]` and an optional bias `[O]`. Per image and group, the window's
/// columns go into a small buffer and one matrix product writes the output planes in place:
/// no `[N·OH·OW, C·KH·KW]` matrix and no transposition of the output.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dOp {
    /// Kernel, stride, padding and dilation.
    pub window: Window,
    /// Channel groups.
    pub groups: usize,
}

impl<F: Float> Op<F> for Conv2dOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let mut shapes = vec![x[0].shape(), x[1].shape()];
        shapes.extend(x.get(2).map(|b| b.shape()));
        let expected = "an input [N, C, H, W], a weight [O, C/groups, KH, KW] and a bias [O]";
        let geo =
            Geometry::new("conv2d", self.window, self.groups, x[0].shape(), x[1].shape(), &shapes, expected)?;
        let channels = geo.og * geo.groups;
        if x.get(2).is_some_and(|b| b.shape() != [channels]) {
            return Err(Error::shape(
                "conv2d",
                &shapes,
                format!("{expected}, with C and O divisible by groups = {}", self.groups),
            ));
        }
        let (image, weight, bias) = (flat(x[0]), flat(x[1]), x.get(2).map(|b| flat(b)));
        let out = conv::conv2d(&geo, &image, &weight, bias.as_deref())?;
        Ok(Value::from_buffer(&[geo.n, channels, geo.oh, geo.ow], out))
    }
    // dx = conv_transpose2d(gy, w), dw = conv2d_weight_grad(x, gy), db = Σ gy over N, OH, OW
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let (x, w) = (cx.input(0), cx.input(1));
        let xs = cx.input_shape(0);
        let (window, groups) = (self.window, self.groups);
        let dx = cx.grad_if(0, || apply(ConvTransposeOp { window, groups, image: (xs[2], xs[3]) }, [gy, w]));
        let dw = cx.grad_if(1, || apply(ConvWeightGrad { window, groups }, [x, gy]));
        with_bias_grad(cx, gy, crate::grads![dx, dw])
    }
}

/// The transposed convolution of `x` `[N, O, OH, OW]` by filters `[O, C/groups, KH, KW]`, plus
/// an optional bias `[C]`, into images `[N, C, H, W]` of the given size: the gradient of
/// [`Conv2dOp`] with respect to its input. Per image and group, one matrix product makes the
/// columns, which are added into the output planes.
#[derive(Debug, Clone, Copy)]
pub struct ConvTransposeOp {
    /// Kernel, stride, padding and dilation of the convolution this one transposes.
    pub window: Window,
    /// Channel groups.
    pub groups: usize,
    /// The output's height and width.
    pub image: (usize, usize),
}

impl<F: Float> Op<F> for ConvTransposeOp {
    fn name(&self) -> &'static str {
        "conv_transpose2d"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (xs, ws) = (x[0].shape(), x[1].shape());
        let mut shapes = vec![xs, ws];
        shapes.extend(x.get(2).map(|b| b.shape()));
        let expected = "an input [N, C, H, W], a weight [C, O/groups, KH, KW] and a bias [O]";
        let fits = xs.len() == 4
            && ws.len() == 4
            && self.groups > 0
            && xs[1] == ws[0]
            && ws[1].checked_mul(self.groups).is_some();
        if !fits {
            return Err(Error::shape(
                "conv_transpose2d",
                &shapes,
                format!("{expected}, with C divisible by groups = {}", self.groups),
            ));
        }
        let image = [xs[0], ws[1] * self.groups, self.image.0, self.image.1];
        let geo = Geometry::new("conv_transpose2d", self.window, self.groups, &image, ws, &shapes, expected)?;
        let channels = geo.cg * geo.groups;
        if (geo.oh, geo.ow) != (xs[2], xs[3]) || x.get(2).is_some_and(|b| b.shape() != [channels]) {
            return Err(Error::shape(
                "conv_transpose2d",
                &shapes,
                format!("{expected} that upsample to {:?}", self.image),
            ));
        }
        let (input, weight, bias) = (flat(x[0]), flat(x[1]), x.get(2).map(|b| flat(b)));
        let out = conv::conv_transpose2d(&geo, &input, &weight, bias.as_deref())?;
        Ok(Value::from_buffer(&image, out))
    }
    // dx = conv2d(gy, w), dw = conv2d_weight_grad(gy, x), db = Σ gy over N, H, W
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let (x, w) = (cx.input(0), cx.input(1));
        let (window, groups) = (self.window, self.groups);
        let dx = cx.grad_if(0, || apply(Conv2dOp { window, groups }, [gy, w]));
        let dw = cx.grad_if(1, || apply(ConvWeightGrad { window, groups }, [gy, x]));
        with_bias_grad(cx, gy, crate::grads![dx, dw])
    }
}

/// The gradient of [`Conv2dOp`] with respect to its filters: for images `x` `[N, C, H, W]` and
/// output gradients `gy` `[N, O, OH, OW]`, the filters' gradient `[O, C/groups, KH, KW]`, summed
/// over the batch: per image and group, `gy · columnsᵀ`.
#[derive(Debug, Clone, Copy)]
pub struct ConvWeightGrad {
    /// Kernel, stride, padding and dilation of the convolution.
    pub window: Window,
    /// Channel groups.
    pub groups: usize,
}

impl<F: Float> Op<F> for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d_weight_grad"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let (xs, gs) = (x[0].shape(), x[1].shape());
        let (kh, kw) = self.window.kernel;
        let fits = xs.len() == 4
            && gs.len() == 4
            && self.groups > 0
            && xs[1].is_multiple_of(self.groups)
            && gs[0] == xs[0];
        let expected = "images [N, C, H, W] and output gradients [N, O, OH, OW]";
        if !fits {
            return Err(Error::shape(
                "conv2d_weight_grad",
                &[xs, gs],
                format!("{expected}, with C and O divisible by groups = {}", self.groups),
            ));
        }
        let weight = [gs[1], xs[1] / self.groups, kh, kw];
        let geo =
            Geometry::new("conv2d_weight_grad", self.window, self.groups, xs, &weight, &[xs, gs], expected)?;
        if (geo.oh, geo.ow) != (gs[2], gs[3]) {
            return Err(Error::shape(
                "conv2d_weight_grad",
                &[xs, gs],
                format!("{expected} of the convolution's output size ({}, {})", geo.oh, geo.ow),
            ));
        }
        let dw = conv::conv2d_weight_grad(&geo, &flat(x[0]), &flat(x[1]))?;
        Ok(Value::from_buffer(&weight, dw))
    }
    // with gw the gradient of the filters' gradient: dx = conv_transpose2d(gy, gw), dgy = conv2d(x, gw)
    fn backward<'a>(&self, cx: &Context<'a, F>, gw: Var<'a, F>) -> Grads<'a, F> {
        let (x, gy) = (cx.input(0), cx.input(1));
        let xs = cx.input_shape(0);
        let (window, groups) = (self.window, self.groups);
        let dx = cx.grad_if(0, || apply(ConvTransposeOp { window, groups, image: (xs[2], xs[3]) }, [gy, gw]));
        let dgy = cx.grad_if(1, || apply(Conv2dOp { window, groups }, [x, gw]));
        crate::grads![dx, dgy]
    }
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![
        crate::case!("im2col", image_and_window(ANY), |x, p| x[0].im2col(window(&p.ints))),
        crate::case!("col2im", columns_and_window(ANY), |x, p| {
            let i = &p.ints[8..];
            x[0].col2im(window(&p.ints), [i[0], i[1], i[2], i[3]])
        }),
        crate::case!("conv2d", conv2d_operands(ANY), |x, p| {
            x[0].conv2d(x[1], x.get(2).copied(), conv_options(&p.ints))
        }),
        crate::case!("conv2d_weight_grad", conv2d_operands(ANY), |x, p| {
            let options = conv_options(&p.ints);
            // output gradients that depend on both inputs, so both of its own gradients are checked
            let gy = x[0].conv2d(x[1], x.get(2).copied(), options);
            apply(
                ConvWeightGrad { window: options.window(&x[1].shape()), groups: options.groups },
                [x[0], gy],
            )
        }),
        crate::case!("conv_transpose2d", conv_transpose2d_operands(ANY), |x, p| {
            x[0].conv_transpose2d(x[1], x.get(2).copied(), conv_options(&p.ints))
        }),
    ]
}

/// The options in `ints = [SH, SW, PH, PW, DH, DW, groups, OPH, OPW]` (no output padding when
/// the last two are missing).
#[cfg(test)]
fn conv_options(i: &[usize]) -> ConvOptions {
    ConvOptions {
        stride: (i[0], i[1]),
        padding: (i[2], i[3]),
        dilation: (i[4], i[5]),
        groups: i[6],
        output_padding: (i.get(7).copied().unwrap_or(0), i.get(8).copied().unwrap_or(0)),
    }
}

/// The window in `ints = [KH, KW, SH, SW, PH, PW, DH, DW, …]`.
#[cfg(test)]
fn window(i: &[usize]) -> Window {
    Window { kernel: (i[0], i[1]), stride: (i[2], i[3]), padding: (i[4], i[5]), dilation: (i[6], i[7]) }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array4, ArrayD, IxDyn, array};

    use super::{ConvOptions, Window};
    use crate::Tape;

    /// The 4×4 image and 3×3 filter of the textbook figure of convolution.
    fn figure() -> (Array4<f64>, Array4<f64>) {
        let image =
            array![[1.0, 2.0, 3.0, 0.0], [0.0, 1.0, 2.0, 3.0], [3.0, 0.0, 1.0, 2.0], [2.0, 3.0, 0.0, 1.0]];
        let filter = array![[2.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 0.0, 2.0]];
        (
            image.into_shape_with_order((1, 1, 4, 4)).unwrap(),
            filter.into_shape_with_order((1, 1, 3, 3)).unwrap(),
        )
    }

    /// Direct loops over output position, channel and tap, zero outside the image.
    fn naive(x: &ArrayD<f64>, w: &ArrayD<f64>, b: Option<&ArrayD<f64>>, o: ConvOptions) -> ArrayD<f64> {
        let (xs, ws) = (x.shape(), w.shape());
        let (n, c, h, wd, out, cg, kh, kw) = (xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3]);
        let og = out / o.groups;
        let size = |n: usize, k: usize, s: usize, p: usize, d: usize| (n + 2 * p - d * (k - 1) - 1) / s + 1;
        let oh = size(h, kh, o.stride.0, o.padding.0, o.dilation.0);
        let ow = size(wd, kw, o.stride.1, o.padding.1, o.dilation.1);
        let mut y = ArrayD::zeros(IxDyn(&[n, out, oh, ow]));
        assert_eq!(c, cg * o.groups);
        for i in 0..n {
            for f in 0..out {
                for r in 0..oh {
                    for s in 0..ow {
                        let mut sum = b.map_or(0.0, |b| b[[f]]);
                        for k in 0..cg {
                            for u in 0..kh {
                                for v in 0..kw {
                                    let py =
                                        (r * o.stride.0 + u * o.dilation.0) as isize - o.padding.0 as isize;
                                    let px =
                                        (s * o.stride.1 + v * o.dilation.1) as isize - o.padding.1 as isize;
                                    if (0..h as isize).contains(&py) && (0..wd as isize).contains(&px) {
                                        let channel = (f / og) * cg + k;
                                        sum += x[[i, channel, py as usize, px as usize]] * w[[f, k, u, v]];
                                    }
                                }
                            }
                        }
                        y[[i, f, r, s]] = sum;
                    }
                }
            }
        }
        y
    }

    fn conv(x: &Array4<f64>, w: &Array4<f64>, options: ConvOptions) -> ArrayD<f64> {
        let tape = Tape::<f64>::new();
        tape.constant(x.clone()).conv2d(tape.constant(w.clone()), None, options).to_array()
    }

    #[test]
    fn the_textbook_figure() {
        let (x, w) = figure();
        let plain = ConvOptions::default();
        assert_eq!(conv(&x, &w, plain), array![[[[15.0, 16.0], [6.0, 15.0]]]].into_dyn());

        // Padding 1: the top-left output sees only the filter's lower-right 2×2,
        // 1·1 + 2·2 + 0·0 + 2·1 = 7.
        let padded = ConvOptions { padding: (1, 1), ..plain };
        let expected = array![
            [7.0, 12.0, 10.0, 2.0],
            [4.0, 15.0, 16.0, 10.0],
            [10.0, 6.0, 15.0, 6.0],
            [8.0, 10.0, 4.0, 3.0]
        ];
        assert_eq!(conv(&x, &w, padded), expected.into_shape_with_order((1, 1, 4, 4)).unwrap().into_dyn());
        assert_eq!(conv(&x, &w, padded), naive(&x.clone().into_dyn(), &w.clone().into_dyn(), None, padded));

        // Stride 2 with padding 1 keeps every other row and column of the padded result.
        let strided = ConvOptions { stride: (2, 2), ..padded };
        assert_eq!(conv(&x, &w, strided), array![[[[7.0, 10.0], [10.0, 15.0]]]].into_dyn());
        assert_eq!(conv(&x, &w, strided), naive(&x.clone().into_dyn(), &w.clone().into_dyn(), None, strided));
        assert_eq!(conv(&x, &w, ConvOptions { stride: (2, 2), ..plain }), array![[[[15.0]]]].into_dyn());
    }

    /// A deterministic array of `shape` with values in [−1, 1], different for each seed.
    fn values(shape: &[usize], seed: f64) -> ArrayD<f64> {
        let n = shape.iter().product::<usize>();
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|k| ((k as f64 + seed) * 0.37).sin()).collect())
            .unwrap()
    }

    #[test]
    fn conv2d_agrees_with_direct_loops() {
        let tape = Tape::<f64>::new();
        for (groups, c, o) in [(1, 3, 2), (2, 4, 4), (4, 4, 8)] {
            for (stride, padding, dilation) in
                [((1, 1), (0, 0), (1, 1)), ((2, 3), (1, 2), (2, 1)), ((3, 1), (2, 0), (1, 2))]
            {
                let options = ConvOptions { stride, padding, dilation, groups, output_padding: (0, 0) };
                let (x, w, b) =
                    (values(&[2, c, 6, 5], 0.0), values(&[o, c / groups, 3, 2], 1.0), values(&[o], 2.0));
                let y = tape.constant(x.clone()).conv2d(
                    tape.constant(w.clone()),
                    Some(tape.constant(b.clone())),
                    options,
                );
                let expected = naive(&x, &w, Some(&b), options);
                assert_eq!(y.shape().as_slice(), expected.shape());
                let error = (&y.to_array() - &expected).iter().fold(0.0f64, |m, e| m.max(e.abs()));
                assert!(error < 1e-12, "{options:?}: {error}");
            }
        }
    }

    /// The textbook's convolution: `im2col` of the image times the filters as a matrix
    /// `[O, C·KH·KW]ᵀ`, reshaped to NCHW, plus the bias; the one op gives the same values.
    #[test]
    fn conv2d_is_im2col_times_the_filters() {
        let tape = Tape::<f64>::new();
        let (n, c, o, (h, w)) = (2, 3, 4, (7, 6));
        for options in [
            ConvOptions::default(),
            ConvOptions { stride: (2, 1), padding: (1, 2), dilation: (1, 2), ..ConvOptions::default() },
        ] {
            let (x, weight, bias) =
                (values(&[n, c, h, w], 0.0), values(&[o, c, 3, 2], 1.0), values(&[o], 2.0));
            let (x, weight, bias) = (tape.constant(x), tape.constant(weight), tape.constant(bias));
            let window = Window {
                kernel: (3, 2),
                stride: options.stride,
                padding: options.padding,
                dilation: options.dilation,
            };
            let y = x.conv2d(weight, Some(bias), options);
            let (oh, ow) = (y.shape()[2], y.shape()[3]);
            let columns = x.im2col(window);
            let textbook = (columns.matmul(weight.reshape(&[o, c * 6]).transpose()) + bias)
                .reshape(&[n, oh, ow, o])
                .permute(&[0, 3, 1, 2]);
            let error = (y - textbook).abs().max().scalar();
            assert!(error < 1e-12, "{options:?}: {error}");
        }
    }

    /// The transposed convolution is the adjoint of the convolution: for every `x` and `y`,
    /// `⟨conv2d(x, w), y⟩ = ⟨x, conv_transpose2d(y, w)⟩`, with the same weight tensor
    /// (`[O, C/g, KH, KW]` read as `[C_in, O_out/g, KH, KW]` by the transpose) and options, and
    /// an output padding that restores the input's size.
    #[test]
    fn conv_transpose2d_is_the_adjoint_of_conv2d() {
        let tape = Tape::<f64>::new();
        for (groups, c, o) in [(1, 3, 2), (2, 4, 6), (4, 4, 4)] {
            for (stride, padding, dilation) in
                [((1, 1), (0, 0), (1, 1)), ((2, 3), (1, 2), (2, 1)), ((3, 2), (2, 0), (1, 2))]
            {
                let conv = ConvOptions { stride, padding, dilation, groups, output_padding: (0, 0) };
                let (h, w) = (9, 8);
                let x = tape.constant(values(&[2, c, h, w], 0.0));
                let weight = tape.constant(values(&[o, c / groups, 3, 2], 1.0));
                let forward = x.conv2d(weight, None, conv);
                let y = tape.constant(values(&forward.shape(), 2.0));
                // the output padding that maps back to (h, w)
                let back = |n: usize, oh: usize, k: usize, s: usize, p: usize, d: usize| {
                    n + 2 * p - ((oh - 1) * s + d * (k - 1) + 1)
                };
                let output_padding = (
                    back(h, forward.shape()[2], 3, stride.0, padding.0, dilation.0),
                    back(w, forward.shape()[3], 2, stride.1, padding.1, dilation.1),
                );
                let transposed = y.conv_transpose2d(weight, None, ConvOptions { output_padding, ..conv });
                assert_eq!(transposed.shape(), x.shape(), "{conv:?}");
                let left = (forward * y).sum().scalar();
                let right = (x * transposed).sum().scalar();
                assert!((left - right).abs() < 1e-10 * left.abs().max(1.0), "{conv:?}: {left} vs {right}");
            }
        }
    }

    /// `col2im(im2col(1))` counts the windows that cover each pixel: along an axis of length L
    /// with kernel K (stride 1, no padding), pixel i is covered min(i + 1, K, L − i, L − K + 1)
    /// times, and a pixel's count is the product over its two axes.
    #[test]
    fn col2im_of_im2col_counts_the_windows_over_each_pixel() {
        let tape = Tape::<f64>::new();
        let (l, k) = ([5, 4], [3, 2]);
        let window = Window::new((k[0], k[1]));
        let ones = tape.constant(ArrayD::ones(IxDyn(&[2, 3, l[0], l[1]])));
        let counts = ones.im2col(window).col2im(window, [2, 3, l[0], l[1]]).to_array();
        let cover = |i: usize, a: usize| (i + 1).min(k[a]).min(l[a] - i).min(l[a] - k[a] + 1) as f64;
        for ((_, _, i, j), &n) in counts.into_dimensionality::<ndarray::Ix4>().unwrap().indexed_iter() {
            assert_eq!(n, cover(i, 0) * cover(j, 1), "pixel ({i}, {j})");
        }
        assert_eq!(cover(2, 0) * cover(1, 1), 6.0);
    }

    #[test]
    fn errors_name_the_op_the_shapes_and_what_was_expected() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ArrayD::zeros(IxDyn(&[1, 4, 3, 3])));
        let error = |r: crate::Result<crate::Var<'_, f64>>| r.unwrap_err().to_string();
        assert_eq!(
            error(x.try_im2col(Window::new((4, 2)))),
            "im2col: got shapes [1, 4, 3, 3], expected an image [N, C, H, W] at least as large as the dilated \
             kernel (4, 2) after padding (0, 0)"
        );
        assert_eq!(
            error(tape.var(vec![1.0]).try_im2col(Window::new((1, 1)))),
            "im2col: got shapes [1], expected a 4-D image [N, C, H, W]"
        );
        let zero_stride = Window { stride: (0, 1), ..Window::new((1, 1)) };
        assert!(error(x.try_im2col(zero_stride)).starts_with("im2col: "));
        assert!(error(x.try_im2col(zero_stride)).contains("stride (0, 1)"));
        let w = tape.var(ArrayD::zeros(IxDyn(&[6, 3, 2, 2])));
        assert_eq!(
            error(x.try_conv2d(w, None, ConvOptions { groups: 2, ..ConvOptions::default() })),
            "conv2d: got shapes [1, 4, 3, 3] and [6, 3, 2, 2], expected an input [N, C, H, W], a weight \
             [O, C/groups, KH, KW] and a bias [O], with C and O divisible by groups = 2"
        );
        let (w, b) = (tape.var(ArrayD::zeros(IxDyn(&[6, 2, 2, 2]))), tape.var(vec![0.0; 5]));
        assert_eq!(
            error(x.try_conv2d(w, Some(b), ConvOptions { groups: 2, ..ConvOptions::default() })),
            "conv2d: got shapes [1, 4, 3, 3], [6, 2, 2, 2] and [5], expected an input [N, C, H, W], a weight \
             [O, C/groups, KH, KW] and a bias [O], with C and O divisible by groups = 2"
        );
        let columns = tape.var(ArrayD::zeros(IxDyn(&[3, 4])));
        assert_eq!(
            error(columns.try_col2im(Window::new((2, 2)), [1, 1, 3, 3])),
            "col2im: got shapes [3, 4] and [1, 1, 3, 3], expected columns [N·OH·OW, C·KH·KW] = [4, 4] for the image"
        );
    }
}
