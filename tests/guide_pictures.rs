//! The numbers the guide's concept pictures show (example `guide_pictures`), each against a
//! computation of its own: the course's hand-worked gradients, closed forms, the window
//! formula, the LSTM equations, and the experiments' outcomes with a margin.

#[allow(dead_code)]
#[path = "../examples/guide_pictures.rs"]
mod guide_pictures;

use std::collections::HashMap;

use guide_pictures as pictures;
use ndarray::{Array2, array};
use rand::SeedableRng;
use tapegrad::Tape;
use tapegrad::nn::{self, LstmCell};

/// The labelled edges of a DOT graph from `to_dot_backward`, as `(from, to, gradient)`: `from`
/// is the name of the variable (or of the op's result, for an op's edge to its result), `to`
/// the name of the result the edge leads to; the gradient is the red label, as written.
fn edges(dot: &str) -> Vec<(String, String, String)> {
    let mut names = HashMap::new();
    for line in dot.lines().map(str::trim) {
        if let Some((key, rest)) = line.split_once(" [label=\"")
            && line.contains("shape=ellipse")
        {
            let label = rest.split('"').next().unwrap();
            names.insert(key.to_string(), label.split("\\n").next().unwrap().to_string());
        }
    }
    let name = |key: &str| names[key.trim_start_matches("op")].clone();
    dot.lines()
        .map(str::trim)
        .filter(|l| l.contains(" -> ") && l.contains("fontcolor=red"))
        .map(|l| {
            let (from, rest) = l.split_once(" -> ").unwrap();
            let (to, label) = rest.split_once(" [label=\"").unwrap();
            (name(from), name(to), label.split('"').next().unwrap().to_string())
        })
        .collect()
}

/// The gradient on the edge from `from` into the op that makes `to`.
fn edge(edges: &[(String, String, String)], from: &str, to: &str) -> String {
    let found: Vec<_> = edges.iter().filter(|e| e.0 == from && e.1 == to).collect();
    assert_eq!(found.len(), 1, "one edge {from} → {to} in {edges:?}");
    found[0].2.clone()
}

fn close(label: &str, expected: f64) -> bool {
    let value: f64 = label.parse().unwrap_or_else(|_| panic!("a number: {label}"));
    (value - expected).abs() <= 1e-5 * expected.abs().max(1.0)
}

#[test]
fn the_apple_graph_carries_the_courses_gradients_on_every_edge() {
    let e = edges(&pictures::apple_orange_backward());
    // two edges into each of the four ops and one out of each
    assert_eq!(e.len(), 12);
    // by hand, right to left: × swaps its inputs, + passes the gradient through
    let tax = 1.1;
    let all_price = 100.0 * 2.0 + 150.0 * 3.0;
    let expected = [
        ("price", "price", 1.0),
        ("all_price", "price", tax),
        ("tax", "price", all_price),
        ("all_price", "all_price", tax),
        ("apple_price", "all_price", tax),
        ("orange_price", "all_price", tax),
        ("apple_price", "apple_price", tax),
        ("apple", "apple_price", tax * 2.0),
        ("apple_num", "apple_price", tax * 100.0),
        ("orange_price", "orange_price", tax),
        ("orange", "orange_price", tax * 3.0),
        ("orange_num", "orange_price", tax * 150.0),
    ];
    for (from, to, g) in expected {
        let label = edge(&e, from, to);
        assert!(close(&label, g), "{from} → {to}: {label}, expected {g}");
    }
    assert_eq!(edge(&e, "tax", "price"), "650");
    assert_eq!(edge(&e, "apple_num", "apple_price"), "110");
}

#[test]
fn the_sigmoid_graph_backward_is_y_times_one_minus_y() {
    let e = edges(&pictures::sigmoid_backward());
    let x: f64 = 1.0;
    let y = 1.0 / (1.0 + (-x).exp());
    // 1 ÷ u has slope −1/u² = −y²; + 1 passes it on; exp multiplies by exp(−x); × −1 flips it
    assert!(close(&edge(&e, "1 + exp(−x)", "y"), -y * y));
    assert!(close(&edge(&e, "exp(−x)", "1 + exp(−x)"), -y * y));
    assert!(close(&edge(&e, "−x", "exp(−x)"), -y * y * (-x).exp()));
    assert!(close(&edge(&e, "x", "−x"), y * (1.0 - y)));

    // and at other points, the composed gradient is the sigmoid op's y(1 − y)
    for x0 in [-3.0, -0.5, 0.0, 0.7, 2.5] {
        let tape = Tape::<f64>::new();
        let x = tape.var(x0);
        let by_parts = pictures::sigmoid_by_parts(x).backward()[x].scalar().unwrap();
        let y = 1.0 / (1.0 + f64::exp(-x0));
        assert!((by_parts - y * (1.0 - y)).abs() < 1e-15, "at {x0}: {by_parts}");
        let fused = x.sigmoid().backward()[x].scalar().unwrap();
        assert!((by_parts - fused).abs() < 1e-15);
    }
}

