//! The teaching examples' key figures, each checked against a computation of its own: the
//! textbook's constants, closed forms and hand-written recurrences.

#[path = "../examples/02_perceptron.rs"]
mod perceptron;

#[path = "../examples/03_three_layer_forward.rs"]
mod three_layer_forward;

#[path = "../examples/08_linear_regression.rs"]
mod linear_regression;

#[path = "../examples/09_iris.rs"]
mod iris;

#[allow(dead_code)]
#[path = "../examples/15_optimizers.rs"]
mod optimizers;

use ndarray::{Array1, Axis};
use tapegrad::data::LabelledDataset;

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

#[test]
fn linear_regression_recovers_the_least_squares_line() {
    let report = linear_regression::report();
    let (x, y) = &report.train;
    assert_eq!((x.len(), report.test.0.len()), (80, 20));

    // the normal equations of y = a·x + b, solved by Cramer's rule
    let n = x.len() as f64;
    let (sx, sy, sxx, sxy) = (x.sum(), y.sum(), x.dot(x), x.dot(y));
    let a = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    let b = (sy - a * sx) / n;
    let model = &report.model;
    assert!((model.coef - a).abs() < 1e-9, "{} vs {a}", model.coef);
    assert!((model.intercept - b).abs() < 1e-9, "{} vs {b}", model.intercept);
    // the noise moves the line only a little from y = 3x + 4
    assert!(
        (a - linear_regression::TRUE_SLOPE).abs() < 0.5
            && (b - linear_regression::TRUE_INTERCEPT).abs() < 0.5
    );

    // on the training data R² is the squared correlation of x and y
    let r = (n * sxy - sx * sy) / ((n * sxx - sx * sx).sqrt() * (n * y.dot(y) - sy * sy).sqrt());
    assert!((report.train_score - r * r).abs() < 1e-9, "{} vs {}", report.train_score, r * r);
    let (tx, ty) = &report.test;
    let residual: f64 = tx.iter().zip(ty).map(|(x, y)| (y - a * x - b).powi(2)).sum();
    let mean = ty.mean().unwrap();
    let total: f64 = ty.iter().map(|y| (y - mean).powi(2)).sum();
    assert!((report.test_score - (1.0 - residual / total)).abs() < 1e-9);

    // gradient descent on a convex quadratic: the loss only falls (up to rounding once it has
    // converged), to the least-squares error
    assert_eq!(model.losses.len(), model.steps);
    assert!(model.losses.windows(2).all(|w| w[1] <= w[0] + 1e-12));
    let least: f64 = x.iter().zip(y).map(|(x, y)| (y - a * x - b).powi(2)).sum::<f64>() / n;
    assert!((model.losses.last().unwrap() - least).abs() < 1e-9);
}

#[test]
fn linear_regression_fits_an_exact_line_exactly() {
    let x = Array1::linspace(-1.0, 2.0, 7);
    let y = x.mapv(|x| 2.0 * x - 1.0);
    let mut model = linear_regression::LinearRegression::new(0.1, 1000);
    model.fit(&x, &y);
    assert!((model.coef - 2.0).abs() < 1e-9 && (model.intercept + 1.0).abs() < 1e-9, "{model:?}");
    assert!((model.score(&x, &y) - 1.0).abs() < 1e-12);
    assert_close(&model.predict(&Array1::from(vec![0.0, 10.0])).to_vec(), &[-1.0, 19.0], 1e-8);
    // the flat line at the mean of y scores R² = 0 on any data
    let (gx, gy) = linear_regression::make_data(50, 1);
    let flat = linear_regression::LinearRegression { coef: 0.0, intercept: gy.mean().unwrap(), ..model };
    assert!(flat.score(&gx, &gy).abs() < 1e-12);
}

#[test]
fn iris_standardises_with_training_statistics_and_classifies_the_held_out_flowers() {
    let report = iris::report().unwrap();
    let all = LabelledDataset::load(iris::IRIS).unwrap();
    let (train, test) = all.split(iris::TEST_FRACTION, iris::SEED).unwrap();
    assert_eq!(report.sizes, (120, 30));
    assert_eq!(report.class_names, ["setosa", "versicolor", "virginica"]);

    // mean and (population) standard deviation of each training column, by hand
    for (column, values) in train.features.axis_iter(Axis(1)).enumerate() {
        let mean = values.sum() / 120.0;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 120.0).sqrt();
        assert!((report.scaler.mean[column] - mean).abs() < 1e-12);
        assert!((report.scaler.std[column] - std).abs() < 1e-12);
        // the held-out flowers are left out: the whole data set's mean differs
        let everyone = all.features.column(column).sum() / 150.0;
        assert!((mean - everyone).abs() > 1e-6, "column {column}");
    }

    // the accuracy is the fraction of held-out flowers whose predicted species is right
    assert_eq!(report.test_predictions.len(), 30);
    let right = report.test_predictions.iter().zip(&test.labels).filter(|(p, l)| p == l).count();
    let last = report.epochs.last().unwrap();
    assert_eq!(last.test_accuracy, right as f64 / 30.0);
    // observed with seed 0: test 1.0000 (30 of 30), train 0.9833, loss 1.1799 → 0.0394
    assert!(last.test_accuracy >= 0.9, "test accuracy {}", last.test_accuracy);
    assert!(last.train_accuracy >= 0.95, "train accuracy {}", last.train_accuracy);
    assert_eq!(report.epochs.len(), iris::EPOCHS);
    assert!(report.epochs[0].loss > 5.0 * last.loss, "{} → {}", report.epochs[0].loss, last.loss);
    // seeded: a second run prints the same figures
    assert_eq!(iris::report().unwrap().epochs, report.epochs);
}

