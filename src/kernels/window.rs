//! The sliding window over the last two axes of an NCHW image, and its index math, once: which
//! pixel each tap of each window reads. im2col and col2im, the convolution's columns and
//! max pooling all ask [`WindowAxis`] the same two questions, from either side: which taps of
//! an output read the image ([`WindowAxis::taps`]), and which outputs' tap reads the image
//! ([`WindowAxis::outputs`]).
//!
//! Along one axis, output `o`'s tap `t` reads pixel `o·S + t·D − P` of an axis of `L` pixels,
//! or padding when that falls outside `0..L`. Both ranges follow from that one formula, and a
//! test checks them against it.

use std::ops::Range;

use crate::error::{Error, Result};

/// A sliding window over the last two axes of an NCHW image: kernel, stride, zero padding and
/// dilation, each as (rows, columns).
///
/// ```
/// use tapegrad::Window;
/// let w = Window { stride: (2, 2), ..Window::new((3, 3)) };
/// assert_eq!((w.kernel, w.padding, w.dilation), ((3, 3), (0, 0), (1, 1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The kernel's size `(KH, KW)`.
    pub kernel: (usize, usize),
    /// The step between windows.
    pub stride: (usize, usize),
    /// Zeros added on each side.
    pub padding: (usize, usize),
    /// The spacing between kernel taps.
    pub dilation: (usize, usize),
}

impl Window {
    /// A `(KH, KW)` window with stride 1, no padding and dilation 1.
    ///
    /// ```
    /// use tapegrad::Window;
    /// assert_eq!(Window::new((5, 5)).stride, (1, 1));
    /// ```
    pub fn new(kernel: (usize, usize)) -> Self {
        Window { kernel, stride: (1, 1), padding: (0, 0), dilation: (1, 1) }
    }

    /// The output size `(OH, OW)` for an image `[N, C, H, W]`: per axis
    /// `⌊(H + 2P − D(K − 1) − 1)/S⌋ + 1`, computed without overflow; an error naming `op` when
    /// a kernel, stride or dilation is zero, when the image is smaller than the dilated kernel,
    /// or when the padded image `H + 2P` or the dilated kernel `D(K − 1) + 1` exceeds
    /// `usize::MAX` (every index the window reads then fits in a `usize`).
    ///
    /// ```
    /// use tapegrad::Window;
    /// let w = Window { stride: (2, 2), padding: (1, 1), ..Window::new((3, 3)) };
    /// assert_eq!(w.output_size("conv2d", &[1, 1, 28, 28]).unwrap(), (14, 14));
    /// // 2·P would wrap around: an error, not a wrong size
    /// let huge = Window { padding: (1 << 63, 0), ..Window::new((1, 1)) };
    /// assert!(huge.output_size("conv2d", &[1, 1, 3, 3]).unwrap_err().to_string().starts_with("conv2d: "));
    /// ```
    pub fn output_size(&self, op: &'static str, image: &[usize]) -> Result<(usize, usize)> {
        let Window { kernel, stride, padding, dilation } = *self;
        let all = [kernel.0, kernel.1, stride.0, stride.1, dilation.0, dilation.1];
        if all.contains(&0) {
            let message =
                format!("kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be at least 1");
            return Err(Error::argument(op, message));
        }
        let [.., h, w] = *image else {
            return Err(Error::shape(op, &[image], "an image [N, C, H, W]"));
        };
        // in u128, where none of these can overflow (each term is below 2^129)
        let padded_and_span = |n: usize, k: usize, p: usize, d: usize| {
            (n as u128 + 2 * p as u128, d as u128 * (k as u128 - 1) + 1)
        };
        let axes =
            [(h, kernel.0, stride.0, padding.0, dilation.0), (w, kernel.1, stride.1, padding.1, dilation.1)];
        let [rows, cols] = axes.map(|(n, k, s, p, d)| {
            let (padded, span) = padded_and_span(n, k, p, d);
            let limit = usize::MAX as u128;
            if padded > limit || span > limit {
                return Err(());
            }
            padded.checked_sub(span).map(|room| (room / s as u128 + 1) as usize).ok_or(())
        });
        if let (Ok(rows), Ok(cols)) = (rows, cols) {
            return Ok((rows, cols));
        }
        let span = |k: usize, d: usize| d as u128 * (k as u128 - 1) + 1;
        let dilated = (span(kernel.0, dilation.0), span(kernel.1, dilation.1));
        let fits = |x: u128| x <= usize::MAX as u128;
        let padded = (h as u128 + 2 * padding.0 as u128, w as u128 + 2 * padding.1 as u128);
        let expected = if fits(dilated.0) && fits(dilated.1) && fits(padded.0) && fits(padded.1) {
            format!(
                "an image [N, C, H, W] at least as large as the dilated kernel {dilated:?} after padding {padding:?}"
            )
        } else {
            format!(
                "a dilated kernel {dilated:?} and a padded image (H + 2P, W + 2P) = {padded:?} within usize::MAX \
                 (kernel {kernel:?}, padding {padding:?}, dilation {dilation:?})"
            )
        };
        Err(Error::shape(op, &[image], expected))
    }

