//! Pooling over the last two axes of an NCHW image, composed from ops that already have every
//! derivative order:
//!
//! - `max_pool2d` is one op that finds each window's largest element, takes it and remembers
//!   where it came from, so its gradient goes to that element (a `put_add`, whose own gradient
//!   is a `take` again);
//! - `avg_pool2d` is a depthwise convolution with a constant `1/(KH·KW)` filter, so padding
//!   counts as zeros in the average, as PyTorch's default `count_include_pad=True` does;
//! - `adaptive_avg_pool2d` is `A_h · X · A_wᵀ` with constant averaging matrices whose bins are
//!   PyTorch's (`⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉`, overlapping when `OH` does not divide `H`).

use std::cell::OnceCell;
use std::rc::Rc;

use ndarray::{Array2, ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::kernels::pooling::window_maxima;
use crate::kernels::window::Window;
use crate::ops::shape::{Indices, PutAdd};
use crate::ops::{apply, try_apply};
use crate::tape::Var;
use crate::tape::op::{Context, Grads, Op};
use crate::value::Value;

impl Window {
    /// A pooling window: `(KH, KW)` with the stride equal to the kernel (PyTorch's default for
    /// pooling), no padding and dilation 1.
    ///
    /// ```
    /// use tapegrad::Window;
    /// assert_eq!(Window::pool((2, 2)).stride, (2, 2));
    /// ```
    pub fn pool(kernel: (usize, usize)) -> Self {
        Window { stride: kernel, ..Window::new(kernel) }
    }

    /// Pooling pads at most half the (dilated) kernel on each side, so that every window holds
    /// at least one element of the image.
    fn check_pool_padding(&self, op: &'static str) -> Result<()> {
        let Window { kernel, padding, dilation, .. } = *self;
        // in u128, where the dilated kernel cannot overflow
        let half = |k: usize, d: usize| (d as u128 * (k as u128).saturating_sub(1)).div_ceil(2);
        if padding.0 as u128 > half(kernel.0, dilation.0) || padding.1 as u128 > half(kernel.1, dilation.1) {
            let message = format!(
                "padding {padding:?} is more than half the kernel {kernel:?} (dilation {dilation:?}); a window \
                 would hold padding only"
            );
            return Err(Error::argument(op, message));
        }
        Ok(())
    }
}

/// The 4-D shape `[N, C, H, W]` of `x`, or an error naming `op`.
fn image_shape(op: &'static str, shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [n, c, h, w] => Ok([n, c, h, w]),
        ref other => Err(Error::shape(op, &[other], "a 4-D image [N, C, H, W]")),
    }
}

/// The output shape `[N, C, OH, OW]` of [`Var::max_pool2d`] over an image `input`
/// `[N, C, H, W]`, without computing it (see [`Window::output_size`]): the error
/// `try_max_pool2d` would return when the window does not fit or the output would be too large
/// to hold.
///
/// ```
/// use tapegrad::{Window, ops::pooling::max_pool2d_output_shape};
/// assert_eq!(max_pool2d_output_shape(&[2, 3, 28, 28], Window::pool((2, 2))).unwrap(), [2, 3, 14, 14]);
/// let gapped = Window { dilation: (1 << 63, 1), ..Window::pool((2, 2)) };
/// assert!(max_pool2d_output_shape(&[2, 3, 28, 28], gapped).is_err());
/// ```
pub fn max_pool2d_output_shape(input: &[usize], window: Window) -> Result<[usize; 4]> {
    pool_output_shape("max_pool2d", input, window)
}

/// The output shape `[N, C, OH, OW]` of [`Var::avg_pool2d`] over an image `input`
/// `[N, C, H, W]`, without computing it: the error `try_avg_pool2d` would return when the
/// window does not fit or the output would be too large to hold.
///
/// ```
/// use tapegrad::{Window, ops::pooling::avg_pool2d_output_shape};
/// assert_eq!(avg_pool2d_output_shape(&[2, 3, 7, 7], Window::pool((3, 3))).unwrap(), [2, 3, 2, 2]);
/// assert!(avg_pool2d_output_shape(&[2, 3, 7, 7], Window::pool((8, 8))).is_err());
/// ```
pub fn avg_pool2d_output_shape(input: &[usize], window: Window) -> Result<[usize; 4]> {
    const OP: &str = "avg_pool2d";
    if window.dilation != (1, 1) {
        let message = format!("dilation {:?}; average pooling takes dilation (1, 1)", window.dilation);
        return Err(Error::argument(OP, message));
    }
    let shape = pool_output_shape(OP, input, window)?;
    let (kh, kw) = window.kernel;
    buffers::elements::<f64>(OP, &[kh, kw])?; // its filter
    Ok(shape)
}

