//! The teaching examples' key figures, each checked against a computation of its own: the
//! textbook's constants, closed forms and hand-written recurrences.

#[path = "../examples/02_perceptron.rs"]
mod perceptron;

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
fn perceptron_gates_follow_the_textbook_weights_and_boolean_logic() {
    let report = perceptron::report();
    let names: Vec<&str> = report.gates.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["AND", "NAND", "OR", "XOR"]);
    // the four rows are the four input combinations
    let mut rows: Vec<[u8; 2]> = perceptron::INPUTS.iter().map(|x| x.map(|v| v as u8)).collect();
    rows.sort();
    assert_eq!(rows, [[0, 0], [0, 1], [1, 0], [1, 1]]);

    let step = |w: [f64; 2], b: f64, x: [f64; 2]| if w[0] * x[0] + w[1] * x[1] + b > 0.0 { 1.0 } else { 0.0 };
    let textbook = [([0.5, 0.5], -0.7), ([-0.5, -0.5], 0.7), ([0.5, 0.5], -0.2)];
    let logic: [fn(bool, bool) -> bool; 4] = [|a, b| a && b, |a, b| !(a && b), |a, b| a || b, |a, b| a != b];
    for (row, &x) in perceptron::INPUTS.iter().enumerate() {
        let (a, b) = (x[0] == 1.0, x[1] == 1.0);
        for (gate, (w, bias)) in textbook.into_iter().enumerate() {
            assert_eq!(report.gates[gate].1[row], step(w, bias, x), "{} at {x:?}", names[gate]);
        }
        for (gate, truth) in logic.iter().enumerate() {
            assert_eq!(
                report.gates[gate].1[row],
                f64::from(u8::from(truth(a, b))),
                "{} at {x:?}",
                names[gate]
            );
        }
    }
    for (gate, (w, b)) in [perceptron::AND, perceptron::NAND, perceptron::OR].into_iter().zip(textbook) {
        assert_eq!((gate.weights, gate.bias), (w, b));
    }
}

#[test]
fn the_learned_xor_is_right_and_its_loss_is_the_cross_entropy_of_its_outputs() {
    let report = perceptron::report();
    let targets = [0.0, 1.0, 1.0, 0.0];
    // observed with seed 0: 0.0065, 0.9945, 0.9959, 0.0052
    assert_close(&report.learned, &targets, 0.05);
    let steps: Vec<usize> = report.losses.iter().map(|&(step, _)| step).collect();
    assert_eq!(steps, [0, 200, 400, 600, 800, 1000]);
    assert!(report.losses.windows(2).all(|w| w[1].1 < w[0].1), "{:?}", report.losses);
    // the last loss is taken after the last step: −mean(t·ln p + (1 − t)·ln(1 − p))
    let bce = -report
        .learned
        .iter()
        .zip(targets)
        .map(|(p, t)| t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        .sum::<f64>()
        / 4.0;
    let last = report.losses.last().unwrap().1;
    assert!((last - bce).abs() < 1e-9, "{last} vs {bce}");
    assert!(last < 0.01, "{last}");
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
