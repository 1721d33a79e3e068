//! The input strategies of the op registry: where each op's inputs are drawn from (domains kept
//! away from kinks, ties and poles) and the shapes, axes, indices and windows it takes.

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use proptest::collection::vec;
use proptest::prelude::*;

use super::Sample;

/// Where an op's inputs are drawn from, away from its kinks and poles.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Domain {
    Uniform(f64, f64),
    /// `[-hi, -gap] ∪ [gap, hi]`.
    AwayFromZero(f64, f64),
    /// Multiples of 0.5 plus an offset in `[-2, 2]`: two grids with different offsets never tie.
    Grid(f64),
}

pub(crate) const ANY: Domain = Domain::Uniform(-2.0, 2.0);
pub(crate) const WIDE: Domain = Domain::Uniform(-6.0, 6.0);
pub(crate) const POSITIVE: Domain = Domain::Uniform(0.2, 3.0);
pub(crate) const NONZERO: Domain = Domain::AwayFromZero(2.0, 0.1);
pub(crate) const GRID: Domain = Domain::Grid(0.0);
pub(crate) const GRID_SHIFTED: Domain = Domain::Grid(0.25);

fn value(d: Domain) -> BoxedStrategy<f64> {
    match d {
        Domain::Uniform(lo, hi) => (lo..hi).boxed(),
        Domain::AwayFromZero(hi, gap) => {
            (gap..hi, any::<bool>()).prop_map(|(v, s)| if s { v } else { -v }).boxed()
        }
        Domain::Grid(offset) => (-4i32..=4).prop_map(move |k| k as f64 * 0.5 + offset).boxed(),
    }
}

fn array(shape: Vec<usize>, d: Domain) -> impl Strategy<Value = ArrayD<f64>> {
    let n: usize = shape.iter().product();
    vec(value(d), n).prop_map(move |v| ArrayD::from_shape_vec(IxDyn(&shape), v).expect("n values"))
}

fn shape(ranks: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..=3, ranks)
}

/// A full shape and one that broadcasts to it (a suffix, some axes set to 1).
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape(0..=4)
        .prop_flat_map(|s| {
            let n = s.len();
            (Just(s), 0..=n, vec(any::<bool>(), n))
        })
        .prop_map(|(full, keep, ones)| {
            let small = (full.len() - keep..full.len()).map(|i| if ones[i] { 1 } else { full[i] }).collect();
            (full, small)
        })
}

pub(crate) fn unary(d: Domain) -> impl Strategy<Value = Sample> {
    shape(0..=4).prop_flat_map(move |s| array(s, d)).prop_map(|a| Sample::new(vec![a]))
}

pub(crate) fn with_scalar(d: Domain, lo: f64, hi: f64) -> impl Strategy<Value = Sample> {
    (unary(d), lo..hi).prop_map(|(s, c)| Sample { scalar: c, ..s })
}

pub(crate) fn binary(da: Domain, db: Domain) -> impl Strategy<Value = Sample> {
    (broadcast_pair(), any::<bool>())
        .prop_flat_map(move |((full, small), swap)| {
            let (sa, sb) = if swap { (small, full) } else { (full, small) };
            (array(sa, da), array(sb, db))
        })
        .prop_map(|(a, b)| Sample::new(vec![a, b]))
}

/// An array of a full shape, with `ints` a shape it sums down to.
pub(crate) fn broadcast_source(d: Domain) -> impl Strategy<Value = Sample> {
    broadcast_pair()
        .prop_flat_map(move |(full, small)| (array(full, d), Just(small)))
        .prop_map(|(a, small)| Sample { ints: small, ..Sample::new(vec![a]) })
}

pub(crate) fn permutation(d: Domain) -> impl Strategy<Value = Sample> {
    shape(0..=4)
        .prop_flat_map(move |s| {
            let axes: Vec<usize> = (0..s.len()).collect();
            (array(s, d), Just(axes).prop_shuffle())
        })
        .prop_map(|(a, axes)| Sample { ints: axes, ..Sample::new(vec![a]) })
}

