//! Size arguments from 0 to `usize::MAX`: every op whose result's size comes from its
//! arguments (convolution, transposed convolution, pooling, reshape, narrow, the recurrent
//! layers) ends in `Ok` with the shape its formula gives, or in an `Err` naming the op; never
//! in a panic, a wrapped size or an aborted allocation. Degenerate shapes with a defined result
//! (zero channels, an empty product, a hidden size of 0) give empty results and zero gradients,
//! as in PyTorch.

use ndarray::{Array2, ArrayD, IxDyn};
use tapegrad::{ConvOptions, Tape, Window};

type R<'t> = tapegrad::Result<tapegrad::Var<'t, f64>>;

/// The error's message, which must start with the op's name.
#[track_caller]
fn error_of(op: &str, r: R<'_>) -> String {
    let message = r.map(|v| format!("Ok with shape {:?}", v.shape())).expect_err("an error");
    assert!(message.to_string().starts_with(&format!("{op}: ")), "{message}");
    message.to_string()
}

fn zeros(shape: &[usize]) -> ArrayD<f64> {
    ArrayD::zeros(IxDyn(shape))
}

fn ones(shape: &[usize]) -> ArrayD<f64> {
    ArrayD::ones(IxDyn(shape))
}

// Class 1: size arithmetic that wrapped or overflowed.

#[test]
fn convolution_with_huge_padding_is_an_error_not_a_wrapped_size() {
    let tape = Tape::<f64>::new();
    let (x, w) = (tape.var(ones(&[1, 1, 3, 3])), tape.var(ones(&[1, 1, 3, 3])));
    // 2·P wrapped to 0: a 1×1 output of 0.0
    let options = ConvOptions { padding: (1 << 63, 1 << 63), ..ConvOptions::default() };
    let message = error_of("conv2d", x.try_conv2d(w, None, options));
    assert!(message.contains("usize::MAX"), "{message}");
    // 2·P fits, but the output [1, 1, 2^63 − 1, 2^63 − 1] cannot be held
    let options = ConvOptions { padding: (1 << 62, 1 << 62), ..ConvOptions::default() };
    let message = error_of("conv2d", x.try_conv2d(w, None, options));
    assert!(message.contains("too large"), "{message}");
}

#[test]
fn convolution_with_huge_dilation_is_an_error_not_a_wrong_output() {
    let tape = Tape::<f64>::new();
    let (x, w) = (tape.var(ones(&[1, 1, 3, 3])), tape.var(ones(&[1, 1, 3, 3])));
    // D·(K − 1) wrapped to 0: a 3×3 output of single taps
    let options = ConvOptions { dilation: (1 << 63, 1 << 63), ..ConvOptions::default() };
    error_of("conv2d", x.try_conv2d(w, None, options));
    let window = Window { dilation: (1 << 63, 1), ..Window::new((3, 1)) };
    error_of("max_pool2d", x.try_max_pool2d(window));
    error_of("im2col", x.try_im2col(window));
}

#[test]
fn transposed_convolution_with_a_huge_stride_is_an_error() {
    let tape = Tape::<f64>::new();
    let (x, w) = (tape.var(ones(&[1, 1, 5, 5])), tape.var(ones(&[1, 1, 2, 2])));
    let options = ConvOptions { stride: (1 << 62, 1 << 62), ..ConvOptions::default() };
    error_of("conv_transpose2d", x.try_conv_transpose2d(w, None, options));
    // (H − 1)·S fits a usize, the output does not fit in memory
    let x = tape.var(ones(&[1, 1, 2, 2]));
    error_of("conv_transpose2d", x.try_conv_transpose2d(w, None, options));
}

#[test]
fn reshape_to_an_impossible_empty_shape_is_an_error() {
    let tape = Tape::<f64>::new();
    let x = tape.var(zeros(&[0]));
    let message = error_of("reshape", x.try_reshape(&[0, 1 << 62, 4]));
    assert!(message.contains("[0, 4611686018427387904, 4]"), "{message}");
    assert_eq!(x.try_reshape(&[0, 1 << 40, 4]).unwrap().shape().as_slice(), &[0, 1 << 40, 4]);
}