#[test]
fn the_softmax_with_loss_graph_ends_in_y_minus_t() {
    let e = edges(&pictures::softmax_with_loss_backward());
    let a = [0.3f64, 2.9, 4.0];
    let total: f64 = a.iter().map(|v| v.exp()).sum();
    let y: Vec<f64> = a.iter().map(|v| v.exp() / total).collect();
    let t = [0.0, 0.0, 1.0];
    let into_exp = edge(&e, "a", "exp(a)");
    let values: Vec<f64> = into_exp
        .trim_start_matches("[3] [")
        .trim_end_matches(']')
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    for k in 0..3 {
        assert!((values[k] - (y[k] - t[k])).abs() < 1e-6, "{into_exp}");
    }
    // the loss is −ln y₂
    assert!(close(&edge(&e, "L", "L"), 1.0));

    // a batch of two: the composed gradient is (y − t)/N, the fused op's
    let tape = Tape::<f64>::new();
    let logits = array![[0.3, 2.9, 4.0], [1.0, -0.5, 0.2]];
    let labels = [2, 0];
    let targets = array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]];
    let a = tape.var(logits.clone());
    let composed = pictures::softmax_with_loss_by_parts(a, tape.constant(targets.clone()));
    let by_parts = composed.backward()[a].to_array();
    let fused_loss = nn::softmax_cross_entropy(a, &labels);
    assert!((composed.scalar() - fused_loss.scalar()).abs() < 1e-14);
    let fused = fused_loss.backward()[a].to_array();
    let softmax = logits.map_axis(ndarray::Axis(1), |row| {
        let total: f64 = row.iter().map(|v| v.exp()).sum();
        row.mapv(|v| v.exp() / total)
    });
    for n in 0..2 {
        for k in 0..3 {
            let by_hand = (softmax[n][k] - targets[[n, k]]) / 2.0;
            assert!((by_parts[[n, k]] - by_hand).abs() < 1e-15);
            assert!((fused[[n, k]] - by_hand).abs() < 1e-15);
        }
    }
}

#[test]
fn the_im2col_picture_shows_what_the_window_formula_reads() {
    let window = pictures::picture_window();
    let columns = pictures::numbered_im2col(window);
    let (n, stride, pad, k) = (pictures::INPUT, 2, 1, 3);
    let outputs = (n + 2 * pad - k) / stride + 1;
    assert_eq!(columns.dim(), (outputs * outputs, k * k));
    // output (oh, ow)'s tap (ki, kj) reads pixel (oh·S + ki − P, ow·S + kj − P), numbered from 1
    let expected = Array2::from_shape_fn((outputs * outputs, k * k), |(row, tap)| {
        let (r, c) = ((row / outputs) * stride + tap / k, (row % outputs) * stride + tap % k);
        let inside = (pad..pad + n).contains(&r) && (pad..pad + n).contains(&c);
        if inside { ((r - pad) * n + (c - pad) + 1) as f64 } else { 0.0 }
    });
    assert_eq!(columns, expected);
    let corners = pictures::window_corners(&columns, window);
    let by_formula: Vec<_> =
        (0..outputs * outputs).map(|o| ((o / outputs) * stride, (o % outputs) * stride)).collect();
    assert_eq!(corners, by_formula);
    assert_eq!(pictures::conv_window_svg().matches("output (").count(), outputs * outputs);
    assert_eq!(pictures::im2col_svg().matches("window (").count(), outputs * outputs);
}