/// Per-axis slices with steps, negative starts and single indices, and sometimes a new axis.
pub(crate) fn slicing(d: Domain) -> impl Strategy<Value = Sample> {
    shape(1..=3)
        .prop_flat_map(move |s| {
            let per_axis: Vec<_> = s.iter().map(|&n| (0..n, 0..n, 1isize..=2, 0u8..4)).collect();
            (array(s, d), per_axis, any::<bool>())
        })
        .prop_map(|(a, per_axis, new_axis)| {
            let mut slice: Vec<SliceInfoElem> = per_axis
                .iter()
                .zip(a.shape())
                .map(|(&(i, j, step, kind), &n)| {
                    let (start, end) = (i.min(j) as isize, (i.max(j) + 1) as isize);
                    match kind {
                        0 => SliceInfoElem::Index(i as isize),
                        1 => SliceInfoElem::Slice { start: start - n as isize, end: None, step },
                        _ => SliceInfoElem::Slice { start, end: Some(end), step },
                    }
                })
                .collect();
            if new_axis {
                slice.insert(0, SliceInfoElem::NewAxis);
            }
            Sample { slice, ..Sample::new(vec![a]) }
        })
}

/// An axis and indices along it (repeats allowed): `ints = [axis, indices…]`.
pub(crate) fn selection(d: Domain) -> impl Strategy<Value = Sample> {
    shape(1..=3)
        .prop_flat_map(move |s| {
            let r = s.len();
            (Just(s.clone()), array(s, d), 0..r)
        })
        .prop_flat_map(|(s, a, axis)| (Just(a), Just(axis), vec(0..s[axis], 1..=4)))
        .prop_map(|(a, axis, indices)| {
            let ints = std::iter::once(axis).chain(indices).collect();
            Sample { ints, ..Sample::new(vec![a]) }
        })
}

/// An array and flat indices into it (repeats allowed): `ints = indices`.
pub(crate) fn flat_indices(d: Domain) -> impl Strategy<Value = Sample> {
    unary(d)
        .prop_flat_map(|s| {
            let n = s.inputs[0].len();
            (Just(s), vec(0..n, 1..=6))
        })
        .prop_map(|(s, ints)| Sample { ints, ..s })
}

/// An array of rank ≥ 1 and, for `gather`, `ints = [axis, length along it, raw indices…]`:
/// see [`gather_index`].
pub(crate) fn gather_indices(d: Domain) -> impl Strategy<Value = Sample> {
    shape(1..=3)
        .prop_flat_map(move |s| {
            let r = s.len();
            (array(s, d), 0..r, 1usize..=3, vec(0usize..100, 30))
        })
        .prop_map(|(a, axis, len, raw)| Sample {
            ints: [vec![axis, len], raw].concat(),
            ..Sample::new(vec![a])
        })
}

/// The axis and the index array of a `gather` case: the value's shape with `ints[1]` entries
/// along `ints[0]`, filled from the raw numbers after them (wrapped into range).
pub(crate) fn gather_index(shape: &[usize], ints: &[usize]) -> (usize, ArrayD<usize>) {
    let (axis, len) = (ints[0], ints[1]);
    let mut index_shape = shape.to_vec();
    index_shape[axis] = len;
    let mut raw = ints[2..].iter().cycle();
    let index = ArrayD::from_shape_fn(IxDyn(&index_shape), |_| raw.next().expect("cycled") % shape[axis]);
    (axis, index)
}

/// A table `[V, D]` or `[V, D, E]` and ids of shape `[A, B]` below `V` (repeats likely):
/// `ints = [A, B, ids…]`.
pub(crate) fn embedding_ids(d: Domain) -> impl Strategy<Value = Sample> {
    (1usize..=4, vec(1usize..=3, 1..=2), 1usize..=3, 1usize..=3)
        .prop_flat_map(move |(v, rest, a, b)| {
            let shape = [vec![v], rest].concat();
            (array(shape, d), Just((a, b)), vec(0..v, a * b))
        })
        .prop_map(|(table, (a, b), ids)| Sample {
            ints: [vec![a, b], ids].concat(),
            ..Sample::new(vec![table])
        })
}