#[test]
fn adaptive_pooling_to_an_output_too_large_to_hold_is_an_error_not_an_abort() {
    let tape = Tape::<f64>::new();
    let x = tape.var(ones(&[1, 1, 64, 1]));
    // 2^40 × 64 averaging weights (512 TiB, more than a 64-bit process can address, whatever
    // the system's overcommit policy): refused by the allocator, reported
    let message = error_of("adaptive_avg_pool2d", x.try_adaptive_avg_pool2d((1 << 40, 1)));
    assert!(message.contains("memory"), "{message}");
    error_of("adaptive_avg_pool2d", x.try_adaptive_avg_pool2d((1 << 62, 1 << 62)));
}

#[test]
fn narrow_past_the_end_is_an_error_not_an_empty_slice() {
    let tape = Tape::<f64>::new();
    let x = tape.var(vec![1.0, 2.0, 3.0, 4.0]);
    let message = error_of("narrow", x.try_narrow(0, usize::MAX, 2));
    assert!(message.contains("start 18446744073709551615 and length 2"), "{message}");
    error_of("narrow", x.try_narrow(0, 2, usize::MAX));
    error_of("narrow", x.try_narrow(0, 3, 2));
    assert_eq!(x.try_narrow(0, 4, 0).unwrap().shape().as_slice(), &[0]);
    assert_eq!(x.narrow(0, 2, 2).to_array().into_raw_vec_and_offset().0, vec![3.0, 4.0]);
}

#[test]
fn a_product_of_empty_operands_too_large_to_hold_is_an_error() {
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.var(zeros(&[1 << 40, 0])), tape.var(zeros(&[0, 1 << 40])));
    error_of("matmul", a.try_matmul(b));
}

#[test]
fn ops_that_take_a_target_shape_refuse_one_too_large_to_hold() {
    let tape = Tape::<f64>::new();
    let x = tape.var(vec![1.0, 2.0]);
    // 2^40 × 2^40 wrapped to 0 elements for put_add's and take's count
    let message = error_of("put_add", x.try_put_add(&[0, 1], &[1 << 40, 1 << 40]));
    assert!(message.contains("too large"), "{message}");
    error_of("take", x.try_take(&[], &[1 << 32, 1 << 32]));
    error_of("broadcast_to", x.try_broadcast_to(&[1 << 62, 1 << 62, 2]));
    // 2^46 values (512 TiB, more than a process can address): refused by the allocator, reported
    let message = error_of("broadcast_to", x.try_broadcast_to(&[1 << 45, 2]));
    assert!(message.contains("memory"), "{message}");
    assert_eq!(x.try_broadcast_to(&[0, 2]).unwrap().shape().as_slice(), &[0, 2]);
    assert_eq!(
        x.try_put_add(&[2, 0], &[3]).unwrap().to_array().into_raw_vec_and_offset().0,
        vec![2.0, 0.0, 1.0]
    );
}

// Class 2: degenerate but valid shapes.

#[test]
fn products_of_empty_matrices_are_empty_with_zero_gradients() {
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.var(zeros(&[0, 3])), tape.var(zeros(&[3, 0])));
    let c = a.matmul(b);
    assert_eq!(c.shape().as_slice(), &[0, 0]);
    let grads = c.sum().backward();
    assert_eq!(grads[a].to_array(), zeros(&[0, 3]));
    assert_eq!(grads[b].to_array(), zeros(&[3, 0]));
    // [2, 0]·[0, 3] is zeros, with empty gradients
    let (p, q) = (tape.var(zeros(&[2, 0])), tape.var(zeros(&[0, 3])));
    let r = p.matmul(q);
    assert_eq!(r.to_array(), zeros(&[2, 3]));
    let grads = r.sum().backward();
    assert_eq!((grads[p].shape(), grads[q].shape()), (&[2, 0][..], &[0, 3][..]));
}

