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
    let x = tape.var(ones(&[1, 1, 4, 4]));
    // 2^40 × 4 averaging weights (32 TiB): refused by the allocator, reported
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