/// The output shape of max or average pooling, checked.
fn pool_output_shape(op: &'static str, input: &[usize], window: Window) -> Result<[usize; 4]> {
    let [n, c, h, w] = image_shape(op, input)?;
    window.check_pool_padding(op)?;
    let (oh, ow) = window.output_size(op, &[n, c, h, w])?;
    buffers::elements::<f64>(op, &[n, c, oh, ow])?;
    Ok([n, c, oh, ow])
}

/// The output shape `[N, C, OH, OW]` of [`Var::adaptive_avg_pool2d`] over an image `input`
/// `[N, C, H, W]` for `output = (OH, OW)`, without computing it: the error
/// `try_adaptive_avg_pool2d` would return when a size is zero or the output, or a step on the
/// way to it, would be too large to hold.
///
/// ```
/// use tapegrad::ops::pooling::adaptive_avg_pool2d_output_shape;
/// assert_eq!(adaptive_avg_pool2d_output_shape(&[2, 3, 7, 7], (1, 1)).unwrap(), [2, 3, 1, 1]);
/// assert!(adaptive_avg_pool2d_output_shape(&[2, 3, 7, 7], (1 << 62, 1 << 62)).is_err());
/// ```
pub fn adaptive_avg_pool2d_output_shape(input: &[usize], output: (usize, usize)) -> Result<[usize; 4]> {
    const OP: &str = "adaptive_avg_pool2d";
    let [n, c, h, w] = image_shape(OP, input)?;
    if output.0 == 0 || output.1 == 0 || h == 0 || w == 0 {
        let expected =
            format!("a non-empty image [N, C, H, W] and an output size {output:?} of at least (1, 1)");
        return Err(Error::shape(OP, &[&[n, c, h, w]], expected));
    }
    let (oh, ow) = output;
    // the result, the averaging matrices and the product between them
    for shape in [[n, c, oh, ow], [1, 1, oh, h], [1, 1, ow, w], [n, c, h, ow]] {
        buffers::elements::<f64>(OP, &shape)?;
    }
    Ok([n, c, oh, ow])
}

var_methods! {
    /// The largest element of each window of an NCHW image `[N, C, H, W]`, per channel:
    /// `[N, C, OH, OW]`. Padding never wins (it counts as −∞, as in PyTorch) and may be at most
    /// half the kernel.
    ///
    /// The gradient goes to the window's largest element. **Ties:** the first largest in the
    /// window's row-major order gets all of it (PyTorch's CPU kernel does the same); a NaN
    /// wins over any number.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::{Tape, Window};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(array![[[[1.0, 2.0, 5.0, 0.0], [3.0, 4.0, 1.0, 1.0], [0.0, 0.0, 7.0, 7.0], [9.0, 0.0, 7.0, 7.0]]]]);
    /// let y = x.max_pool2d(Window::pool((2, 2)));
    /// assert_eq!(y.to_array(), array![[[[4.0, 5.0], [9.0, 7.0]]]].into_dyn());
    /// let g = y.sum().backward();
    /// // the tie of four 7s sends the gradient to the first one
    /// assert_eq!(g[x].to_array(), array![[[[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]]].into_dyn());
    /// ```
    pub fn max_pool2d / try_max_pool2d(self, window: Window) -> Self {
        let [_, _, oh, ow] = max_pool2d_output_shape(&self.shape(), window)?;
        try_apply(MaxPool2d { window, out: (oh, ow), indices: OnceCell::new() }, [self])
    }

    /// The mean of each window of an NCHW image `[N, C, H, W]`, per channel: `[N, C, OH, OW]`.
    /// Padding counts as zeros and the divisor is always `KH·KW` (PyTorch's default,
    /// `count_include_pad=True`); padding may be at most half the kernel, and dilation must be 1.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::{Tape, Window};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(array![[[[1.0, 2.0], [3.0, 6.0]]]]);
    /// assert_eq!(x.avg_pool2d(Window::pool((2, 2))).to_array(), array![[[[3.0]]]].into_dyn());
    /// // with padding 1 and stride 1, the corner window holds one pixel and three zeros
    /// let padded = Window { padding: (1, 1), stride: (1, 1), ..Window::pool((2, 2)) };
    /// assert_eq!(x.avg_pool2d(padded).to_array()[[0, 0, 0, 0]], 0.25);
    /// ```
    pub fn avg_pool2d / try_avg_pool2d(self, window: Window) -> Self {
        let [n, c, oh, ow] = avg_pool2d_output_shape(&self.shape(), window)?;
        let [h, w] = [self.shape()[2], self.shape()[3]];
        let (kh, kw) = window.kernel;
        let mut filter = buffers::try_buffer("avg_pool2d", kh * kw)?;
        filter.resize(kh * kw, F::one() / F::of((kh * kw) as f64));
        let filter = ArrayD::from_shape_vec(IxDyn(&[1, 1, kh, kw]), filter).expect("KH·KW values");
        let options =
            crate::ConvOptions { stride: window.stride, padding: window.padding, ..Default::default() };
        let planes = self.try_reshape(&[n * c, 1, h, w])?;
        planes.try_conv2d(self.tape().constant(filter), None, options)?.try_reshape(&[n, c, oh, ow])
    }

    /// Averages an NCHW image `[N, C, H, W]` down to `[N, C, OH, OW]` for any output size, with
    /// PyTorch's bins: output row `i` averages input rows `⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉` (bins
    /// overlap when `OH` does not divide `H`). `(1, 1)` is global average pooling.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(array![[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]]);
    /// assert_eq!(x.adaptive_avg_pool2d((1, 1)).to_array(), array![[[[3.5]]]].into_dyn());
    /// // three columns into two bins: columns 0..2 and 1..3
    /// assert_eq!(x.adaptive_avg_pool2d((1, 2)).to_array(), array![[[[3.0, 4.0]]]].into_dyn());
    /// ```
    pub fn adaptive_avg_pool2d / try_adaptive_avg_pool2d(self, output: (usize, usize)) -> Self {
        adaptive_avg_pool2d_output_shape(&self.shape(), output)?;
        let [n, c, h, w] = image_shape("adaptive_avg_pool2d", &self.shape())?;
        let tape = self.tape();
        // [N·C·H, W]·[W, OW], then [OH, H]·[N·C, H, OW]
        let columns = self
            .try_reshape(&[n * c * h, w])?
            .try_matmul(tape.constant(bins::<F>(w, output.1)?.reversed_axes()))?;
        let rows = tape.constant(bins::<F>(h, output.0)?).try_matmul(columns.try_reshape(&[
            n * c,
            h,
            output.1,
        ])?)?;
        rows.try_reshape(&[n, c, output.0, output.1])
    }
}