#[test]
fn convolutions_with_zero_channels_are_empty_with_zero_gradients() {
    let tape = Tape::<f64>::new();
    // zero output channels: [2, 0, 2, 2], and the input's gradient is zeros
    let (x, w) = (tape.var(ones(&[2, 3, 4, 4])), tape.var(zeros(&[0, 3, 3, 3])));
    let y = x.conv2d(w, None, ConvOptions::default());
    assert_eq!(y.shape().as_slice(), &[2, 0, 2, 2]);
    let grads = y.sum().backward();
    assert_eq!(grads[x].to_array(), zeros(&[2, 3, 4, 4]));
    assert_eq!(grads[w].to_array(), zeros(&[0, 3, 3, 3]));
    // zero input channels: the output is the bias alone, and the bias gets every gradient
    let (x, w, b) = (tape.var(zeros(&[2, 0, 4, 4])), tape.var(zeros(&[5, 0, 3, 3])), tape.var(vec![1.0; 5]));
    let y = x.conv2d(w, Some(b), ConvOptions::default());
    assert_eq!(y.to_array(), ones(&[2, 5, 2, 2]));
    let grads = y.sum().backward();
    assert_eq!(grads[b].to_array(), ArrayD::from_elem(IxDyn(&[5]), 8.0));
    assert_eq!(grads[x].shape(), &[2, 0, 4, 4]);
    // an empty batch
    let (x, w) = (tape.var(zeros(&[0, 3, 4, 4])), tape.var(ones(&[2, 3, 3, 3])));
    let y = x.conv2d(w, None, ConvOptions::default());
    assert_eq!(y.shape().as_slice(), &[0, 2, 2, 2]);
    assert_eq!(y.sum().backward()[w].to_array(), zeros(&[2, 3, 3, 3]));
    // the transposed convolution with zero channels either side
    let (x, w) = (tape.var(ones(&[1, 2, 3, 3])), tape.var(zeros(&[2, 0, 2, 2])));
    let y = x.conv_transpose2d(w, None, ConvOptions::default());
    assert_eq!(y.shape().as_slice(), &[1, 0, 4, 4]);
    assert_eq!(y.sum().backward()[x].to_array(), zeros(&[1, 2, 3, 3]));
    let pooled = tape.var(zeros(&[0, 3, 4, 4])).max_pool2d(Window::pool((2, 2)));
    assert_eq!(pooled.shape().as_slice(), &[0, 3, 2, 2]);
}

#[test]
fn a_linear_map_of_an_empty_batch_is_empty() {
    let tape = Tape::<f64>::new();
    let (x, w, b) = (tape.var(zeros(&[0, 3])), tape.var(ones(&[3, 2])), tape.var(vec![1.0, 2.0]));
    let y = x.affine(w, b);
    assert_eq!(y.shape().as_slice(), &[0, 2]);
    let grads = y.sum().backward();
    assert_eq!(grads[w].to_array(), zeros(&[3, 2]));
    assert_eq!(grads[b].to_array(), zeros(&[2]));
    let y = tape.var(Array2::<f64>::zeros((4, 0))).matmul(tape.var(Array2::<f64>::zeros((0, 0))));
    assert_eq!(y.shape().as_slice(), &[4, 0]);
}

// The property: every size argument from 0 to usize::MAX.

use proptest::prelude::*;
use tapegrad::nn::{GRU, LSTM, RNN, Recurrent};
use tapegrad::ops::conv::{conv_transpose2d_output_shape, conv2d_output_shape};
use tapegrad::ops::pooling::{
    adaptive_avg_pool2d_output_shape, avg_pool2d_output_shape, max_pool2d_output_shape,
};

/// A size argument: small, 0 or huge.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0..4usize,
        1 => Just(usize::MAX),
        1 => Just(1usize << 63),
        1 => Just(1usize << 62),
        1 => Just(1usize << 40),
        1 => any::<usize>(),
    ]
}

