//! The optimisation and higher-order examples' printed figures, pinned against closed forms and
//! hand recurrences computed here in plain `f64`, and their pictures checked to decode.
// Examples 04 and 06 each bring their own copy of `examples/common/plots.rs`, as they do when
// built alone.
#![allow(clippy::duplicate_mod)]

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../examples/04_gradient_descent.rs"]
mod gradient_descent;

#[allow(dead_code)]
#[path = "../examples/05_newton.rs"]
mod newton;

#[allow(dead_code)]
#[path = "../examples/06_higher_order.rs"]
mod higher_order;

#[allow(dead_code)]
#[path = "../examples/07_gradient_penalty.rs"]
mod gradient_penalty;

/// The lines after `header`, up to the next blank line.
fn section<'r>(report: &'r str, header: &str) -> Vec<&'r str> {
    let mut lines = report.lines().skip_while(|l| *l != header);
    assert_eq!(lines.next(), Some(header), "no section {header:?} in\n{report}");
    lines.take_while(|l| !l.is_empty()).collect()
}

#[track_caller]
fn assert_close(printed: f64, expected: f64, rtol: f64) {
    assert!(
        (printed - expected).abs() <= rtol * expected.abs(),
        "printed {printed}, expected {expected} (relative tolerance {rtol})"
    );
}

fn number(s: &str) -> f64 {
    s.trim().parse().unwrap_or_else(|_| panic!("{s:?} is not a number"))
}

/// `"step k: (a, b)"` as `(k, a, b)`.
fn step_point(line: &str) -> (usize, f64, f64) {
    let (step, point) = line.strip_prefix("step ").and_then(|l| l.split_once(": (")).expect("step k: (a, b)");
    let (a, b) = point.strip_suffix(')').and_then(|p| p.split_once(", ")).expect("(a, b)");
    (step.parse().expect("a step number"), number(a), number(b))
}

fn plot_dir(example: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("plots_{example}"))
}

/// Decodes a PNG: its size and how many distinct colours it uses.
fn decode_png(path: &Path) -> (u32, u32, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    let channels = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> =
        pixels[..info.buffer_size()].chunks_exact(channels).collect();
    (info.width, info.height, colours.len())
}

#[test]
fn gradient_descent_prints_the_iterates_and_draws_the_plots() {
    let dir = plot_dir("04");
    let report = gradient_descent::report(&dir);

    // y = x²: x ← x − η·2x = (1 − 2η)x, so xₖ = 2(1 − 2η)ᵏ⁻¹; the learning rate is η, not the
    // finite-difference step h
    assert!(!report.contains("h = 0.1"), "the learning rate is printed as h:\n{report}");
    for (lr, ratio) in [(0.1, 0.8), (0.2, 0.6)] {
        let lines = section(&report, &format!("y = x², x₁ = 2, learning rate η = {lr}"));
        assert_eq!(lines.len(), 50);
        for (k, line) in (1..).zip(&lines) {
            let (name, value) = line.split_once(" = ").expect("xk = value");
            assert_eq!(name, format!("x{k}"));
            assert_close(number(value), 2.0 * f64::powi(ratio, k - 1), 1e-9);
        }
    }
    let table = section(&report, "y = x², x₁ = 2, learning rate η = 0.1");
    assert_eq!(&table[..3], ["x1 = 2", "x2 = 1.6", "x3 = 1.28"]);
    assert!(table[49].starts_with("x50 = 3.57") || table[49].starts_with("x50 = 3.56"), "{}", table[49]);

    // x² + y²: the gradient is 2p, so p ← 0.8p and pₖ = (−3, 4)·0.8ᵏ
    let lines = section(&report, "f(x, y) = x² + y², from (−3, 4), learning rate 0.1");
    let steps: Vec<usize> = lines.iter().map(|l| step_point(l).0).collect();
    assert_eq!(steps, [(0..=10).collect::<Vec<_>>(), (20..=100).step_by(10).collect()].concat());
    for line in &lines {
        let (k, x, y) = step_point(line);
        let shrink = 0.8f64.powi(k as i32);
        assert_close(x, -3.0 * shrink, 1e-9);
        assert_close(y, 4.0 * shrink, 1e-9);
    }

    // Rosenbrock, by hand: ∂f/∂x = −2(1 − x) − 400x(y − x²), ∂f/∂y = 200(y − x²)
    let lines = section(&report, "Rosenbrock 100(y − x²)² + (1 − x)², from (0, 2), learning rate 0.001");
    assert_eq!(lines.len(), 16);
    let (mut x, mut y) = (0.0f64, 2.0f64);
    let mut hand = vec![(x, y)];
    for _ in 0..10_000 {
        let (dx, dy) = (-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x));
        (x, y) = (x - 0.001 * dx, y - 0.001 * dy);
        hand.push((x, y));
    }
    for line in &lines {
        let (k, px, py) = step_point(line);
        assert!(k <= 5 || k % 1000 == 0, "{line}");
        assert_close(px, hand[k].0, 1e-8);
        assert_close(py, hand[k].1, 1e-8);
    }
    let (_, px, py) = step_point(lines[15]);
    assert_eq!((format!("{px:.3}"), format!("{py:.3}")), ("0.994".into(), "0.989".into()));

    // 0.01x² + 0.1x has derivative 0.02x + 0.1
    let lines = section(&report, "0.01x² + 0.1x: numerical derivative");
    assert_close(number(lines[0].strip_prefix("at x = 5: ").expect("x = 5")), 0.2, 1e-9);
    assert_close(number(lines[1].strip_prefix("at x = 10: ").expect("x = 10")), 0.3, 1e-9);

    for name in gradient_descent::PLOTS {
        let path = dir.join(name);
        assert!(report.contains(&format!("wrote {}", path.display())), "{report}");
        let (width, height, colours) = decode_png(&path);
        let expected =
            if matches!(name, "tangent.png" | "descent_square.png") { (640, 480) } else { (560, 560) };
        assert_eq!((width, height), expected, "{name}");
        assert!(colours > 20, "{name} has only {colours} colours: nothing drawn?");
    }
}