    /// The window along the rows of an image `h` pixels high, with `oh` outputs.
    pub(crate) fn rows(&self, h: usize, oh: usize) -> WindowAxis {
        let Window { kernel, stride, padding, dilation } = *self;
        WindowAxis {
            len: h,
            outputs: oh,
            kernel: kernel.0,
            stride: stride.0,
            padding: padding.0,
            dilation: dilation.0,
        }
    }

    /// The window along the columns of an image `w` pixels wide, with `ow` outputs.
    pub(crate) fn columns(&self, w: usize, ow: usize) -> WindowAxis {
        let Window { kernel, stride, padding, dilation } = *self;
        WindowAxis {
            len: w,
            outputs: ow,
            kernel: kernel.1,
            stride: stride.1,
            padding: padding.1,
            dilation: dilation.1,
        }
    }
}

/// The window along one axis of `len` pixels, with `outputs` windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowAxis {
    pub len: usize,
    pub outputs: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl WindowAxis {
    /// The pixel that output `o`'s tap `t` reads, `None` in the padding.
    #[inline]
    pub(crate) fn pixel(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation).checked_sub(self.padding).filter(|&i| i < self.len)
    }

    /// The taps of output `o` that read the image (those between read padding): consecutive,
    /// since the pixel grows with the tap; empty when the window lies in the padding.
    pub(crate) fn taps(&self, o: usize) -> Range<usize> {
        let start = o * self.stride;
        let first = self.padding.saturating_sub(start).div_ceil(self.dilation);
        let end = (self.padding + self.len).saturating_sub(start).div_ceil(self.dilation).min(self.kernel);
        first..end.max(first)
    }

    /// The outputs whose tap `t` reads the image: consecutive, since the pixel grows with the
    /// output.
    pub(crate) fn outputs(&self, t: usize) -> Range<usize> {
        let offset = t * self.dilation;
        let lo = self.padding.saturating_sub(offset).div_ceil(self.stride);
        let hi = (self.len + self.padding).saturating_sub(offset).div_ceil(self.stride).min(self.outputs);
        lo.min(hi)..hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ranges hold exactly the (output, tap) pairs whose pixel is inside, over many
    /// windows and axis lengths.
    #[test]
    fn taps_and_outputs_are_the_pairs_that_read_the_image() {
        for len in 1usize..9 {
            for kernel in 1..5 {
                for stride in 1..4 {
                    for dilation in 1..4 {
                        for padding in 0..5 {
                            let span = dilation * (kernel - 1) + 1;
                            let Some(room) = (len + 2 * padding).checked_sub(span) else { continue };
                            let axis = WindowAxis {
                                len,
                                outputs: room / stride + 1,
                                kernel,
                                stride,
                                padding,
                                dilation,
                            };
                            let reads = |o: usize, t: usize| {
                                let at = (o * stride + t * dilation) as isize - padding as isize;
                                (0..len as isize).contains(&at)
                            };
                            for o in 0..axis.outputs {
                                let taps: Vec<usize> = (0..kernel).filter(|&t| reads(o, t)).collect();
                                assert_eq!(axis.taps(o).collect::<Vec<_>>(), taps, "{axis:?}, output {o}");
                            }
                            for t in 0..kernel {
                                let outputs: Vec<usize> =
                                    (0..axis.outputs).filter(|&o| reads(o, t)).collect();
                                assert_eq!(axis.outputs(t).collect::<Vec<_>>(), outputs, "{axis:?}, tap {t}");
                                for o in 0..axis.outputs {
                                    let pixel = reads(o, t).then(|| o * stride + t * dilation - padding);
                                    assert_eq!(axis.pixel(o, t), pixel);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