/// `len` size arguments: small ones (mostly 1, which every option accepts, then 0, 2 and 3), a
/// few of them replaced by [`size`]'s, so that each argument is in turn 0 or huge alone or
/// with a few others.
fn sizes(len: usize) -> impl Strategy<Value = Vec<usize>> {
    let small = prop_oneof![5 => Just(1usize), 2 => Just(0usize), 3 => 2..4usize];
    let replaced = proptest::collection::vec((0..len, size()), 0..5);
    (proptest::collection::vec(small, len), replaced).prop_map(|(mut args, replaced)| {
        for (at, value) in replaced {
            args[at] = value;
        }
        args
    })
}

/// An op's result is computed only when its operands, result and the buffers on the way need
/// at most this many bytes; above, only its shape is.
const BUDGET: u128 = 256 << 20;

/// Whether an `f64` tensor of `shape` can exist: each axis a `usize`, the axes other than
/// those of length 0 multiplying to at most `isize::MAX` (ndarray's rule), and its bytes at most
/// `isize::MAX` (the most one allocation holds).
fn holdable(shape: &[u128]) -> bool {
    let max = isize::MAX as u128;
    let mut product = 1u128;
    for &n in shape.iter().filter(|&&n| n != 0) {
        if n > usize::MAX as u128 {
            return false;
        }
        product = match product.checked_mul(n) {
            Some(p) if p <= max => p,
            _ => return false,
        };
    }
    let elements = if shape.contains(&0) { 0 } else { product };
    elements * 8 <= max
}

/// The bytes of `f64` tensors of these shapes (saturating).
fn bytes(shapes: &[Vec<u128>]) -> u128 {
    shapes.iter().map(|s| s.iter().fold(8u128, |p, &n| p.saturating_mul(n))).fold(0, u128::saturating_add)
}

fn wide(shape: &[usize]) -> Vec<u128> {
    shape.iter().map(|&n| n as u128).collect()
}

/// A result's shape by the formula, and the shapes held on the way to it.
type Expected = (Vec<u128>, Vec<Vec<u128>>);

/// A library function giving an op's result shape from its size arguments.
type ShapeFn = fn(&[usize]) -> tapegrad::Result<Vec<usize>>;

/// One op of the property: how its size arguments make operands, what shape an independent
/// formula (in `u128`) gives, the library's shape function when it has one, and the op.
struct SizeCase {
    /// The op's name, which starts its errors.
    name: &'static str,
    /// How many size arguments it draws.
    arity: usize,
    /// Positions whose small draws are mostly the value given (paddings 0, an average pooling's
    /// dilation 1), so that more of the op's results exist.
    usual: &'static [(usize, usize)],
    /// The operands' shapes.
    operands: fn(&[usize]) -> Vec<Vec<usize>>,
    /// The result's shape by the formula, and every shape the op holds on the way (whose
    /// bytes count against the budget and which must be holdable too); `None` when the
    /// arguments do not fit the op.
    expected: fn(&[usize]) -> Option<Expected>,
    /// The library's shape function, which allocates nothing.
    shape: Option<ShapeFn>,
    /// The op on tensors of the operands' shapes.
    run: for<'t> fn(&[tapegrad::Var<'t, f64>], &[usize]) -> R<'t>,
    /// An error the op may return where the formula gives a shape, decided by the values or
    /// positions rather than the sizes.
    may_refuse: Option<&'static str>,
}