/// Two broadcasting operands and a boolean mask of their broadcast shape.
pub(crate) fn masked(d: Domain) -> impl Strategy<Value = Sample> {
    binary(d, d).prop_flat_map(|s| {
        let shape =
            crate::broadcast_shape(s.inputs[0].shape(), s.inputs[1].shape()).expect("broadcasts").to_vec();
        let n: usize = shape.iter().product();
        vec(any::<bool>(), n).prop_map(move |m| {
            let mask = ArrayD::from_shape_vec(IxDyn(&shape), m).expect("n flags");
            Sample { mask: Some(mask), ..s.clone() }
        })
    })
}

/// Two or three arrays that differ only in the length of axis `ints[0]`.
pub(crate) fn joinable(d: Domain) -> impl Strategy<Value = Sample> {
    (shape(1..=3), vec(1usize..=3, 2..=3))
        .prop_flat_map(|(s, lens)| {
            let r = s.len();
            (Just(s), Just(lens), 0..r)
        })
        .prop_flat_map(move |(s, lens, axis)| {
            let arrays: Vec<_> = lens
                .iter()
                .map(|&len| {
                    let mut shape = s.clone();
                    shape[axis] = len;
                    array(shape, d)
                })
                .collect();
            (arrays, Just(axis))
        })
        .prop_map(|(inputs, axis)| Sample { ints: vec![axis], ..Sample::new(inputs) })
}

/// Two or three arrays of one shape and a new-axis position `ints[0]`.
pub(crate) fn stackable(d: Domain) -> impl Strategy<Value = Sample> {
    (shape(0..=3), 2usize..=3)
        .prop_flat_map(move |(s, k)| {
            let r = s.len();
            (vec(array(s, d), k), 0..=r)
        })
        .prop_map(|(inputs, axis)| Sample { ints: vec![axis], ..Sample::new(inputs) })
}

/// An array of rank ≥ 1, with `ints = [keepdims, axes…]` (a non-empty ascending set of axes)
/// and `scalar` in `[0, 3)`.
pub(crate) fn axes_and_keepdims(d: Domain) -> impl Strategy<Value = Sample> {
    shape(1..=4)
        .prop_flat_map(move |s| {
            let r = s.len();
            (array(s, d), vec(any::<bool>(), r), 0..r, any::<bool>(), 0.0..3.0)
        })
        .prop_map(|(a, chosen, first, keepdims, scalar)| {
            let axes = (0..chosen.len()).filter(|&i| chosen[i] || i == first);
            let ints = std::iter::once(keepdims as usize).chain(axes).collect();
            Sample { ints, scalar, ..Sample::new(vec![a]) }
        })
}

/// Like [`axes_and_keepdims`], with values distinct in absolute value (no ties for max, min or
/// the ∞-norm).
pub(crate) fn distinct_with_axes() -> impl Strategy<Value = Sample> {
    axes_and_keepdims(ANY).prop_flat_map(|s| {
        let n = s.inputs[0].len();
        let magnitudes: Vec<usize> = (1..=n).collect();
        (Just(s), Just(magnitudes).prop_shuffle(), vec(any::<bool>(), n)).prop_map(|(s, m, signs)| {
            let values =
                m.iter().zip(signs).map(|(&k, pos)| if pos { 0.3 * k as f64 } else { -0.3 * k as f64 });
            let a = ArrayD::from_shape_vec(s.inputs[0].raw_dim(), values.collect()).expect("n values");
            Sample { inputs: vec![a], ..s }
        })
    })
}

/// Operands of the `MatMul` primitive: 2-D or 3-D (batch shared when one side is 2-D), with
/// transpose flags `ints = [ta, tb]` and the operands stored accordingly.
pub(crate) fn matmul_operands(d: Domain) -> impl Strategy<Value = Sample> {
    (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3, 0u8..4, any::<bool>(), any::<bool>())
        .prop_flat_map(move |(b, m, k, n, ranks, ta, tb)| {
            let shape = |batch: bool, r: usize, c: usize, t: bool| {
                let (r, c) = if t { (c, r) } else { (r, c) };
                if batch { vec![b, r, c] } else { vec![r, c] }
            };
            let (a3, b3) = (ranks & 1 == 1, ranks & 2 == 2);
            (
                array(shape(a3, m, k, ta), d),
                array(shape(b3, k, n, tb), d),
                Just(vec![ta as usize, tb as usize]),
            )
        })
        .prop_map(|(a, b, ints)| Sample { ints, ..Sample::new(vec![a, b]) })
}