/// The textbook's update rules (its `common/optimizer.py`), one coordinate at a time on plain
/// numbers, for `x²/20 + y²`, whose gradient is `(x/10, 2y)`: the points `p₀ … p₃₀`.
fn textbook_path(name: &str, lr: f64) -> Vec<[f64; 2]> {
    let mut p = optimizers::START;
    let (mut first, mut second) = ([0.0; 2], [0.0; 2]);
    let mut path = vec![p];
    for t in 1..=optimizers::STEPS {
        let g = [p[0] / 10.0, 2.0 * p[1]];
        for i in 0..2 {
            match name {
                "SGD" => p[i] -= lr * g[i],
                // v ← 0.9v − lr·g, p ← p + v
                "Momentum" => {
                    first[i] = 0.9 * first[i] - lr * g[i];
                    p[i] += first[i];
                }
                // h ← h + g², p ← p − lr·g/(√h + 1e-7)
                "AdaGrad" => {
                    second[i] += g[i] * g[i];
                    p[i] -= lr * g[i] / (second[i].sqrt() + 1e-7);
                }
                // h ← 0.99h + 0.01g², p ← p − lr·g/(√h + 1e-7)
                "RMSProp" => {
                    second[i] = 0.99 * second[i] + 0.01 * g[i] * g[i];
                    p[i] -= lr * g[i] / (second[i].sqrt() + 1e-7);
                }
                // lr_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ), m ← m + (1 − β₁)(g − m),
                // v ← v + (1 − β₂)(g² − v), p ← p − lr_t·m/(√v + 1e-7)
                "Adam" => {
                    let t = t as i32;
                    let lr_t = lr * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
                    first[i] += 0.1 * (g[i] - first[i]);
                    second[i] += 0.001 * (g[i] * g[i] - second[i]);
                    p[i] -= lr_t * first[i] / (second[i].sqrt() + 1e-7);
                }
                _ => panic!("no rule for {name}"),
            }
        }
        path.push(p);
    }
    path
}

#[test]
fn optimizers_take_the_textbooks_steps_on_the_same_valley() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plots_15");
    let report = optimizers::report(&dir);
    let runs = optimizers::runs();
    let names: Vec<&str> = runs.iter().map(|r| r.name).collect();
    assert_eq!(names, ["SGD", "Momentum", "AdaGrad", "RMSProp", "Adam"]);
    let f = |p: [f64; 2]| p[0] * p[0] / 20.0 + p[1] * p[1];

    // SGD in closed form: x ← x − lr·x/10 and y ← y − lr·2y, so xₖ = −7(1 − lr/10)ᵏ and
    // yₖ = 2(1 − 2·lr)ᵏ = 2(−0.9)ᵏ: y changes sign at every step
    let sgd = &runs[0];
    assert_eq!((sgd.lr, sgd.path.len()), (0.95, optimizers::STEPS + 1));
    for (k, p) in (0..).zip(&sgd.path) {
        assert_close(p, &[-7.0 * (1.0 - 0.095f64).powi(k), 2.0 * (-0.9f64).powi(k)], 1e-12);
    }
    assert_eq!(sgd.y_sign_changes(), 30);

    // every optimizer, step by step, against the textbook's rules; Adam's ε sits in another
    // place there (added to √v, not to √v̂), which moves its points by up to 9.5e-6
    for run in &runs {
        let hand = textbook_path(run.name, run.lr);
        let tolerance = if run.name == "Adam" { 1e-5 } else { 1e-12 };
        for (found, expected) in run.path.iter().zip(&hand) {
            assert_close(found, expected, tolerance);
        }
        let [x, y] = hand[optimizers::STEPS];
        let line =
            format!("{:<8}  lr {:<4}  ends at ({x:>8.4}, {y:>7.4})  f = {:.6}", run.name, run.lr, f([x, y]));
        assert!(report.contains(&line), "{line:?} not in\n{report}");
    }

    // all end near the minimum at (0, 0), from f(−7, 2) = 6.45
    let ends: Vec<([f64; 2], f64)> = runs.iter().map(|r| (r.last(), f(r.last()))).collect();
    for (run, &(p, value)) in runs.iter().zip(&ends) {
        assert!(value < 0.11 && p[0].hypot(p[1]) < 0.91, "{} ends at {p:?}", run.name);
    }
    // AdaGrad ends lowest (f ≈ 7.2e-4), its y flattened to 0 without a sign change; Adam,
    // circling round, ends within 0.35 of (0, 0) but highest
    let lowest = ends.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
    assert_eq!(lowest, ends[2].1);
    assert!(ends[2].1 < 1e-3 && ends[2].0[1].abs() < 1e-12 && runs[2].y_sign_changes() == 0);
    assert!(ends[4].0[0].hypot(ends[4].0[1]) < 0.35 && ends[4].1 > 0.1);

    // RMSProp at the textbook's default rate, 0.01, hardly moves in 30 steps
    let slow = optimizers::descend("RMSProp", 0.01).last();
    assert_close(&slow, &textbook_path("RMSProp", 0.01)[30], 1e-12);
    assert_close(&slow, &[-6.0425, 1.1198], 1e-4);

    let path = dir.join(optimizers::PLOT);
    assert!(report.ends_with(&format!("wrote {}\n", path.display())), "{report}");
    let file = std::fs::File::open(&path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (880, 520));
    let channels = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> =
        pixels[..info.buffer_size()].chunks_exact(channels).collect();
    assert!(colours.len() > 20, "only {} colours: nothing drawn?", colours.len());
}