/// Checks one case: the shape function against the formula (when the operands can exist),
/// then the op, when it fits the budget, against the shape function.
fn check(case: &SizeCase, args: &[usize]) -> Result<(), TestCaseError> {
    let operands = (case.operands)(args);
    let exist = operands.iter().all(|s| holdable(&wide(s)));
    let expected = (case.expected)(args)
        .filter(|(out, on_the_way)| holdable(out) && on_the_way.iter().all(|s| holdable(s)));
    let shape = case.shape.map(|f| f(args));
    if let Some(shape) = &shape {
        if !exist {
            return Ok(()); // operands that cannot exist: only that it did not panic
        }
        match (&expected, shape) {
            (Some((out, _)), Ok(got)) => prop_assert_eq!(&wide(got), out, "{} {:?}", case.name, args),
            (None, Err(e)) => prop_assert!(e.to_string().starts_with(&format!("{}: ", case.name)), "{e}"),
            (e, got) => prop_assert!(false, "{} {:?}: expected {:?}, got {:?}", case.name, args, e, got),
        }
    }
    let within = |(out, on_the_way): &Expected| {
        let mut all = on_the_way.clone();
        all.push(out.clone());
        all.extend(operands.iter().map(|s| wide(s)));
        bytes(&all) <= BUDGET
    };
    let affordable = exist
        && expected.as_ref().is_none_or(within)
        && bytes(&operands.iter().map(|s| wide(s)).collect::<Vec<_>>()) <= BUDGET;
    if !affordable {
        return Ok(());
    }
    let tape = Tape::<f64>::new();
    let vars: Vec<_> = operands.iter().map(|s| tape.constant(ones(s))).collect();
    let ran = (case.run)(&vars, args).map(|v| v.shape().to_vec());
    match (&expected, &ran) {
        (Some((out, _)), Ok(got)) => prop_assert_eq!(&wide(got), out, "{} {:?}", case.name, args),
        (None, Err(e)) => prop_assert!(e.to_string().starts_with(&format!("{}: ", case.name)), "{e}"),
        (Some(_), Err(e)) if case.may_refuse.is_some_and(|m| e.to_string().contains(m)) => {}
        (e, got) => prop_assert!(false, "{} {:?}: expected {:?}, ran {:?}", case.name, args, e, got),
    }
    Ok(())
}

/// One axis of a sliding window, as documented: `⌊(L + 2P − D(K − 1) − 1)/S⌋ + 1`, with the
/// padded axis and the dilated kernel each at most `usize::MAX`; `None` when it does not fit.
fn window_axis(len: usize, k: usize, s: usize, p: usize, d: usize) -> Option<u128> {
    if k == 0 || s == 0 || d == 0 {
        return None;
    }
    let (padded, span) = (len as u128 + 2 * p as u128, d as u128 * (k as u128 - 1) + 1);
    let limit = usize::MAX as u128;
    if padded > limit || span > limit || padded < span {
        return None;
    }
    Some((padded - span) / s as u128 + 1)
}

/// `[N, C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, groups]` for conv2d: an input
/// `[N, C, H, W]` and a weight `[O, C/groups, KH, KW]`.
fn conv_options(a: &[usize]) -> ConvOptions {
    ConvOptions {
        stride: (a[7], a[8]),
        padding: (a[9], a[10]),
        dilation: (a[11], a[12]),
        groups: a[13],
        output_padding: (0, 0),
    }
}

fn conv_operands(a: &[usize]) -> Vec<Vec<usize>> {
    let per_group = a[1].checked_div(a[13]).unwrap_or(a[1]);
    vec![vec![a[0], a[1], a[2], a[3]], vec![a[4], per_group, a[5], a[6]]]
}

fn conv_expected(a: &[usize]) -> Option<Expected> {
    let [n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups] = a.try_into().unwrap();
    let fits = groups > 0 && c % groups == 0 && o % groups == 0;
    let (oh, ow) = (window_axis(h, kh, sh, ph, dh)?, window_axis(w, kw, sw, pw, dw)?);
    let operands = conv_operands(a).iter().map(|s| wide(s)).collect::<Vec<_>>();
    fits.then(|| (vec![n as u128, o as u128, oh, ow], operands))
}

/// `[N, C, H, W, O/groups, KH, KW, SH, SW, PH, PW, DH, DW, groups, OPH, OPW]` for
/// conv_transpose2d: an input `[N, C, H, W]` and a weight `[C, O/groups, KH, KW]`.
fn transpose_options(a: &[usize]) -> ConvOptions {
    ConvOptions { output_padding: (a[14], a[15]), ..conv_options(a) }
}

fn transpose_operands(a: &[usize]) -> Vec<Vec<usize>> {
    vec![vec![a[0], a[1], a[2], a[3]], vec![a[1], a[4], a[5], a[6]]]
}