/// A batch `(n, k)`, weights `(k, m)` and a bias `(m,)`.
pub(crate) fn affine_operands(d: Domain) -> impl Strategy<Value = Sample> {
    (1usize..=3, 1usize..=3, 1usize..=3)
        .prop_flat_map(move |(n, k, m)| (array(vec![n, k], d), array(vec![k, m], d), array(vec![m], d)))
        .prop_map(|(x, w, b)| Sample::new(vec![x, w, b]))
}

/// Operands of `affine` whose output is large beside its inputs, so the op adds the bias inside
/// the product (`folds_bias`): `[n, 1]·[1, m] + [m]` with `n, m` from 12 to 14.
pub(crate) fn affine_folded_operands(d: Domain) -> impl Strategy<Value = Sample> {
    (12usize..=14, 12usize..=14)
        .prop_flat_map(move |(n, m)| (array(vec![n, 1], d), array(vec![1, m], d), array(vec![m], d)))
        .prop_map(|(x, w, b)| Sample::new(vec![x, w, b]))
}

/// Operands of `matmul` where one or both sides are vectors.
pub(crate) fn vector_operands(d: Domain) -> impl Strategy<Value = Sample> {
    (1usize..=3, 1usize..=3, 1usize..=3, 0u8..5)
        .prop_flat_map(move |(b, k, n, kind)| {
            let (sa, sb) = match kind {
                0 => (vec![k], vec![k]),
                1 => (vec![k], vec![k, n]),
                2 => (vec![n, k], vec![k]),
                3 => (vec![k], vec![b, k, n]),
                _ => (vec![b, n, k], vec![k]),
            };
            (array(sa, d), array(sb, d))
        })
        .prop_map(|(a, b)| Sample::new(vec![a, b]))
}

/// The same image `[N, C, H, W]` stored channels-last (NHWC in memory), so the ops meet a
/// non-contiguous, permuted input.
fn channels_last(image: ArrayD<f64>) -> ArrayD<f64> {
    let stored = image.permuted_axes(IxDyn(&[0, 2, 3, 1])).as_standard_layout().into_owned();
    stored.permuted_axes(IxDyn(&[0, 3, 1, 2]))
}

#[test]
fn channels_last_keeps_the_values_and_changes_the_strides() {
    let image =
        ArrayD::from_shape_fn(IxDyn(&[2, 3, 2, 2]), |i| (i[0] * 100 + i[1] * 10 + i[2] * 2 + i[3]) as f64);
    let stored = channels_last(image.clone());
    assert_eq!(stored, image);
    assert!(!stored.is_standard_layout());
    assert_eq!(stored.strides(), &[12, 1, 6, 3]);
}

/// A window (kernel 1–3, stride 1–3, padding 0–2, dilation 1–2 per axis) and an image
/// `[N, C, H, W]` (N ≤ 2, C ≤ 3, H, W ≤ 6) large enough for at least one output:
/// `ints = [KH, KW, SH, SW, PH, PW, DH, DW, N, C, H, W]`, with no input yet.
fn window_and_image() -> impl Strategy<Value = Vec<usize>> {
    let axis = || (1usize..=3, 1usize..=3, 0usize..=2, 1usize..=2, 0usize..=3);
    (axis(), axis(), 1usize..=2, 1usize..=3).prop_map(|((kh, sh, ph, dh, eh), (kw, sw, pw, dw, ew), n, c)| {
        let size = |k: usize, p: usize, d: usize, extra: usize| {
            ((d * (k - 1) + 1).saturating_sub(2 * p).max(1) + extra).min(6)
        };
        vec![kh, kw, sh, sw, ph, pw, dh, dw, n, c, size(kh, ph, dh, eh), size(kw, pw, dw, ew)]
    })
}

