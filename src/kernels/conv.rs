//! Convolution kernels on flat NCHW slices.
//!
//! - [`im2col`] and [`col2im`]: the textbook's whole columns matrix `[N·OH·OW, C·KH·KW]` and its
//!   adjoint;
//! - [`conv2d`], [`conv_transpose2d`] and [`conv2d_weight_grad`]: the convolution without that
//!   matrix. Per image and group, the window's columns go into a small buffer (`[patch,
//!   positions]`) and one GEMM writes the output planes in place, bias included; the
//!   transpose makes columns with one GEMM and adds them back into the image; the filters'
//!   gradient is `gy · columnsᵀ` summed over the images.
//!
//! Large batches share their images between threads (rayon). The filters' gradient adds the
//! images in fixed runs of [`IMAGES_PER_RUN`], then the runs in order, so every result has the
//! same bits on any number of threads.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Slice};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::kernels::gemm::general_mat_mul;
use crate::kernels::window::Window;

/// Below this many multiply-adds a convolution runs on the calling thread: sharing it costs
/// more than it saves.
const PARALLEL_WORK: usize = 1 << 20;

/// The filters' gradient sums images in runs of this many, then the runs in order.
const IMAGES_PER_RUN: usize = 8;

/// Every window of an image `[N, C, H, W]` as a row of `[N·OH·OW, C·KH·KW]`: rows by image and
/// output position, columns by `(c, kh, kw)`; padding reads as zeros.
pub(crate) fn im2col<F: Float>(
    image: &[F],
    shape: [usize; 4],
    window: &Window,
    out: (usize, usize),
) -> Result<Vec<F>> {
    let (rows, cols) = (shape[0] * out.0 * out.1, shape[1] * window.kernel.0 * window.kernel.1);
    let mut columns = buffers::try_zeros("im2col", buffers::elements::<F>("im2col", &[rows, cols])?)?;
    let step = window.dilation.1;
    for_each_tap(window, shape, out, |dst, src, taps| {
        let dst = &mut columns[dst + taps.start..dst + taps.end];
        for (d, s) in dst.iter_mut().zip(image[src..].iter().step_by(step)) {
            *d = *s;
        }
    });
    Ok(columns)
}

/// Sums the rows of `[N·OH·OW, C·KH·KW]` back into an image `[N, C, H, W]`, dropping what
/// falls in the padding: the adjoint of [`im2col`].
pub(crate) fn col2im<F: Float>(
    columns: &[F],
    shape: [usize; 4],
    window: &Window,
    out: (usize, usize),
) -> Result<Vec<F>> {
    let mut image = buffers::try_zeros("col2im", buffers::elements::<F>("col2im", &shape)?)?;
    let step = window.dilation.1;
    for_each_tap(window, shape, out, |dst, src, taps| {
        let from = &columns[dst + taps.start..dst + taps.end];
        for (d, s) in image[src..].iter_mut().step_by(step).zip(from) {
            *d += *s;
        }
    });
    Ok(image)
}

/// Calls `visit(dst, src, taps)` for every kernel row of every window that overlaps the image:
/// the kernel row's taps `taps` (those inside the image) sit at `dst + k` in the flat columns
/// matrix and read the flat image at `src + (k − taps.start)·DW`.
fn for_each_tap(
    window: &Window,
    [n, c, h, w]: [usize; 4],
    (oh, ow): (usize, usize),
    mut visit: impl FnMut(usize, usize, std::ops::Range<usize>),
) {
    let (kh, kw) = window.kernel;
    if [n, c, oh, ow].contains(&0) {
        return; // no tap to visit, however large the other sizes
    }
    let (rows, columns) = (window.rows(h, oh), window.columns(w, ow));
    let cols = c * kh * kw;
    let horizontal: Vec<_> = (0..ow)
        .map(|x| {
            let taps = columns.taps(x);
            let first = columns.pixel(x, taps.start).unwrap_or(0);
            (taps, first)
        })
        .collect();
    for image in 0..n {
        for y in 0..oh {
            for (x, (taps, first)) in horizontal.iter().enumerate() {
                if taps.is_empty() {
                    continue;
                }
                let row = ((image * oh + y) * ow + x) * cols;
                for channel in 0..c {
                    for ky in 0..kh {
                        let Some(iy) = rows.pixel(y, ky) else { continue };
                        let src = ((image * c + channel) * h + iy) * w + first;
                        visit(row + (channel * kh + ky) * kw, src, taps.clone());
                    }
                }
            }
        }
    }
}