fn transpose_expected(a: &[usize]) -> Option<Expected> {
    let [n, c, h, w, og, kh, kw, sh, sw, ph, pw, dh, dw, groups, oph, opw] = a.try_into().unwrap();
    if groups == 0 || c % groups != 0 || oph >= sh || opw >= sw || h == 0 || w == 0 {
        return None;
    }
    // OH = (H − 1)·S − 2P + D(K − 1) + output_padding + 1, whose convolution gives H back
    let axis = |len: usize, k: usize, s: usize, p: usize, d: usize, extra: usize| -> Option<u128> {
        if k == 0 || d == 0 {
            return None;
        }
        let full = (len as u128 - 1) * s as u128 + d as u128 * (k as u128 - 1) + extra as u128 + 1;
        let size = full.checked_sub(2 * p as u128).filter(|&n| n > 0 && n <= usize::MAX as u128)?;
        (window_axis(size as usize, k, s, p, d)? == len as u128).then_some(size)
    };
    let (oh, ow) = (axis(h, kh, sh, ph, dh, oph)?, axis(w, kw, sw, pw, dw, opw)?);
    let operands = transpose_operands(a).iter().map(|s| wide(s)).collect::<Vec<_>>();
    Some((vec![n as u128, og as u128 * groups as u128, oh, ow], operands))
}

/// `[N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW]` for pooling an image `[N, C, H, W]`.
fn pool_window(a: &[usize]) -> Window {
    Window { kernel: (a[4], a[5]), stride: (a[6], a[7]), padding: (a[8], a[9]), dilation: (a[10], a[11]) }
}

fn image(a: &[usize]) -> Vec<Vec<usize>> {
    vec![a[..4].to_vec()]
}

/// Pooling's shape: the window's, with at most half the dilated kernel as padding.
fn pool_expected(a: &[usize]) -> Option<Expected> {
    let [n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw] = a.try_into().unwrap();
    let half = |k: usize, d: usize| (d as u128 * (k as u128).saturating_sub(1)).div_ceil(2);
    if ph as u128 > half(kh, dh) || pw as u128 > half(kw, dw) {
        return None;
    }
    let (oh, ow) = (window_axis(h, kh, sh, ph, dh)?, window_axis(w, kw, sw, pw, dw)?);
    Some((vec![n as u128, c as u128, oh, ow], vec![]))
}

/// Average pooling's: dilation 1, and its `1/(KH·KW)` filter on the way.
fn avg_pool_expected(a: &[usize]) -> Option<Expected> {
    if (a[10], a[11]) != (1, 1) {
        return None;
    }
    let (out, _) = pool_expected(a)?;
    Some((out, vec![vec![a[4] as u128, a[5] as u128]]))
}

/// `[N, C, H, W, OH, OW]`: adaptive pooling of `[N, C, H, W]` to `(OH, OW)`, through averaging
/// matrices `[OH, H]` and `[OW, W]` and the product `[N, C, H, OW]` between them.
fn adaptive_expected(a: &[usize]) -> Option<Expected> {
    let [n, c, h, w, oh, ow] = a.try_into().unwrap();
    if [h, w, oh, ow].contains(&0) {
        return None;
    }
    let on_the_way = vec![wide(&[oh, h]), wide(&[ow, w]), wide(&[n, c, h, ow])];
    Some((wide(&[n, c, oh, ow]), on_the_way))
}

/// `[A, B, T0, T1, T2]`: `[A, B]` reshaped to `[T0, T1, T2]`.
fn reshape_expected(a: &[usize]) -> Option<Expected> {
    let count = |s: &[usize]| s.iter().fold(1u128, |p, &n| p.saturating_mul(n as u128));
    (holdable(&wide(&a[2..])) && count(&a[..2]) == count(&a[2..])).then(|| (wide(&a[2..]), vec![]))
}

/// `[A, B, axis, start, len]`: `[A, B]` narrowed along `axis`.
fn narrow_expected(a: &[usize]) -> Option<Expected> {
    let [rows, cols, axis, start, len] = a.try_into().unwrap();
    let mut shape = wide(&[rows, cols]);
    let within = axis < 2 && start as u128 + len as u128 <= shape[axis];
    within.then(|| {
        shape[axis] = len as u128;
        (shape, vec![])
    })
}