/// The averaging matrix `[out, len]` of adaptive pooling: row `i` is `1/size` over the bin
/// `⌊i·len/out⌋ .. ⌈(i+1)·len/out⌉`.
/// An error when it cannot be allocated.
fn bins<F: Float>(len: usize, out: usize) -> Result<Array2<F>> {
    let zeros = buffers::try_zeros("adaptive_avg_pool2d", out * len)?; // checked by the output shape
    let mut matrix = Array2::from_shape_vec((out, len), zeros).expect("out·len zeros");
    // in u128, where i·len cannot overflow; each bin lies in 0..len
    let (len128, out128) = (len as u128, out as u128);
    for i in 0..out {
        let i = i as u128;
        let (start, end) = ((i * len128 / out128) as usize, ((i + 1) * len128).div_ceil(out128) as usize);
        let i = i as usize;
        let share = F::one() / F::of((end - start) as f64);
        for j in start..end {
            matrix[[i, j]] = share;
        }
    }
    Ok(matrix)
}

/// Max pooling of an NCHW image: each window's largest element (`kernels::pooling`). The
/// forward pass keeps where each came from, so the gradient puts the output's gradient back
/// there.
#[derive(Debug)]
struct MaxPool2d {
    window: Window,
    out: (usize, usize),
    /// The flat input index of each output element, set by the forward pass.
    indices: OnceCell<Rc<Indices>>,
}

impl<F: Float> Op<F> for MaxPool2d {
    fn name(&self) -> &'static str {
        "max_pool2d"
    }
    fn forward(&self, x: &[&Value<F>]) -> Result<Value<F>> {
        let shape: [usize; 4] = x[0].shape().try_into().expect("checked by max_pool2d");
        let view = x[0].view();
        let input = view.as_standard_layout();
        let (indices, values) =
            window_maxima(input.as_slice().expect("standard layout"), shape, &self.window, self.out)?;
        let _ = self.indices.set(Rc::new(indices.into()));
        Ok(Value::from_buffer(&[shape[0], shape[1], self.out.0, self.out.1], values))
    }
    // dx = put_add(gy, indices, shape(x))
    fn backward<'a>(&self, cx: &Context<'a, F>, gy: Var<'a, F>) -> Grads<'a, F> {
        let indices = self.indices.get().expect("set by the forward pass").clone();
        crate::grads![apply(PutAdd { indices, shape: cx.input_shape(0) }, [gy])]
    }
}