#[test]
fn the_lstm_picture_names_the_gates_in_the_cells_order() {
    let dot = pictures::lstm_dot();
    for line in ["i = σ(z[:, 0..H])", "f = σ(z[:, H..2H])", "g = tanh(z[:, 2H..3H])", "o = σ(z[:, 3H..4H])"]
    {
        assert!(dot.contains(line), "{line} in {dot}");
    }
    // the equations with the gates sliced in the picture's order give the cell's step
    let tape = Tape::<f64>::new();
    let (d, h) = (3, 2);
    let cell = LstmCell::new(&tape, d, h, &mut rand::rngs::StdRng::seed_from_u64(1));
    let x = tape.constant(array![[0.5, -1.0, 2.0]]);
    let first = cell.step(x, None);
    let second = cell.step(x, Some(first));
    let z = x.matmul(tape.get(cell.weight_ih).transpose())
        + tape.get(cell.bias_ih)
        + first.h.matmul(tape.get(cell.weight_hh).transpose())
        + tape.get(cell.bias_hh);
    let gate = |name: &str| {
        let k = pictures::GATES.iter().position(|g| *g == name).unwrap();
        let rows = z.narrow(1, k * h, h);
        if name == "g" { rows.tanh() } else { rows.sigmoid() }
    };
    let c = gate("f") * first.c.unwrap() + gate("i") * gate("g");
    let h_next = gate("o") * c.tanh();
    let difference =
        |a: ndarray::ArrayD<f64>, b: ndarray::ArrayD<f64>| (a - b).iter().fold(0.0f64, |m, e| m.max(e.abs()));
    assert!(difference(second.c.unwrap().to_array(), c.to_array()) < 1e-12);
    assert!(difference(second.h.to_array(), h_next.to_array()) < 1e-12);
}

#[test]
fn the_cbow_picture_shares_w_in_between_the_context_words() {
    let dot = pictures::cbow_dot();
    assert_eq!(dot.matches("label=\"× W_in").count(), 2);
    assert!(dot.contains("shared weights") && dot.contains("Softmax\\nwith Loss"));
}

#[test]
fn the_rnns_gradient_vanishes_over_50_steps_and_the_lstms_much_less() {
    let v = pictures::vanishing(pictures::VANISHING_STEPS, 0);
    let ratio = |g: &[f64]| g[0] / g[g.len() - 1];
    // measured: RNN 2.1e-16, LSTM as initialised 5.3e-11, forget gate biased open 7.0e-2
    assert!(ratio(&v.rnn) < 1e-13, "{}", ratio(&v.rnn));
    assert!(ratio(&v.lstm) > 1e3 * ratio(&v.rnn), "{} against {}", ratio(&v.lstm), ratio(&v.rnn));
    assert!(ratio(&v.lstm_open) > 1e-2, "{}", ratio(&v.lstm_open));
    // the RNN's falls all along the way
    let rnn = &v.rnn;
    assert!(rnn[0] < rnn[12] && rnn[12] < rnn[24] && rnn[24] < rnn[36] && rnn[36] < rnn[49]);

    // the last step by hand: ∂(Σ h_T)/∂x_T = Σ_j (1 − h_j²)·W_ih[j, :]
    let tape = Tape::<f64>::new();
    let cell = nn::RnnCell::new(&tape, 4, 16, &mut rand::rngs::StdRng::seed_from_u64(1));
    let x = tape.var(array![[0.3, -1.2, 0.8, 0.1]]);
    let h = cell.step(x, None).h;
    let g = h.sum().backward()[x].to_array();
    let (hv, w) = (h.to_array(), tape.get(cell.weight_ih).to_array());
    for i in 0..4 {
        let by_hand: f64 = (0..16).map(|j| (1.0 - hv[[0, j]].powi(2)) * w[[j, i]]).sum();
        assert!((g[[0, i]] - by_hand).abs() < 1e-14);
    }
}

#[test]
fn clipping_caps_the_spikes_and_lets_the_rnn_learn() {
    let steps = pictures::CLIP_STEPS;
    let plain = pictures::train_recurrent(steps, None, 0);
    let clipped = pictures::train_recurrent(steps, Some(pictures::MAX_NORM), 0);
    let max = |v: &[f64]| v.iter().fold(0.0f64, |a, &b| a.max(b));
    let median = |v: &[f64]| {
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let tail = |v: &[f64]| v[v.len() - 50..].iter().sum::<f64>() / 50.0;
    // measured: largest 91.7, median 2.65; loss 1.35 at the first step, its mean over the last
    // 50 steps 1.040 without clipping, 0.096 with
    assert!(max(&plain.norms) > 10.0 * median(&plain.norms));
    assert!(tail(&plain.losses) > 0.5, "{}", tail(&plain.losses));
    assert!((plain.losses[0] - 1.35).abs() < 0.005, "{}", plain.losses[0]);
    assert!(tail(&clipped.losses) < 0.3 * tail(&plain.losses), "{}", tail(&clipped.losses));
    assert!(plain.norms.iter().chain(&clipped.norms).all(|g| g.is_finite()));
    // the same first step: same start, same data, and the norm is taken before clipping
    assert_eq!(plain.norms[0], clipped.norms[0]);
    assert_eq!(plain.losses[0], clipped.losses[0]);
}