fn vec4(s: [usize; 4]) -> Vec<usize> {
    s.to_vec()
}

/// Every op whose result's size comes from its arguments; a new one joins with one entry.
fn size_cases() -> Vec<SizeCase> {
    vec![
        SizeCase {
            name: "conv2d",
            arity: 14,
            usual: &[(9, 0), (10, 0)],
            operands: conv_operands,
            expected: conv_expected,
            shape: Some(|a| {
                let [x, w] = &conv_operands(a)[..] else { unreachable!() };
                conv2d_output_shape(x, w, None, conv_options(a)).map(vec4)
            }),
            run: |x, a| x[0].try_conv2d(x[1], None, conv_options(a)),
            may_refuse: None,
        },
        SizeCase {
            name: "conv_transpose2d",
            arity: 16,
            usual: &[(9, 0), (10, 0), (14, 0), (15, 0)],
            operands: transpose_operands,
            expected: transpose_expected,
            shape: Some(|a| {
                let [x, w] = &transpose_operands(a)[..] else { unreachable!() };
                conv_transpose2d_output_shape(x, w, None, transpose_options(a)).map(vec4)
            }),
            run: |x, a| x[0].try_conv_transpose2d(x[1], None, transpose_options(a)),
            may_refuse: None,
        },
        SizeCase {
            name: "max_pool2d",
            arity: 12,
            usual: &[(8, 0), (9, 0)],
            operands: image,
            expected: pool_expected,
            shape: Some(|a| max_pool2d_output_shape(&a[..4], pool_window(a)).map(vec4)),
            run: |x, a| x[0].try_max_pool2d(pool_window(a)),
            // a dilated window may fall wholly in the padding
            may_refuse: Some("holds padding only"),
        },
        SizeCase {
            name: "avg_pool2d",
            arity: 12,
            usual: &[(8, 0), (9, 0), (10, 1), (11, 1)],
            operands: image,
            expected: avg_pool_expected,
            shape: Some(|a| avg_pool2d_output_shape(&a[..4], pool_window(a)).map(vec4)),
            run: |x, a| x[0].try_avg_pool2d(pool_window(a)),
            may_refuse: None,
        },
        SizeCase {
            name: "adaptive_avg_pool2d",
            arity: 6,
            usual: &[],
            operands: image,
            expected: adaptive_expected,
            shape: Some(|a| adaptive_avg_pool2d_output_shape(&a[..4], (a[4], a[5])).map(vec4)),
            run: |x, a| x[0].try_adaptive_avg_pool2d((a[4], a[5])),
            may_refuse: None,
        },
        SizeCase {
            name: "reshape",
            arity: 5,
            usual: &[],
            operands: |a| vec![a[..2].to_vec()],
            expected: reshape_expected,
            shape: None,
            run: |x, a| x[0].try_reshape(&a[2..]),
            may_refuse: None,
        },
        SizeCase {
            name: "narrow",
            arity: 5,
            usual: &[],
            operands: |a| vec![a[..2].to_vec()],
            expected: narrow_expected,
            shape: None,
            run: |x, a| x[0].try_narrow(a[2], a[3], a[4]),
            may_refuse: None,
        },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16384))]

    /// Each op, each size from 0 to `usize::MAX`: `Ok` with the formula's shape, or an `Err`
    /// naming the op; never a panic or an abort.
    #[test]
    fn every_size_argument_ends_in_the_formulas_shape_or_an_error(
        which in 0..size_cases().len(),
        args in sizes(16),
    ) {
        let cases = size_cases();
        let case = &cases[which];
        let mut args = args;
        for &(at, value) in case.usual {
            if args[at] < 3 {
                args[at] = value;
            }
        }
        check(case, &args[..case.arity])?;
    }
}