/// The sizes one convolution works with: `n` images of `groups · cg` channels `h × w`, read by
/// `groups · og` filters through `window` into `oh × ow` outputs. Per image and group, the
/// filters are a matrix `[og, patch]` and the columns a matrix `[patch, positions]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub n: usize,
    pub groups: usize,
    pub cg: usize,
    pub og: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub window: Window,
}

impl Geometry {
    /// The geometry of a convolution of `image` `[N, C, H, W]` by `weight` `[O, C/groups, KH, KW]`;
    /// an error naming `op` and `shapes` when they do not fit.
    pub(crate) fn new(
        op: &'static str,
        window: Window,
        groups: usize,
        image: &[usize],
        weight: &[usize],
        shapes: &[&[usize]],
        expected: &str,
    ) -> Result<Self> {
        let fits = groups > 0
            && image.len() == 4
            && weight.len() == 4
            && weight[0].is_multiple_of(groups)
            && weight[1].checked_mul(groups) == Some(image[1])
            && (weight[2], weight[3]) == window.kernel;
        if !fits {
            let expected = format!("{expected}, with C and O divisible by groups = {groups}");
            return Err(Error::shape(op, shapes, expected));
        }
        let (oh, ow) = window.output_size(op, image)?;
        // every size the kernels compute from these, checked once: the image, the output and
        // the filters (the columns are checked when they are made)
        buffers::elements::<f64>(op, image)?;
        buffers::elements::<f64>(op, &[image[0], weight[0], oh, ow])?;
        buffers::elements::<f64>(op, weight)?;
        Ok(Geometry {
            n: image[0],
            groups,
            cg: weight[1],
            og: weight[0] / groups,
            h: image[2],
            w: image[3],
            oh,
            ow,
            window,
        })
    }

    fn patch(&self) -> usize {
        self.cg * self.window.kernel.0 * self.window.kernel.1
    }

    fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Image `i`, group `g`'s planes in a flat `[N, C, H, W]` image.
    fn planes<'v, F>(&self, image: &'v [F], i: usize, g: usize) -> &'v [F] {
        let plane = self.h * self.w;
        &image[((i * self.groups + g) * self.cg) * plane..][..self.cg * plane]
    }

    /// Image `i`, group `g`'s outputs `[og, positions]` in a flat `[N, O, OH, OW]` output.
    fn outputs<'v, F>(&self, output: &'v [F], i: usize, g: usize) -> ArrayView2<'v, F> {
        let (rows, cols) = (self.og, self.positions());
        let start = ((i * self.groups + g) * rows) * cols;
        ArrayView2::from_shape((rows, cols), &output[start..start + rows * cols])
            .expect("og·positions values")
    }

    /// Group `g`'s filters `[og, patch]` in a flat `[O, C/groups, KH, KW]` weight.
    fn filters<'v, F>(&self, weight: &'v [F], g: usize) -> ArrayView2<'v, F> {
        let (rows, cols) = (self.og, self.patch());
        ArrayView2::from_shape((rows, cols), &weight[g * rows * cols..(g + 1) * rows * cols])
            .expect("og·patch values")
    }

    /// Whether the work is large enough to share between threads (rayon's pool).
    fn parallel(&self) -> bool {
        let products = [self.groups, self.og, self.patch(), self.positions()]
            .iter()
            .fold(self.n, |p, &x| p.saturating_mul(x));
        self.n > 1 && products >= PARALLEL_WORK
    }

    /// Calls `work(i, image_out, columns)` for every image `i` and its `per_image` values of
    /// `out`, on several threads when the work is large, each with a column buffer of its own;
    /// nothing when `out` is empty. An error naming `op` when the columns are too large to
    /// hold.
    fn each_image<F: Float>(
        &self,
        op: &'static str,
        out: &mut [F],
        per_image: usize,
        work: impl Fn(usize, &mut [F], &mut Vec<F>) + Sync,
    ) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let len = buffers::elements::<F>(op, &[self.patch(), self.positions()])?;
        // the first buffer is reserved here, so that one too large to hold is an error
        let first = buffers::try_scratch::<F>(op, len)?;
        if self.parallel() {
            let first = std::sync::Mutex::new(Some(first));
            let columns = || {
                let first = first.lock().map(|mut f| f.take()).unwrap_or(None);
                first.unwrap_or_else(|| vec![F::zero(); len])
            };
            out.par_chunks_exact_mut(per_image)
                .enumerate()
                .for_each_init(columns, |buffer, (i, image_out)| work(i, image_out, buffer));
        } else {
            let mut buffer = first;
            for (i, image_out) in out.chunks_exact_mut(per_image).enumerate() {
                work(i, image_out, &mut buffer);
            }
        }
        Ok(())
    }

    /// The columns `[patch, positions]` of `planes` (one image, one group): row `(c, ky, kx)`,
    /// column `(oy, ox)`, zero where the window reads padding.
    fn fill_columns<F: Float>(&self, planes: &[F], columns: &mut [F]) {
        let (kh, kw) = self.window.kernel;
        let (rows, cols) = (self.window.rows(self.h, self.oh), self.window.columns(self.w, self.ow));
        let (positions, step) = (self.positions(), cols.stride);
        for c in 0..self.cg {
            let plane = &planes[c * self.h * self.w..][..self.h * self.w];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = &mut columns[((c * kh + ky) * kw + kx) * positions..][..positions];
                    // the outputs whose tap kx reads the image, and the column the first reads
                    let inside = cols.outputs(kx);
                    let first = cols.pixel(inside.start, kx).filter(|_| !inside.is_empty());
                    for (oy, out) in row.chunks_exact_mut(self.ow).enumerate() {
                        let (Some(iy), Some(first)) = (rows.pixel(oy, ky), first) else {
                            out.fill(F::zero());
                            continue;
                        };
                        out[..inside.start].fill(F::zero());
                        out[inside.end..].fill(F::zero());
                        let source = &plane[iy * self.w + first..];
                        let out = &mut out[inside.clone()];
                        if step == 1 {
                            out.copy_from_slice(&source[..out.len()]);
                        } else {
                            for (o, &v) in out.iter_mut().zip(source.iter().step_by(step)) {
                                *o = v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds `columns` back into the `planes` they were read from: the adjoint of
    /// [`fill_columns`](Self::fill_columns); what fell in the padding is dropped.
    fn add_columns<F: Float>(&self, columns: &[F], planes: &mut [F]) {
        let (kh, kw) = self.window.kernel;
        let (rows, cols) = (self.window.rows(self.h, self.oh), self.window.columns(self.w, self.ow));
        let positions = self.positions();
        for c in 0..self.cg {
            let plane = &mut planes[c * self.h * self.w..][..self.h * self.w];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = &columns[((c * kh + ky) * kw + kx) * positions..][..positions];
                    let inside = cols.outputs(kx);
                    let Some(first) = cols.pixel(inside.start, kx).filter(|_| !inside.is_empty()) else {
                        continue;
                    };
                    for (oy, out) in row.chunks_exact(self.ow).enumerate() {
                        let Some(iy) = rows.pixel(oy, ky) else { continue };
                        let target = &mut plane[iy * self.w + first..];
                        for (t, &v) in target.iter_mut().step_by(cols.stride).zip(&out[inside.clone()]) {
                            *t += v;
                        }
                    }
                }
            }
        }
    }
}

/// A buffer of `n` images of `channels` planes of `plane` values, each plane set to its
/// channel's bias (zeros without one); an error naming `op` when it cannot be allocated.
fn with_bias<F: Float>(
    op: &'static str,
    n: usize,
    plane: usize,
    bias: Option<&[F]>,
    channels: usize,
) -> Result<Vec<F>> {
    let len = n * channels * plane; // checked by `Geometry::new`
    match bias {
        None => buffers::try_zeros(op, len),
        Some(b) => {
            let mut out = buffers::try_buffer(op, len)?;
            for _ in 0..n {
                for &v in b {
                    out.extend(std::iter::repeat_n(v, plane));
                }
            }
            Ok(out)
        }
    }
}

/// The convolution of `image` `[N, C, H, W]` by `weight` `[O, C/groups, KH, KW]` plus `bias`
/// `[O]`: `[N, O, OH, OW]`, flat.
pub(crate) fn conv2d<F: Float>(
    geo: &Geometry,
    image: &[F],
    weight: &[F],
    bias: Option<&[F]>,
) -> Result<Vec<F>> {
    let (channels, positions) = (geo.og * geo.groups, geo.positions());
    let mut out = with_bias("conv2d", geo.n, positions, bias, channels)?;
    geo.each_image("conv2d", &mut out, channels * positions, |i, image_out, columns| {
        for g in 0..geo.groups {
            geo.fill_columns(geo.planes(image, i, g), columns);
            let columns =
                ArrayView2::from_shape((geo.patch(), positions), &columns[..]).expect("patch·positions");
            let rows = &mut image_out[g * geo.og * positions..][..geo.og * positions];
            let mut y = ArrayViewMut2::from_shape((geo.og, positions), rows).expect("og·positions");
            general_mat_mul(F::one(), &geo.filters(weight, g), &columns, F::one(), &mut y);
        }
    })?;
    Ok(out)
}

/// The transposed convolution of `input` `[N, O, OH, OW]` by `weight` `[O, C/groups, KH, KW]`
/// plus `bias` `[C]`, into images `[N, C, H, W]` (flat) of the geometry's size.
pub(crate) fn conv_transpose2d<F: Float>(
    geo: &Geometry,
    input: &[F],
    weight: &[F],
    bias: Option<&[F]>,
) -> Result<Vec<F>> {
    let (channels, positions, plane) = (geo.cg * geo.groups, geo.positions(), geo.h * geo.w);
    let mut out = with_bias("conv_transpose2d", geo.n, plane, bias, channels)?;
    if geo.og == 0 {
        return Ok(out); // no input channels: the bias alone
    }
    geo.each_image("conv_transpose2d", &mut out, channels * plane, |i, image_out, buffer| {
        for g in 0..geo.groups {
            // [patch, og]·[og, positions]
            let mut columns = ArrayViewMut2::from_shape((geo.patch(), positions), &mut buffer[..])
                .expect("patch·positions");
            let (filters, outputs) = (geo.filters(weight, g), geo.outputs(input, i, g));
            general_mat_mul(F::one(), &filters.t(), &outputs, F::zero(), &mut columns);
            geo.add_columns(buffer, &mut image_out[g * geo.cg * plane..][..geo.cg * plane]);
        }
    })?;
    Ok(out)
}

/// The filters' gradient `[O, C/groups, KH, KW]` (flat) of the convolution of `image`
/// `[N, C, H, W]` whose output has the gradient `gy` `[N, O, OH, OW]`: per image and group,
/// `gy · columnsᵀ`, summed over the images in fixed runs.
pub(crate) fn conv2d_weight_grad<F: Float>(geo: &Geometry, image: &[F], gy: &[F]) -> Result<Vec<F>> {
    const OP: &str = "conv2d_weight_grad";
    let patch = geo.patch(); // the filters' shape is checked by `Geometry::new`
    if geo.n == 0 || patch == 0 || geo.og == 0 {
        return buffers::try_zeros(OP, geo.og * geo.groups * patch); // no image or no filter
    }
    let positions = geo.positions();
    let len = buffers::elements::<F>(OP, &[patch, positions])?;
    buffers::check_room::<F>(OP, len)?; // the columns each run makes
    let partial = |images: std::ops::Range<usize>| {
        let mut dw = Array2::zeros((geo.og * geo.groups, patch));
        let mut columns = vec![F::zero(); len];
        for i in images {
            for g in 0..geo.groups {
                geo.fill_columns(geo.planes(image, i, g), &mut columns);
                let columns =
                    ArrayView2::from_shape((patch, positions), &columns[..]).expect("patch·positions");
                let mut rows = dw.slice_axis_mut(Axis(0), Slice::from(g * geo.og..(g + 1) * geo.og));
                general_mat_mul(F::one(), &geo.outputs(gy, i, g), &columns.t(), F::one(), &mut rows);
            }
        }
        dw
    };
    let runs = (0..geo.n.div_ceil(IMAGES_PER_RUN))
        .map(|r| r * IMAGES_PER_RUN..((r + 1) * IMAGES_PER_RUN).min(geo.n));
    let partials: Vec<Array2<F>> = if geo.parallel() {
        runs.collect::<Vec<_>>().into_par_iter().map(partial).collect()
    } else {
        runs.map(partial).collect()
    };
    let mut dw = Array2::zeros((geo.og * geo.groups, patch));
    for p in &partials {
        dw += p;
    }
    Ok(dw.into_raw_vec_and_offset().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic flat array of `len` values in [−1, 1], different for each seed.
    fn values(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|k| ((k as f64 + seed) * 0.37).sin()).collect()
    }

    /// The columns matrix by its definition: entry `(image, oy, ox; c, ky, kx)` is the pixel the
    /// tap reads, or 0 in the padding.
    fn plain_im2col(
        x: &[f64],
        [n, c, h, w]: [usize; 4],
        window: &Window,
        (oh, ow): (usize, usize),
    ) -> Vec<f64> {
        let Window { kernel: (kh, kw), stride, padding, dilation } = *window;
        let mut out = Vec::new();
        for i in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let py = (oy * stride.0 + ky * dilation.0) as isize - padding.0 as isize;
                                let px = (ox * stride.1 + kx * dilation.1) as isize - padding.1 as isize;
                                let inside = (0..h as isize).contains(&py) && (0..w as isize).contains(&px);
                                let at = ((i * c + ch) * h + py.max(0) as usize) * w + px.max(0) as usize;
                                out.push(if inside { x[at] } else { 0.0 });
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// im2col against its definition, col2im as its adjoint (`⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩`),
    /// and the fused convolution's columns equal to im2col's, over strides, padding and
    /// dilations.
    #[test]
    fn columns_match_the_definition_and_col2im_is_their_adjoint() {
        let shape = [2, 3, 7, 6];
        let x = values(shape.iter().product(), 0.0);
        for (stride, padding, dilation) in
            [((1, 1), (0, 0), (1, 1)), ((2, 3), (1, 2), (2, 1)), ((3, 1), (2, 0), (1, 2))]
        {
            let window = Window { kernel: (3, 2), stride, padding, dilation };
            let out = window.output_size("test", &shape).unwrap();
            let columns = im2col(&x, shape, &window, out).unwrap();
            assert_eq!(columns, plain_im2col(&x, shape, &window, out), "{window:?}");
            let y = values(columns.len(), 1.0);
            let back = col2im(&y, shape, &window, out).unwrap();
            let left: f64 = columns.iter().zip(&y).map(|(a, b)| a * b).sum();
            let right: f64 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!((left - right).abs() < 1e-12 * left.abs().max(1.0), "{window:?}");
            // the fused path's per-image columns [patch, positions] are im2col's rows, transposed
            let geo = Geometry::new("test", window, 1, &shape, &[1, 3, 3, 2], &[], "").unwrap();
            let mut fused = vec![f64::NAN; geo.patch() * geo.positions()];
            geo.fill_columns(geo.planes(&x, 1, 0), &mut fused);
            let (rows, cols) = (geo.positions(), geo.patch());
            for r in 0..rows {
                for k in 0..cols {
                    assert_eq!(fused[k * rows + r], columns[(rows + r) * cols + k], "{window:?}");
                }
            }
        }
    }
}
