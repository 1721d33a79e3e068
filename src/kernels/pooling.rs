//! Max pooling's kernel: each window's largest element and where it came from.
//!
//! The general path scans each window's in-image taps ([`WindowAxis`]) without data-dependent
//! branches. Windows that tile the image 2 or 3 wide (stride = kernel, no padding, no
//! dilation: nearly every network's) take a path that reads a whole row of windows at once in
//! vector registers. Both choose the same element: the first largest in the window's row-major
//! order, a NaN over any number; a test checks the fast path against that rule. Large inputs
//! share their planes between threads.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::buffers;
use crate::kernels::vector::with_widest_vectors;
use crate::kernels::window::{Window, WindowAxis};

/// Below this many input pixels max pooling runs on the calling thread.
const PARALLEL_PIXELS: usize = 1 << 16;

/// The flat index of each window's largest element, in output order `[N, C, OH, OW]`, and the
/// element itself: the first
/// largest in the window's row-major order, a NaN over any number. Padding is skipped; a window
/// whose dilated taps all fall in the padding (an image smaller than the dilated kernel) is an
/// error.
pub(crate) fn window_maxima<F: Float>(
    x: &[F],
    [n, c, h, w]: [usize; 4],
    window: &Window,
    (oh, ow): (usize, usize),
) -> Result<(Vec<usize>, Vec<F>)> {
    let Window { padding, dilation, .. } = *window;
    if n == 0 || c == 0 {
        return Ok((Vec::new(), Vec::new())); // no plane: nothing to scan, however large OH·OW
    }
    // per output row (column): the first in-image input row (column) and how many taps read
    // the image, dilation apart
    let taps = |axis: WindowAxis| -> Vec<(usize, usize)> {
        let first = |o: usize| axis.pixel(o, axis.taps(o).start).unwrap_or(0);
        (0..axis.outputs).map(|o| (first(o), axis.taps(o).len())).collect()
    };
    let rows = taps(window.rows(h, oh));
    let cols = taps(window.columns(w, ow));
    if rows.iter().chain(&cols).any(|&(_, count)| count == 0) {
        let message = format!(
            "a window of {window:?} holds padding only in an image [N, C, H, W] = {:?}; expected an image at \
             least as large as the dilated kernel",
            [n, c, h, w]
        );
        return Err(Error::argument("max_pool2d", message));
    }
    let tiled = window.stride == window.kernel && padding == (0, 0) && dilation == (1, 1);
    // one plane's windows, row by row
    let plane_maxima = |plane: usize, out: &mut [usize], taken: &mut [F]| {
        let base = plane * h * w;
        let pixels = &x[base..base + h * w];
        let fast = tiled
            && with_widest_vectors(
                #[inline(always)]
                || tiled_plane_maxima(pixels, base, w, window.kernel, out, taken),
            );
        if fast {
            return;
        }
        let mut slots = out.iter_mut().zip(taken);
        for &(row, row_taps) in &rows {
            for &(col, col_taps) in &cols {
                let mut best = base + row * w + col;
                let mut largest = x[best];
                let mut first_nan = None;
                for a in 0..row_taps {
                    let start = base + (row + a * dilation.0) * w + col;
                    for b in 0..col_taps {
                        let i = start + b * dilation.1;
                        let v = x[i];
                        // no branch on the comparison, which is unpredictable: i ≥ best (the scan
                        // moves forward) and the running maximum is a `max` instruction
                        best += (i - best) * (v > largest) as usize;
                        largest = largest.max(v);
                        if v.is_nan() && first_nan.is_none() {
                            first_nan = Some(i); // rare, so predicted
                        }
                    }
                }
                let (slot, value) = slots.next().expect("one slot per window");
                *slot = first_nan.unwrap_or(best);
                *value = x[*slot];
            }
        }
    };
    // recycled buffers (a fresh one each step is faulted in page by page); every window's index
    // and value are written below
    let len = buffers::elements::<F>("max_pool2d", &[n, c, oh, ow])?;
    let mut indices = buffers::try_to_overwrite::<usize>("max_pool2d", len)?;
    let mut values = buffers::try_to_overwrite("max_pool2d", len)?;
    let planes = oh * ow;
    if n * c > 1 && x.len() >= PARALLEL_PIXELS {
        let each = indices.par_chunks_mut(planes).zip(values.par_chunks_mut(planes));
        each.enumerate().for_each(|(plane, (out, taken))| plane_maxima(plane, out, taken));
    } else {
        let each = indices.chunks_mut(planes).zip(values.chunks_mut(planes));
        each.enumerate().for_each(|(plane, (out, taken))| plane_maxima(plane, out, taken));
    }
    Ok((indices, values))
}