#[test]
fn newton_prints_the_iterates_of_x4_minus_2x2() {
    let report = newton::report();
    let lines = section(&report, "Newton's method on f(x) = x⁴ − 2x², from x = 2");
    // by hand: f′ = 4x³ − 4x, f″ = 12x² − 4
    let (df, d2f) = (|x: f64| 4.0 * x.powi(3) - 4.0 * x, |x: f64| 12.0 * x * x - 4.0);
    let mut x = 2.0f64;
    for (k, line) in lines.iter().take(11).enumerate() {
        let (step, rest) = line.split_once(' ').expect("k x …");
        assert_eq!(step, k.to_string());
        let (printed, derivatives) = rest.split_once("   f′ = ").expect("x   f′ = …");
        assert_close(number(printed), x, 1e-14);
        let (first, second) = derivatives.split_once(", f″ = ").expect("f′, f″");
        assert!((number(first) - df(x)).abs() <= 1e-6 * df(x).abs() + 1e-12, "{line}");
        assert_close(number(second), d2f(x), 1e-6);
        x -= df(x) / d2f(x);
    }
    let iterates: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).expect("x")).collect();
    for (printed, textbook) in iterates.iter().zip(["2", "1.4545", "1.1510", "1.0253", "1.0009", "1.0000012"])
    {
        assert!(printed.starts_with(textbook), "{printed} vs {textbook}");
    }
    assert_eq!(lines[11], "x = 1 exactly after 7 steps");

    // gradient descent by hand: x ← x − 0.01·f′(x), counted until as close to 1 as Newton's x₆
    let mut x = 2.0f64;
    for _ in 0..6 {
        x -= df(x) / d2f(x);
    }
    let tolerance = (x - 1.0).abs().max(1e-12);
    let (mut x, mut steps) = (2.0f64, 0);
    while (x - 1.0).abs() >= tolerance {
        x -= 0.01 * df(x);
        steps += 1;
    }
    assert!(
        lines[12].starts_with(&format!("gradient descent, learning rate 0.01: {steps} steps")),
        "{}",
        lines[12]
    );
}

#[test]
fn higher_order_tanh_derivatives_match_their_polynomials_and_graphs_grow() {
    let dir = plot_dir("06");
    let report = higher_order::report(&dir);
    let lines = section(&report, "derivatives of tanh at x = 1");
    assert_eq!(lines.len(), higher_order::ORDER + 1);
    // dⁿ tanh/dxⁿ = Pₙ(tanh x) with P₀(t) = t and Pₙ₊₁(t) = Pₙ′(t)·(1 − t²)
    let t = 1f64.tanh();
    let mut polynomial = vec![0.0, 1.0]; // coefficients of t⁰, t¹, …
    let mut sizes = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let value = polynomial.iter().rev().fold(0.0, |acc, c| acc * t + c);
        let (head, graph) = line.split_once("   graph: ").expect("value   graph: …");
        let printed = number(head.strip_prefix(&format!("order {n}: ")).expect("order n: value"));
        assert_close(printed, value, 1e-12);
        let (variables, rest) = graph.split_once(" variables, ").expect("V variables, O ops");
        let (ops, file) = rest.split_once(" ops (").expect("O ops (file)");
        let (variables, ops): (usize, usize) = (variables.parse().unwrap(), ops.parse().unwrap());
        let dot = std::fs::read_to_string(file.strip_suffix(')').expect("(file)")).expect("the DOT file");
        assert!(dot.starts_with("digraph"));
        assert_eq!(
            (dot.matches("shape=ellipse").count(), dot.matches("shape=box").count()),
            (variables, ops)
        );
        sizes.push(variables + ops);
        let derivative: Vec<f64> = polynomial.iter().enumerate().skip(1).map(|(k, c)| k as f64 * c).collect();
        polynomial = vec![0.0; derivative.len() + 2];
        for (k, c) in derivative.iter().enumerate() {
            polynomial[k] += c;
            polynomial[k + 2] -= c;
        }
    }
    // Variables + ops of the graph of each derivative, as counted when the example was written:
    // a change here means the backward rules of tanh, mul or the accumulation changed shape.
    assert_eq!(sizes, [3, 10, 14, 35, 82, 193, 468]);
}