#[cfg(test)]
pub(crate) fn cases() -> Vec<crate::ops::cases::Case> {
    use crate::ops::cases::*;
    vec![
        crate::case!("max_pool2d", pool_operands(true), |x, p| x[0].max_pool2d(pool_window(&p.ints))),
        crate::case!("avg_pool2d", pool_operands(false), |x, p| x[0].avg_pool2d(pool_window(&p.ints))),
        crate::case!("adaptive_avg_pool2d", adaptive_pool_operands(), |x, p| {
            x[0].adaptive_avg_pool2d((p.ints[0], p.ints[1]))
        }),
    ]
}

/// The window in `ints = [KH, KW, SH, SW, PH, PW, DH, DW]`.
#[cfg(test)]
fn pool_window(i: &[usize]) -> Window {
    Window { kernel: (i[0], i[1]), stride: (i[2], i[3]), padding: (i[4], i[5]), dilation: (i[6], i[7]) }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array4, ArrayD, IxDyn, array};

    use super::Window;
    use crate::Tape;

    /// Direct loops: the max (or the zero-padded mean) over each window's taps.
    fn naive(x: &Array4<f64>, window: Window, max: bool) -> ArrayD<f64> {
        let (n, c, h, w) = x.dim();
        let Window { kernel: (kh, kw), stride, padding, dilation } = window;
        let size = |n: usize, k: usize, s: usize, p: usize, d: usize| (n + 2 * p - d * (k - 1) - 1) / s + 1;
        let oh = size(h, kh, stride.0, padding.0, dilation.0);
        let ow = size(w, kw, stride.1, padding.1, dilation.1);
        ArrayD::from_shape_fn(IxDyn(&[n, c, oh, ow]), |i| {
            let mut taps = Vec::new();
            for u in 0..kh {
                for v in 0..kw {
                    let py = (i[2] * stride.0 + u * dilation.0) as isize - padding.0 as isize;
                    let px = (i[3] * stride.1 + v * dilation.1) as isize - padding.1 as isize;
                    let inside = (0..h as isize).contains(&py) && (0..w as isize).contains(&px);
                    taps.push(if inside { Some(x[[i[0], i[1], py as usize, px as usize]]) } else { None });
                }
            }
            if max {
                taps.iter().flatten().fold(f64::NEG_INFINITY, |m, &v| m.max(v))
            } else {
                taps.iter().map(|t| t.unwrap_or(0.0)).sum::<f64>() / taps.len() as f64
            }
        })
    }

    #[test]
    fn pooling_agrees_with_direct_loops() {
        let tape = Tape::<f64>::new();
        let x = Array4::from_shape_fn((2, 3, 7, 6), |(a, b, c, d)| {
            ((a * 97 + b * 31 + c * 7 + d) as f64 * 0.71).sin()
        });
        for (kernel, stride, padding, dilation) in [
            ((2, 2), (2, 2), (0, 0), (1, 1)),
            ((3, 2), (1, 2), (1, 1), (1, 1)),
            ((3, 3), (2, 1), (1, 0), (1, 1)),
            ((2, 3), (3, 1), (0, 1), (2, 1)),
        ] {
            let window = Window { kernel, stride, padding, dilation };
            let y = tape.constant(x.clone()).max_pool2d(window).to_array();
            assert_eq!(y, naive(&x, window, true), "max {window:?}");
            if dilation == (1, 1) {
                let y = tape.constant(x.clone()).avg_pool2d(window).to_array();
                let error = (&y - &naive(&x, window, false)).iter().fold(0.0f64, |m, e| m.max(e.abs()));
                assert!(error < 1e-15, "avg {window:?}: {error}");
            }
        }
    }

    /// Kernel 3, stride 2 over 5 columns with padding 1: windows −1..2, 1..4, 3..6, each
    /// divided by 3 whatever the padding holds (PyTorch: `F.avg_pool2d(x, (1, 3), (1, 2), (0, 1))`
    /// on `[1, 2, 3, 4, 5]` gives `[1, 3, 3]`).
    #[test]
    fn average_pooling_counts_padding_as_pytorch_does() {
        let tape = Tape::<f64>::new();
        let x = tape.var(array![[[[1.0, 2.0, 3.0, 4.0, 5.0]]]]);
        let window = Window { kernel: (1, 3), stride: (1, 2), padding: (0, 1), dilation: (1, 1) };
        assert_eq!(x.avg_pool2d(window).to_array(), array![[[[1.0, 3.0, 3.0]]]].into_dyn());
        let max = x.max_pool2d(window);
        assert_eq!(max.to_array(), array![[[[2.0, 4.0, 5.0]]]].into_dyn());
        // the gradient of max pooling lands once per window on the winner
        assert_eq!(max.sum().backward()[x].to_array(), array![[[[0.0, 1.0, 0.0, 1.0, 1.0]]]].into_dyn());
    }

    #[test]
    fn max_pooling_of_negative_values_ignores_the_padding() {
        let tape = Tape::<f64>::new();
        let x = tape.var(array![[[[-5.0, -3.0], [-4.0, -2.0]]]]);
        let window = Window { padding: (1, 1), ..Window::pool((2, 2)) };
        assert_eq!(x.max_pool2d(window).to_array(), array![[[[-5.0, -3.0], [-4.0, -2.0]]]].into_dyn());
    }

    #[test]
    fn max_pooling_propagates_nan() {
        let tape = Tape::<f64>::new();
        let x = tape.var(array![[[[1.0, f64::NAN], [3.0, 2.0]]]]);
        assert!(x.max_pool2d(Window::pool((2, 2))).to_array()[[0, 0, 0, 0]].is_nan());
    }

    /// 6 rows into 4 bins: 0..2, 1..3, 3..5, 4..6 (PyTorch's `adaptive_avg_pool2d`).
    #[test]
    fn adaptive_bins_overlap_like_pytorchs() {
        let tape = Tape::<f64>::new();
        let x = tape
            .var(ArrayD::from_shape_vec(IxDyn(&[1, 1, 6, 1]), vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]).unwrap());
        let y = x.adaptive_avg_pool2d((4, 1)).to_array();
        assert_eq!(y.into_raw_vec_and_offset().0, vec![1.5, 3.0, 12.0, 24.0]);
        let grid =
            tape.var(ArrayD::from_shape_fn(IxDyn(&[2, 3, 4, 6]), |i| (i[0] + i[1] * i[2] + i[3]) as f64));
        let global = grid.adaptive_avg_pool2d((1, 1)).to_array();
        assert_eq!(
            global,
            grid.to_array()
                .mean_axis(ndarray::Axis(3))
                .unwrap()
                .mean_axis(ndarray::Axis(2))
                .unwrap()
                .insert_axis(ndarray::Axis(2))
                .insert_axis(ndarray::Axis(3))
        );
    }

    #[test]
    fn errors_name_the_op_the_shapes_and_what_was_expected() {
        let tape = Tape::<f64>::new();
        let error = |r: crate::Result<crate::Var<'_, f64>>| r.unwrap_err().to_string();
        let x = tape.var(ArrayD::zeros(IxDyn(&[1, 2, 3, 3])));
        assert_eq!(
            error(x.try_max_pool2d(Window { padding: (2, 0), ..Window::pool((3, 3)) })),
            "max_pool2d: padding (2, 0) is more than half the kernel (3, 3) (dilation (1, 1)); a window would hold \
             padding only"
        );
        assert_eq!(
            error(x.try_max_pool2d(Window::pool((4, 4)))),
            "max_pool2d: got shapes [1, 2, 3, 3], expected an image [N, C, H, W] at least as large as the dilated \
             kernel (4, 4) after padding (0, 0)"
        );
        let one_column = tape.var(ArrayD::zeros(IxDyn(&[1, 1, 1, 1])));
        let gapped = Window { padding: (0, 1), dilation: (1, 2), ..Window::new((1, 2)) };
        assert!(error(one_column.try_max_pool2d(gapped)).starts_with("max_pool2d: a window of Window"));
        assert!(
            error(one_column.try_max_pool2d(gapped))
                .contains("holds padding only in an image [N, C, H, W] = [1, 1, 1, 1]")
        );
        assert_eq!(
            error(tape.var(vec![1.0]).try_avg_pool2d(Window::pool((1, 1)))),
            "avg_pool2d: got shapes [1], expected a 4-D image [N, C, H, W]"
        );
        assert_eq!(
            error(x.try_avg_pool2d(Window { dilation: (2, 1), ..Window::pool((2, 2)) })),
            "avg_pool2d: dilation (2, 1); average pooling takes dilation (1, 1)"
        );
        assert_eq!(
            error(x.try_adaptive_avg_pool2d((0, 2))),
            "adaptive_avg_pool2d: got shapes [1, 2, 3, 3], expected a non-empty image [N, C, H, W] and an output \
             size (0, 2) of at least (1, 1)"
        );
    }
}