/// [`window_maxima`] for one plane `[H, W]` (starting at flat index `base`) whose windows
/// `(KH, KW)` tile it (stride = kernel, no padding, no dilation) and are 2×2 or 3×3, the
/// kernels of nearly every network: one loop over an output row's windows, each reading its
/// taps as constants apart, so that the loop runs across windows in vector registers. A
/// later tap wins only when strictly larger, so ties go to the first, as on the general path.
/// Returns `false`, having written nothing, for other kernels, and `false` when the plane
/// holds a NaN, which the general path places.
///
/// NOTE: looping over taps outside and windows inside, with each window's running maximum in
/// arrays, is slower (`cargo bench --bench conv_step`): its loads `KW` apart compile to one
/// insert per element, and its masked stores to the arrays stall the next tap's loads.
#[inline(always)]
fn tiled_plane_maxima<F: Float>(
    pixels: &[F],
    base: usize,
    w: usize,
    kernel: (usize, usize),
    out: &mut [usize],
    taken: &mut [F],
) -> bool {
    match kernel {
        (2, 2) => tiled_rows::<F, 2, 2>(pixels, base, w, out, taken),
        (3, 3) => tiled_rows::<F, 3, 3>(pixels, base, w, out, taken),
        _ => false,
    }
}

/// [`tiled_plane_maxima`] for windows `(KH, KW)`, both constants.
#[inline(always)]
fn tiled_rows<F: Float, const KH: usize, const KW: usize>(
    pixels: &[F],
    base: usize,
    w: usize,
    out: &mut [usize],
    taken: &mut [F],
) -> bool {
    let ow = w / KW;
    let mut nan = false;
    for (r, (out, taken)) in out.chunks_exact_mut(ow).zip(taken.chunks_exact_mut(ow)).enumerate() {
        let rows: [&[[F; KW]]; KH] =
            std::array::from_fn(|a| &pixels[(r * KH + a) * w..][..ow * KW].as_chunks::<KW>().0[..ow]);
        let (out, taken) = (&mut out[..ow], &mut taken[..ow]);
        let corner = base + r * KH * w;
        for c in 0..ow {
            let (mut largest, mut tap) = (rows[0][c][0], 0u32);
            for (a, row) in rows.iter().enumerate() {
                for (b, &v) in row[c].iter().enumerate() {
                    nan |= v.is_nan();
                    let better = v > largest;
                    largest = if better { v } else { largest };
                    tap = if better { (a * KW + b) as u32 } else { tap };
                }
            }
            let (a, b) = (tap as usize / KW, tap as usize % KW);
            out[c] = corner + a * w + c * KW + b;
            taken[c] = largest;
        }
    }
    !nan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiling windows (2×2 and 3×3 take the vectorised path, 3×2 and 1×4 the general one)
    /// choose the same element as the rule says: the first largest in the window's row-major
    /// order, a NaN over any number; with many ties (values from a set of three) and a NaN in
    /// some planes, over planes whose sides the kernel does not all divide.
    #[test]
    fn tiled_max_pooling_picks_the_first_largest_and_a_nan() {
        for (kernel, (h, w)) in
            [((2, 2), (6, 8)), ((2, 2), (7, 9)), ((3, 3), (9, 7)), ((3, 2), (7, 6)), ((1, 4), (3, 9))]
        {
            let (n, c) = (2, 3);
            let mut x: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7919) % 3) as f32).collect();
            x[h * w + 5] = f32::NAN; // plane 1
            x[4 * h * w + w + 1] = f32::NAN; // plane 4, two NaNs
            x[4 * h * w + w + 2] = f32::NAN;
            let window = Window { kernel, stride: kernel, padding: (0, 0), dilation: (1, 1) };
            let (oh, ow) = (h / kernel.0, w / kernel.1);
            let (indices, values) = window_maxima(&x, [n, c, h, w], &window, (oh, ow)).unwrap();
            let mut slot = 0;
            for plane in 0..n * c {
                for (r, col) in (0..oh).flat_map(|r| (0..ow).map(move |col| (r, col))) {
                    let taps = (0..kernel.0).flat_map(|a| (0..kernel.1).map(move |b| (a, b)));
                    let flat: Vec<usize> = taps
                        .map(|(a, b)| plane * h * w + (r * kernel.0 + a) * w + col * kernel.1 + b)
                        .collect();
                    let nan = flat.iter().copied().find(|&i| x[i].is_nan());
                    let first_largest =
                        flat.iter().copied().fold(flat[0], |best, i| if x[i] > x[best] { i } else { best });
                    let expected = nan.unwrap_or(first_largest);
                    assert_eq!(
                        indices[slot], expected,
                        "kernel {kernel:?}, plane {plane}, window ({r}, {col})"
                    );
                    assert_eq!(values[slot].to_bits(), x[expected].to_bits());
                    slot += 1;
                }
            }
        }
    }
}
