//! The teaching examples' key figures, each checked against a computation of its own: the
//! textbook's constants, closed forms and hand-written recurrences.

#[path = "../examples/03_three_layer_forward.rs"]
mod three_layer_forward;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `a_j = Σ_i x_i·W_ij + b_j`, with plain loops.
fn affine(x: &[f64], w: &[&[f64]], b: &[f64]) -> Vec<f64> {
    (0..b.len()).map(|j| (0..x.len()).map(|i| x[i] * w[i][j]).sum::<f64>() + b[j]).collect()
}

fn assert_close(found: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(found.len(), expected.len(), "{found:?} vs {expected:?}");
    for (f, e) in found.iter().zip(expected) {
        assert!((f - e).abs() <= tolerance, "{found:?} vs {expected:?}");
    }
}

#[test]
fn three_layer_forward_gives_the_textbook_output() {
    let report = three_layer_forward::report();
    let x = [1.0, 0.5];
    let a1 = affine(&x, &[&[0.1, 0.3, 0.5], &[0.2, 0.4, 0.6]], &[0.1, 0.2, 0.3]);
    let z1: Vec<f64> = a1.iter().map(|&a| sigmoid(a)).collect();
    let a2 = affine(&z1, &[&[0.1, 0.4], &[0.2, 0.5], &[0.3, 0.6]], &[0.1, 0.2]);
    let z2: Vec<f64> = a2.iter().map(|&a| sigmoid(a)).collect();
    let y = affine(&z2, &[&[0.1, 0.3], &[0.2, 0.4]], &[0.1, 0.2]);
    assert_eq!(report.input, x);
    for (found, expected) in report.sums.iter().zip([&a1, &a2, &y]) {
        assert_close(found, expected, 1e-12);
    }
    for (found, expected) in report.outputs.iter().zip([&z1, &z2, &y]) {
        assert_close(found, expected, 1e-12);
    }
    // the textbook's printed figures, to their 8 decimals
    assert_close(&report.sums[0], &[0.3, 0.7, 1.1], 1e-12);
    assert_close(&report.outputs[0], &[0.57444252, 0.66818777, 0.75026011], 5e-9);
    assert_close(report.y(), &[0.31682708, 0.69627909], 5e-9);
    let printed = report.to_string();
    assert_eq!(printed.lines().last(), Some("y  = [0.31682708, 0.69627909]"), "{printed}");
}