/// An image for `im2col`, with `ints` as in [`window_and_image`].
pub(crate) fn image_and_window(d: Domain) -> impl Strategy<Value = Sample> {
    (window_and_image(), any::<bool>())
        .prop_flat_map(move |(ints, permuted)| (array(ints[8..].to_vec(), d), Just(ints), Just(permuted)))
        .prop_map(|(x, ints, permuted)| {
            let x = if permuted { channels_last(x) } else { x };
            Sample { ints, ..Sample::new(vec![x]) }
        })
}

/// Columns `[N·OH·OW, C·KH·KW]` for `col2im`, with `ints` as in [`window_and_image`].
pub(crate) fn columns_and_window(d: Domain) -> impl Strategy<Value = Sample> {
    window_and_image()
        .prop_flat_map(move |i| {
            let out =
                |n: usize, k: usize, s: usize, p: usize, d: usize| (n + 2 * p - d * (k - 1) - 1) / s + 1;
            let rows = i[8] * out(i[10], i[0], i[2], i[4], i[6]) * out(i[11], i[1], i[3], i[5], i[7]);
            (array(vec![rows, i[9] * i[0] * i[1]], d), Just(i))
        })
        .prop_map(|(x, ints)| Sample { ints, ..Sample::new(vec![x]) })
}

/// An input `[N, C, H, W]`, a weight `[O, C/groups, KH, KW]` and sometimes a bias `[O]` for
/// `conv2d`, with `ints = [SH, SW, PH, PW, DH, DW, groups]`: one group, two, or depthwise (a
/// group per channel); C ≤ 4, the image large enough for at least one output, and sometimes
/// stored channels-last.
pub(crate) fn conv2d_operands(d: Domain) -> impl Strategy<Value = Sample> {
    (window_and_image(), 0u8..3, 1usize..=2, 1usize..=2, any::<bool>(), any::<bool>())
        .prop_flat_map(move |(i, grouping, per_group, outputs, bias, permuted)| {
            let (c, groups) = match grouping {
                0 => (i[9], 1),
                1 => (2 * per_group, 2),
                _ => (i[9] + 1, i[9] + 1),
            };
            let o = groups * outputs;
            let image = array(vec![i[8], c, i[10], i[11]], d);
            let arrays = vec![
                image.prop_map(move |x| if permuted { channels_last(x) } else { x }).boxed(),
                array(vec![o, c / groups, i[0], i[1]], d).boxed(),
            ];
            let arrays = if bias { [arrays, vec![array(vec![o], d).boxed()]].concat() } else { arrays };
            (arrays, Just([&i[2..8], &[groups]].concat()))
        })
        .prop_map(|(inputs, ints)| Sample { ints, ..Sample::new(inputs) })
}

/// An input `[N, C, H, W]` (H, W ≤ 3), a weight `[C, O/groups, KH, KW]` and sometimes a bias
/// `[O]` for `conv_transpose2d`, with `ints = [SH, SW, PH, PW, DH, DW, groups, OPH, OPW]`:
/// output padding below the stride, padding small enough for a non-empty output.
pub(crate) fn conv_transpose2d_operands(d: Domain) -> impl Strategy<Value = Sample> {
    let axis = || (1usize..=3, 1usize..=3, 0usize..=2, 1usize..=2, 1usize..=3, 0usize..3);
    (axis(), axis(), 1usize..=2, 0u8..3, 1usize..=2, 1usize..=2, any::<bool>())
        .prop_flat_map(move |(rows, cols, n, grouping, per_group, outputs, bias)| {
            let (c, groups) = match grouping {
                0 => (per_group, 1),
                1 => (2 * per_group, 2),
                _ => (per_group + 1, per_group + 1),
            };
            // (kernel, stride, padding, dilation, input size, output padding) per axis
            let fit = |(k, s, p, d, len, extra): (usize, usize, usize, usize, usize, usize)| {
                let extra = extra % s;
                (k, s, p.min(((len - 1) * s + d * (k - 1) + extra) / 2), d, len, extra)
            };
            let ((kh, sh, ph, dh, h, eh), (kw, sw, pw, dw, w, ew)) = (fit(rows), fit(cols));
            let arrays = vec![array(vec![n, c, h, w], d).boxed(), array(vec![c, outputs, kh, kw], d).boxed()];
            let arrays =
                if bias { [arrays, vec![array(vec![outputs * groups], d).boxed()]].concat() } else { arrays };
            (arrays, Just(vec![sh, sw, ph, pw, dh, dw, groups, eh, ew]))
        })
        .prop_map(|(inputs, ints)| Sample { ints, ..Sample::new(inputs) })
}