/// The recurrent layers' weights, per direction of the first layer and of each later one:
/// `G·H·(D + H + 2)` and `G·H·(directions·H + H + 2)`.
fn parameters(gates: u128, [d, h, layers, directions]: [u128; 4]) -> Option<u128> {
    if layers == 0 {
        return None;
    }
    let rows = gates * h;
    let mut shapes = vec![[rows, d], [rows, h]];
    if layers > 1 {
        shapes.push([rows, directions * h]);
    }
    if !shapes.iter().all(|s| holdable(s)) {
        return None;
    }
    let first = rows.checked_mul(d + h + 2)?;
    let later = rows.checked_mul(directions * h + h + 2)?.checked_mul(layers - 1)?;
    let total = first.checked_add(later)?.checked_mul(directions)?;
    holdable(&[total]).then_some(total)
}

/// One recurrent kind: its gates, and its `parameter_count`, `try_new` and `try_run` (the
/// output shape).
struct RecurrentCase {
    name: &'static str,
    gates: u128,
    count: fn(usize, usize, usize, bool) -> tapegrad::Result<usize>,
    run: fn(&Tape<f64>, [usize; 6]) -> tapegrad::Result<Vec<usize>>,
}

fn run_recurrent<const KIND: u8>(
    tape: &Tape<f64>,
    [d, h, layers, bidirectional, n, t]: [usize; 6],
) -> tapegrad::Result<Vec<usize>> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let layer = Recurrent::<f64, KIND>::try_new(tape, d, h, layers, bidirectional == 1, &mut rng)?;
    let (y, state) = layer.try_run(tape.constant(ones(&[n, t, d])), None)?;
    assert_eq!(state.h.shape().as_slice(), &[layers * (1 + bidirectional), n, h]);
    Ok(y.shape().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// RNN, LSTM and GRU over inputs `D`, hidden size `H`, layers, directions, batch `N` and
    /// length `T`: the weights counted without overflow (or an error), and the layer, when small
    /// enough to make, giving `[N, T, directions·H]` (or an error for `T = 0`).
    #[test]
    fn recurrent_sizes_end_in_the_formulas_shape_or_an_error(
        which in 0..3usize,
        args in sizes(5),
        bidirectional in 0..2usize,
    ) {
        let cases = [
            RecurrentCase { name: "Rnn", gates: 1, count: Recurrent::<f64, RNN>::parameter_count, run: run_recurrent::<RNN> },
            RecurrentCase { name: "Lstm", gates: 4, count: Recurrent::<f64, LSTM>::parameter_count, run: run_recurrent::<LSTM> },
            RecurrentCase { name: "Gru", gates: 3, count: Recurrent::<f64, GRU>::parameter_count, run: run_recurrent::<GRU> },
        ];
        let case = &cases[which];
        let [d, h, layers, n, t] = args[..].try_into().unwrap();
        let directions = 1 + bidirectional;
        let expected = parameters(case.gates, [d, h, layers, directions].map(|v| v as u128));
        let counted = (case.count)(d, h, layers, bidirectional == 1);
        match (expected, &counted) {
            (Some(e), Ok(c)) => prop_assert_eq!(*c as u128, e),
            (None, Err(err)) => prop_assert!(err.to_string().starts_with(&format!("{}: ", case.name)), "{err}"),
            (e, c) => prop_assert!(false, "{} {:?}: expected {:?}, counted {:?}", case.name, [d, h, layers], e, c),
        }
        // made and run only when small: the weights, the sequence and every step's gates
        let Some(weights) = expected else { return Ok(()) };
        let steps = [n, t, case.gates as usize * h * directions + d, layers * directions].map(|v| v as u128);
        let work = weights.saturating_add(steps.iter().fold(1u128, |p, &v| p.saturating_mul(v.max(1))));
        if work.saturating_mul(8) > BUDGET || !holdable(&wide(&[n, t, d])) || layers.saturating_mul(directions) > 64 || t > 64 {
            return Ok(());
        }
        let tape = Tape::<f64>::new();
        let ran = (case.run)(&tape, [d, h, layers, bidirectional, n, t]);
        if t == 0 {
            let err = ran.expect_err("a sequence of length 0").to_string();
            prop_assert!(err.starts_with(&format!("{}: a sequence of length T = 0", case.name)), "{err}");
        } else {
            prop_assert_eq!(ran.expect("a layer that fits"), vec![n, t, directions * h]);
        }
    }
}