/// The network and its slope in plain `f64`, `θ = [w₁…, b₁…, w₂…, b₂]`: the mean squared error
/// and the mean squared slope, the slope by the chain rule by hand.
fn hand_objective(theta: &[f64]) -> (f64, f64) {
    let h = gradient_penalty::HIDDEN;
    let (w1, b1, w2, b2) = (&theta[..h], &theta[h..2 * h], &theta[2 * h..3 * h], theta[3 * h]);
    let (xs, ts) = gradient_penalty::data();
    let (mut mse, mut slope2) = (0.0, 0.0);
    for (x, t) in xs.iter().zip(&ts) {
        let hidden: Vec<f64> = (0..h).map(|j| (w1[j] * x + b1[j]).tanh()).collect();
        let y: f64 = (0..h).map(|j| w2[j] * hidden[j]).sum::<f64>() + b2;
        let slope: f64 = (0..h).map(|j| w2[j] * (1.0 - hidden[j].powi(2)) * w1[j]).sum();
        mse += (y - t).powi(2);
        slope2 += slope * slope;
    }
    (mse / xs.len() as f64, slope2 / xs.len() as f64)
}

/// Gradient descent on `mse + λ·slope²` with central-difference gradients.
fn hand_training(lambda: f64) -> Vec<(f64, f64)> {
    let p = gradient_penalty::initial_parameters();
    let mut theta = [p.w1, p.b1, p.w2, vec![p.b2]].concat();
    let loss = |theta: &[f64]| {
        let (mse, slope2) = hand_objective(theta);
        mse + lambda * slope2
    };
    let mut history = vec![hand_objective(&theta)];
    for _ in 0..gradient_penalty::STEPS {
        let gradient: Vec<f64> = (0..theta.len())
            .map(|i| {
                let (mut plus, mut minus) = (theta.clone(), theta.clone());
                plus[i] += 1e-6;
                minus[i] -= 1e-6;
                (loss(&plus) - loss(&minus)) / 2e-6
            })
            .collect();
        for (t, g) in theta.iter_mut().zip(gradient) {
            *t -= gradient_penalty::LR * g;
        }
        history.push(hand_objective(&theta));
    }
    history
}

#[test]
fn gradient_penalty_training_matches_a_hand_written_recurrence() {
    let report = gradient_penalty::report();
    let lambda = gradient_penalty::LAMBDA;
    let header = format!("loss = mse + {lambda}·mean (∂f/∂x)², learning rate {}", gradient_penalty::LR);
    let lines = section(&report, &header);
    let hand = hand_training(lambda);
    assert_eq!(lines.len(), gradient_penalty::STEPS / 5 + 2);
    for line in &lines[..lines.len() - 1] {
        let (step, rest) =
            line.strip_prefix("step ").and_then(|l| l.split_once(": loss ")).expect("step k: …");
        let k: usize = step.parse().expect("a step");
        let (loss, rest) = rest.split_once(", mse ").expect("loss …, mse …");
        let (mse, slope2) = rest.split_once(", slope² ").expect("mse …, slope² …");
        let (hand_mse, hand_slope2) = hand[k];
        assert_close(number(mse), hand_mse, 1e-7);
        assert_close(number(slope2), hand_slope2, 1e-7);
        assert_close(number(loss), hand_mse + lambda * hand_slope2, 1e-7);
    }
    // The summary: both runs after the last step; the penalty flattens the fit.
    let plain = hand_training(0.0);
    let summary = lines.last().expect("a summary");
    let numbers: Vec<f64> = summary
        .split([' ', ',', ';'])
        .filter_map(|w| w.parse().ok())
        .filter(|&v: &f64| v != gradient_penalty::STEPS as f64)
        .collect();
    let steps = gradient_penalty::STEPS;
    let expected = [hand[steps].0, hand[steps].1, plain[steps].0, plain[steps].1];
    assert_eq!(numbers.len(), 4, "{summary}");
    for (printed, expected) in numbers.iter().zip(expected) {
        assert_close(*printed, expected, 1e-7);
    }
    assert!(hand[steps].1 < plain[steps].1 && hand[steps].0 < hand[0].0, "{summary}");
}