/// An image and a pooling window, `ints = [KH, KW, SH, SW, PH, PW, DH, DW]`, with padding at
/// most half the dilated kernel. For max pooling the values are distinct multiples of 0.05 (no
/// ties for the differences to straddle); for average pooling, dilation is 1. Sometimes the
/// image is stored channels-last.
pub(crate) fn pool_operands(max: bool) -> impl Strategy<Value = Sample> {
    window_and_image()
        .prop_map(move |mut i| {
            if !max {
                (i[6], i[7]) = (1, 1);
            }
            for axis in 0..2 {
                let dilated = i[6 + axis] * (i[axis] - 1) + 1;
                i[4 + axis] = i[4 + axis].min(dilated / 2);
                // no smaller than the dilated kernel, so that no window falls in the padding only
                i[10 + axis] = i[10 + axis].max(dilated);
            }
            i
        })
        .prop_flat_map(|i| {
            let n: usize = i[8..].iter().product();
            (Just(i), Just((1..=n).collect::<Vec<_>>()).prop_shuffle(), array(vec![1], ANY), any::<bool>())
        })
        .prop_map(move |(i, order, any, permuted)| {
            let values = order.iter().map(|&k| if max { 0.05 * k as f64 } else { any[0] * k as f64 / 40.0 });
            let x = ArrayD::from_shape_vec(IxDyn(&i[8..]), values.collect()).expect("n values");
            let x = if permuted { channels_last(x) } else { x };
            Sample { ints: i[..8].to_vec(), ..Sample::new(vec![x]) }
        })
}

/// An image `[N, C, H, W]` (H, W ≤ 6) and an output size `ints = [OH, OW]` (≤ 4).
pub(crate) fn adaptive_pool_operands() -> impl Strategy<Value = Sample> {
    (1usize..=2, 1usize..=3, 1usize..=6, 1usize..=6, 1usize..=4, 1usize..=4)
        .prop_flat_map(|(n, c, h, w, oh, ow)| (array(vec![n, c, h, w], ANY), Just(vec![oh, ow])))
        .prop_map(|(x, ints)| Sample { ints, ..Sample::new(vec![x]) })
}

/// Logits `(batch, classes)` and target rows (non-negative, summing to 1).
pub(crate) fn logits_and_targets() -> impl Strategy<Value = Sample> {
    (1usize..=3, 2usize..=4)
        .prop_flat_map(|(n, c)| (array(vec![n, c], WIDE), array(vec![n, c], Domain::Uniform(0.0, 1.0))))
        .prop_map(|(x, t)| {
            let sums = t.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
            Sample::new(vec![x, &t / &sums])
        })
}

/// Logits `[n, c]` and one class label per row in `ints`; with `scale`, a scalar second input
/// (the loss's gradient, for the logits' gradient op).
pub(crate) fn logits_and_labels(scale: bool) -> impl Strategy<Value = Sample> {
    (1usize..=3, 2usize..=4)
        .prop_flat_map(move |(n, c)| {
            let g = if scale { array(vec![], ANY).prop_map(Some).boxed() } else { Just(None).boxed() };
            (array(vec![n, c], WIDE), vec(0..c, n), g)
        })
        .prop_map(|(x, labels, g)| Sample {
            ints: labels,
            ..Sample::new([vec![x], g.into_iter().collect()].concat())
        })
}
