//! The guide's pictures of the course's concepts, each drawn from the crate's own computation:
//!
//! - the backward pass on the apple and orange graph, the sigmoid built from `× −1`, `exp`,
//!   `+ 1` and `1 ÷`, and softmax followed by the cross-entropy on three classes, as Graphviz
//!   DOT from the tape ([`Tape::to_dot_backward`]: the gradient on every edge);
//! - a 3×3 window sliding with stride 2 over a padded 5×5 input, and the matrix `im2col` makes
//!   of it, as SVG written here from the crate's own `im2col`;
//! - the CBOW network and the LSTM cell (in tapegrad's gate order), as DOT written here;
//! - two experiments, plotted: the gradient reaching earlier steps of a plain RNN and of an
//!   LSTM, and the gradient norms of a recurrent model trained with and without
//!   `clip_grad_norm`.
//!
//! Run with `cargo run --release --example guide_pictures [-- DIR]`. The pictures go to `DIR`,
//! else into both editions' `images/` folders (the Korean one links to the English one). The DOT files are rendered to SVG with
//! Graphviz's `dot` when it is installed (otherwise the `.dot` files are left for it).

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;
use ndarray::{Array2, Array3, Array4, Axis, array};
use plotters::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use tapegrad::nn::{self, Init, Linear, LstmCell, Module, RnnCell};
use tapegrad::optim::{ClipOptions, Optimizer, Sgd, clip_grad_norm};
use tapegrad::{Tape, Var, Window};

#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;

// ---------------------------------------------------------------------------------------------
// Graphs from the tape

/// The course's shopping: 2 apples at 100 and 3 oranges at 150, 10 % tax; the backward pass.
pub fn apple_orange_backward() -> String {
    let tape = Tape::<f64>::new();
    let apple = tape.var(100.0).named("apple");
    let apple_num = tape.var(2.0).named("apple_num");
    let orange = tape.var(150.0).named("orange");
    let orange_num = tape.var(3.0).named("orange_num");
    let tax = tape.var(1.1).named("tax");
    let apple_price = (apple * apple_num).named("apple_price");
    let orange_price = (orange * orange_num).named("orange_price");
    let all_price = (apple_price + orange_price).named("all_price");
    let price = (all_price * tax).named("price");
    tape.to_dot_backward(price)
}

/// `σ(x) = 1/(1 + exp(−x))` out of four primitive ops, on `tape`.
pub fn sigmoid_by_parts<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
    let minus_x = (x * -1.0).named("−x");
    let e = minus_x.exp().named("exp(−x)");
    let denominator = (e + 1.0).named("1 + exp(−x)");
    (1.0 / denominator).named("y")
}

/// The sigmoid's graph at `x = 1` with the backward pass on it.
pub fn sigmoid_backward() -> String {
    let tape = Tape::<f64>::new();
    let x = tape.var(1.0).named("x");
    top_down(tape.to_dot_backward(sigmoid_by_parts(x)))
}

/// A graph too wide for a page laid out from top to bottom instead.
fn top_down(dot: String) -> String {
    dot.replacen("rankdir=LR", "rankdir=TB", 1)
}

/// Softmax then cross-entropy out of primitive ops, for logits `[N, K]` and one-hot targets:
/// `L = −(1/N) Σ t·ln(exp(a)/Σ exp(a))`. With `N = 1` the rows are vectors `[K]`.
pub fn softmax_with_loss_by_parts<'t>(a: Var<'t, f64>, t: Var<'t, f64>) -> Var<'t, f64> {
    let batch = if a.shape().len() == 2 { a.shape()[0] } else { 1 };
    let e = a.exp().named("exp(a)");
    let sums = if batch == 1 && a.shape().len() == 1 { e.sum() } else { e.sum_axes(&[1], true) };
    let y = (e / sums.named("S = Σ exp(a)")).named("y = softmax(a)");
    let log_y = y.ln().named("ln y");
    let picked = (log_y * t).named("t · ln y");
    let loss = -picked.sum();
    if batch == 1 { loss.named("L") } else { (loss / batch as f64).named("L") }
}

/// The course's three scores `a = (0.3, 2.9, 4.0)` with the answer class 2, backward pass on
/// the graph.
pub fn softmax_with_loss_backward() -> String {
    let tape = Tape::<f64>::new();
    let a = tape.var(array![0.3, 2.9, 4.0]).named("a");
    let t = tape.constant(array![0.0, 0.0, 1.0]).named("t");
    top_down(tape.to_dot_backward(softmax_with_loss_by_parts(a, t)))
}

// ---------------------------------------------------------------------------------------------
// The convolution window and im2col

/// The window of the pictures: 3×3, stride 2, padding 1, over a 5×5 input.
pub fn picture_window() -> Window {
    Window { stride: (2, 2), padding: (1, 1), ..Window::new((3, 3)) }
}

/// The input side of the pictures.
pub const INPUT: usize = 5;

/// What the crate's `im2col` makes of a 5×5 input whose pixels hold their numbers `1 … 25`:
/// one row per window, one column per kernel tap; 0 where a tap reads the padding.
pub fn numbered_im2col(window: Window) -> Array2<f64> {
    let tape = Tape::<f64>::new();
    let numbers = Array4::from_shape_fn((1, 1, INPUT, INPUT), |(_, _, r, c)| (r * INPUT + c + 1) as f64);
    let columns = tape.constant(numbers).im2col(window).to_array();
    columns.into_dimensionality().expect("im2col gives a matrix")
}

/// Each window's top-left corner in the padded input, read off the im2col rows: a tap
/// `(ki, kj)` that reads pixel `p` puts the corner at `p`'s padded position minus the tap.
pub fn window_corners(columns: &Array2<f64>, window: Window) -> Vec<(usize, usize)> {
    let (kh, kw) = window.kernel;
    let (ph, pw) = window.padding;
    columns
        .rows()
        .into_iter()
        .map(|row| {
            let (tap, &pixel) =
                row.iter().enumerate().find(|(_, p)| **p > 0.0).expect("a window reads a pixel");
            let pixel = pixel as usize - 1;
            let (r, c) = (pixel / INPUT + ph, pixel % INPUT + pw);
            assert!(tap < kh * kw);
            (r - tap / kw, c - tap % kw)
        })
        .collect()
}

/// One colour per window, in im2col's row order.
const COLOURS: [&str; 9] =
    ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#808000"];

/// A square cell with a number in it.
fn cell(svg: &mut String, x: f64, y: f64, size: f64, fill: &str, text: &str, font: f64) {
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="{fill}" stroke="#999" stroke-width="0.5"/>"##
    );
    if !text.is_empty() {
        let (cx, cy) = (x + size / 2.0, y + size / 2.0 + font * 0.35);
        let colour = if text == "0" { "#999" } else { "#000" };
        let _ = writeln!(
            svg,
            r#"<text x="{cx}" y="{cy}" font-size="{font}" text-anchor="middle" fill="{colour}">{text}</text>"#
        );
    }
}

/// A line of text at `(x, y)`.
fn text(svg: &mut String, x: f64, y: f64, size: f64, anchor: &str, s: &str) {
    let _ = writeln!(svg, r#"<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}">{s}</text>"#);
}

/// The start of an SVG picture with a white background.
fn svg_open(width: f64, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans, sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    )
}

/// The padded input with pixel `(r, c)` at `(x, y)` in cells of `size`; padding grey.
fn padded_input(svg: &mut String, x: f64, y: f64, size: f64, pad: usize, font: f64, numbers: bool) {
    let side = INPUT + 2 * pad;
    for r in 0..side {
        for c in 0..side {
            let inside = (pad..pad + INPUT).contains(&r) && (pad..pad + INPUT).contains(&c);
            let (fill, label) = if inside {
                ("white", ((r - pad) * INPUT + (c - pad) + 1).to_string())
            } else {
                ("#e4e4e4", "0".to_string())
            };
            let label = if numbers { label } else { String::new() };
            cell(svg, x + c as f64 * size, y + r as f64 * size, size, fill, &label, font);
        }
    }
}

/// Left: the padded input with the first two windows (one stride apart). Right: every window,
/// one small panel per output position, coloured as in the im2col picture.
pub fn conv_window_svg() -> String {
    let window = picture_window();
    let corners = window_corners(&numbered_im2col(window), window);
    let (pad, (kh, kw)) = (window.padding.0, window.kernel);
    let side = (INPUT + 2 * pad) as f64;
    let outputs = (corners.len() as f64).sqrt() as usize;
    let (big, small, gap) = (34.0, 12.0, 16.0);
    let right = 40.0 + side * big + 70.0;
    let mut svg = svg_open(right + outputs as f64 * (side * small + gap) + 20.0, 40.0 + side * big + 70.0);
    text(&mut svg, 40.0, 24.0, 15.0, "start", "padding 1, window 3×3, stride 2");
    padded_input(&mut svg, 40.0, 40.0, big, pad, 12.0, true);
    for (k, &(r, c)) in corners.iter().take(2).enumerate() {
        let inset = 2.0 + 3.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{}" stroke-width="3"/>"#,
            40.0 + c as f64 * big + inset,
            40.0 + r as f64 * big + inset,
            kw as f64 * big - 2.0 * inset,
            kh as f64 * big - 2.0 * inset,
            COLOURS[k]
        );
    }
    let below = 40.0 + side * big + 24.0;
    text(&mut svg, 40.0, below, 13.0, "start", "5×5 input (1 … 25) in its padding (0);");
    text(&mut svg, 40.0, below + 18.0, 13.0, "start", "the next window starts 2 columns on");
    text(
        &mut svg,
        right,
        24.0,
        15.0,
        "start",
        &format!("{} windows → {outputs}×{outputs} output", corners.len()),
    );
    for (k, &(r, c)) in corners.iter().enumerate() {
        let (x, y) = (
            right + (k % outputs) as f64 * (side * small + gap),
            40.0 + (k / outputs) as f64 * (side * small + gap),
        );
        padded_input(&mut svg, x, y, small, pad, 0.0, false);
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}" fill-opacity="0.55" stroke="{}" stroke-width="2"/>"#,
            x + c as f64 * small,
            y + r as f64 * small,
            kw as f64 * small,
            kh as f64 * small,
            COLOURS[k],
            COLOURS[k]
        );
        text(
            &mut svg,
            x + side * small / 2.0,
            y + side * small + 9.0,
            9.0,
            "middle",
            &format!("output ({}, {})", k / outputs, k % outputs),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The im2col matrix of the same input: one row per window (its colour), one column per tap,
/// each cell the number of the pixel that tap reads (0: padding).
pub fn im2col_svg() -> String {
    let window = picture_window();
    let columns = numbered_im2col(window);
    let (rows, taps) = columns.dim();
    let kw = window.kernel.1;
    let (size, left, top) = (34.0, 150.0, 70.0);
    let mut svg = svg_open(left + taps as f64 * size + 30.0, top + rows as f64 * size + 50.0);
    text(
        &mut svg,
        20.0,
        24.0,
        15.0,
        "start",
        &format!("im2col: {rows} windows × {taps} taps → a {rows}×{taps} matrix"),
    );
    for t in 0..taps {
        let label = format!("({}, {})", t / kw, t % kw);
        text(&mut svg, left + (t as f64 + 0.5) * size, top - 8.0, 10.0, "middle", &label);
    }
    text(&mut svg, left + taps as f64 * size / 2.0, top - 26.0, 12.0, "middle", "kernel tap (row, column)");
    let outputs = (rows as f64).sqrt() as usize;
    for (r, row) in columns.rows().into_iter().enumerate() {
        let y = top + r as f64 * size;
        let label = format!("window ({}, {})", r / outputs, r % outputs);
        let _ = writeln!(
            svg,
            r#"<rect x="20" y="{}" width="16" height="16" fill="{}"/>"#,
            y + size / 2.0 - 8.0,
            COLOURS[r]
        );
        text(&mut svg, 42.0, y + size / 2.0 + 4.0, 12.0, "start", &label);
        for (t, &p) in row.iter().enumerate() {
            let fill = format!("{}{}", COLOURS[r], if p > 0.0 { "55" } else { "18" });
            cell(&mut svg, left + t as f64 * size, y, size, &fill, &(p as usize).to_string(), 12.0);
        }
    }
    let bottom = top + rows as f64 * size + 28.0;
    text(&mut svg, 20.0, bottom, 12.0, "start", "each cell: the input pixel the tap reads (0 = padding)");
    svg.push_str("</svg>\n");
    svg
}

// ---------------------------------------------------------------------------------------------
// Networks drawn as the course draws them

/// CBOW on the course's sentence: two context words through the shared `W_in`, averaged, then
/// `W_out` and the softmax with loss against the middle word.
pub fn cbow_dot() -> String {
    String::from(
        r#"digraph cbow {
  rankdir=LR; node [fontname="DejaVu Sans"]; edge [fontname="DejaVu Sans"];
  you [label="context: you\none-hot [V]", shape=box, style=filled, fillcolor=lightyellow];
  goodbye [label="context: goodbye\none-hot [V]", shape=box, style=filled, fillcolor=lightyellow];
  win1 [label="× W_in\n[V, H]", shape=box, style=filled, fillcolor=orange];
  win2 [label="× W_in\n[V, H]", shape=box, style=filled, fillcolor=orange];
  h [label="h = (h₁ + h₂)/2\n[H]", shape=ellipse, style=filled, fillcolor=lightblue];
  wout [label="× W_out\n[H, V]", shape=box, style=filled, fillcolor=orange];
  scores [label="scores\n[V]", shape=ellipse, style=filled, fillcolor=lightblue];
  loss [label="Softmax\nwith Loss", shape=box, style=filled, fillcolor=lightpink];
  target [label="target: say", shape=box, style=filled, fillcolor=lightyellow];
  L [label="L", shape=ellipse];
  you -> win1; goodbye -> win2;
  win1 -> h [label="h₁"]; win2 -> h [label="h₂"];
  win1 -> win2 [style=dashed, dir=none, label="shared weights", constraint=false];
  h -> wout -> scores -> loss -> L;
  target -> loss;
}
"#,
    )
}

/// tapegrad's gate order: the rows of `weight_ih` and `weight_hh`, `H` each.
pub const GATES: [&str; 4] = ["i", "f", "g", "o"];

/// One LSTM step as the course draws it, gates named and ordered as tapegrad computes them.
pub fn lstm_dot() -> String {
    let mut dot = String::from(
        r#"digraph lstm {
  rankdir=LR; node [fontname="DejaVu Sans"]; edge [fontname="DejaVu Sans"];
  c0 [label="c_{t−1}", shape=ellipse, style=filled, fillcolor=lightyellow];
  h0 [label="h_{t−1}", shape=ellipse, style=filled, fillcolor=lightyellow];
  x [label="x_t", shape=ellipse, style=filled, fillcolor=lightyellow];
  affine [label="z = x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh\n[N, 4H]", shape=box, style=filled, fillcolor=orange];
  x -> affine; h0 -> affine;
"#,
    );
    let rows = |k: usize| match k {
        0 => "0..H".to_string(),
        1 => "H..2H".to_string(),
        k => format!("{k}H..{}H", k + 1),
    };
    let role = |g: &str| match g {
        "i" => ("input gate", "σ"),
        "f" => ("forget gate", "σ"),
        "g" => ("new memory g", "tanh"),
        _ => ("output gate", "σ"),
    };
    for (k, g) in GATES.iter().enumerate() {
        let (name, activation) = role(g);
        let _ = writeln!(
            dot,
            "  {g} [label=\"{g} = {activation}(z[:, {}])\\n{name}\", shape=box, style=filled, fillcolor=lightblue];\n  affine -> {g};",
            rows(k)
        );
    }
    dot.push_str(
        r#"  forget [label="×", shape=circle];
  write [label="×", shape=circle];
  plus [label="+", shape=circle];
  c1 [label="c_t = f·c_{t−1} + i·g", shape=ellipse, style=filled, fillcolor=lightyellow];
  tanh [label="tanh", shape=box];
  show [label="×", shape=circle];
  h1 [label="h_t = o·tanh(c_t)", shape=ellipse, style=filled, fillcolor=lightyellow];
  c0 -> forget; f -> forget; i -> write; g -> write;
  forget -> plus; write -> plus; plus -> c1; c1 -> tanh -> show; o -> show; show -> h1;
  {rank=same; c0; forget; plus; c1;}
  label="gates in tapegrad's order: rows i, f, g, o of W_ih and W_hh (PyTorch's)"; labelloc=b;
}
"#,
    );
    dot
}

// ---------------------------------------------------------------------------------------------
// Experiments

/// A `[1, D]` input per step, drawn from N(0, 1).
fn random_inputs(steps: usize, width: usize, rng: &mut StdRng) -> Vec<Array2<f64>> {
    (0..steps).map(|_| Array2::from_shape_fn((1, width), |_| StandardNormal.sample(rng))).collect()
}

/// The norms of `∂L/∂x_t` at each step `t` of three recurrent cells (see [`vanishing`]).
pub struct Vanishing {
    /// The plain RNN's norms, step 1 first.
    pub rnn: Vec<f64>,
    /// The LSTM's, as initialised.
    pub lstm: Vec<f64>,
    /// The LSTM's with the forget gate biased open.
    pub lstm_open: Vec<f64>,
}

/// The norm of the gradient of `L = Σ h_T` with respect to the input at each step `t = 1 … T`,
/// for a plain RNN (tanh) and an LSTM of 16 units, both initialised as PyTorch does, on the
/// same random inputs; and the same LSTM with its forget gate biased open (`b_f = 3`:
/// `f ≈ 0.95`).
pub fn vanishing(steps: usize, seed: u64) -> Vanishing {
    let (d, h) = (4, 16);
    let mut rng = StdRng::seed_from_u64(seed);
    let inputs = random_inputs(steps, d, &mut rng);
    let by_step = |xs: &[Var<'_, f64>], last: Var<'_, f64>| -> Vec<f64> {
        let grads = last.sum().backward();
        xs.iter().map(|&x| grads.wrt(x).to_array().iter().map(|g| g * g).sum::<f64>().sqrt()).collect()
    };
    let rnn = {
        let tape = Tape::<f64>::new();
        let cell = RnnCell::new(&tape, d, h, &mut StdRng::seed_from_u64(seed + 1));
        let xs: Vec<_> = inputs.iter().map(|x| tape.var(x.clone())).collect();
        let mut state = None;
        for &x in &xs {
            state = Some(cell.step(x, state));
        }
        by_step(&xs, state.expect("steps > 0").h)
    };
    let lstm = |forget_bias: f64| {
        let tape = Tape::<f64>::new();
        let cell = LstmCell::new(&tape, d, h, &mut StdRng::seed_from_u64(seed + 2));
        let f = GATES.iter().position(|g| *g == "f").expect("a forget gate");
        tape.get(cell.bias_ih)
            .update(|mut b| b.slice_mut(ndarray::s![f * h..(f + 1) * h]).mapv_inplace(|v| v + forget_bias));
        let xs: Vec<_> = inputs.iter().map(|x| tape.var(x.clone())).collect();
        let mut state = None;
        for &x in &xs {
            state = Some(cell.step(x, state));
        }
        by_step(&xs, state.expect("steps > 0").h)
    };
    Vanishing { rnn, lstm: lstm(0.0), lstm_open: lstm(3.0) }
}

/// The norms of one training run: the gradient's norm before clipping, and the loss, per step.
pub struct Run {
    /// The norm of each step's gradient, before any clipping.
    pub norms: Vec<f64>,
    /// Each step's loss.
    pub losses: Vec<f64>,
}

/// Trains a small RNN (tanh, 16 units, then a linear read-out) to remember the first of 20
/// random numbers until the end, one batch of 32 sequences per step, with plain SGD at learning
/// rate 0.05. Its recurrent weights start at 3 times PyTorch's scale, a recurrence strong
/// enough for the gradient to explode now and then. `max_norm` clips the gradients, `None`
/// leaves them alone. The same seed gives the same start and the same data.
pub fn train_recurrent(steps: usize, max_norm: Option<f64>, seed: u64) -> Run {
    let (t_len, d, h, n) = (20, 1, 16, 32);
    let tape = Tape::<f64>::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let cell = RnnCell::new(&tape, d, h, &mut rng);
    tape.get(cell.weight_hh).update(|mut w| w.mapv_inplace(|v| v * 3.0));
    let head = Linear::new(&tape, h, 1, Init::PyTorchDefault, &mut rng);
    let mut params = nn::params(&head);
    params.extend([cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]);
    let mut sgd = Sgd::new(params.clone(), 0.05);
    let mut data = StdRng::seed_from_u64(seed + 100);
    let mut run = Run { norms: Vec::new(), losses: Vec::new() };
    for _ in 0..steps {
        let x: Array3<f64> = Array3::from_shape_fn((n, t_len, d), |_| StandardNormal.sample(&mut data));
        let target = x.index_axis(Axis(1), 0).to_owned();
        let mut state = None;
        for s in 0..t_len {
            let xs = tape.constant(x.index_axis(Axis(1), s).to_owned());
            state = Some(cell.step(xs, state));
        }
        let out = head.forward(state.expect("steps").h);
        let loss = (out - tape.constant(target)).square().mean();
        let mut grads = loss.backward();
        let norm = clip_grad_norm(&params, &mut grads, max_norm.unwrap_or(f64::MAX), ClipOptions::default())
            .expect("a finite max_norm");
        run.norms.push(norm);
        run.losses.push(loss.scalar());
        sgd.step(&tape, &grads);
        tape.reset();
    }
    run
}

fn plot_vanishing(path: &Path, v: &Vanishing) -> Result<(), Box<dyn Error>> {
    plots::register_font();
    let root = BitMapBackend::new(path, (800, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let steps = v.rnn.len() as f64;
    let all = v.rnn.iter().chain(&v.lstm).chain(&v.lstm_open).copied().filter(|&g| g > 0.0);
    let low = all.clone().fold(f64::INFINITY, f64::min).max(1e-300);
    let high = all.fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("gradient of L = Σ h_T reaching the input at step t", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(1.0..steps, (low / 2.0..high * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("step t")
        .y_desc("‖∂L/∂x_t‖")
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .draw()?;
    let line =
        |g: &[f64]| g.iter().enumerate().map(|(t, &g)| ((t + 1) as f64, g.max(low))).collect::<Vec<_>>();
    plots::draw_line(&mut chart, line(&v.rnn), RED, "RNN (tanh)")?;
    plots::draw_line(&mut chart, line(&v.lstm), BLUE, "LSTM, as initialised")?;
    plots::draw_line(&mut chart, line(&v.lstm_open), GREEN, "LSTM, forget gate biased open (f ≈ 0.95)")?;
    plots::draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

fn plot_clipping(path: &Path, plain: &Run, clipped: &Run, max_norm: f64) -> Result<(), Box<dyn Error>> {
    plots::register_font();
    let root = BitMapBackend::new(path, (900, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(330);
    let steps = plain.norms.len() as f64;
    let high = plain.norms.iter().chain(&clipped.norms).fold(0.0f64, |a, &b| a.max(b));
    let low = plain.norms.iter().chain(&clipped.norms).fold(f64::INFINITY, |a, &b| a.min(b));
    let mut chart = ChartBuilder::on(&top)
        .caption("gradient norm per step, RNN trained with SGD", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..steps, (low / 2.0..high * 2.0).log_scale())?;
    chart.configure_mesh().y_desc("‖gradient‖").y_label_formatter(&|y| format!("{y:.0e}")).draw()?;
    let by_step = |v: &[f64]| v.iter().enumerate().map(|(t, &v)| (t as f64, v)).collect::<Vec<_>>();
    let applied: Vec<f64> = clipped.norms.iter().map(|&g| g.min(max_norm)).collect();
    plots::draw_line(&mut chart, by_step(&plain.norms), RED, "without clipping")?;
    plots::draw_line(
        &mut chart,
        by_step(&clipped.norms),
        RGBColor(120, 120, 255),
        "with clipping: before the clip",
    )?;
    plots::draw_line(&mut chart, by_step(&applied), BLUE, format!("with clipping: applied (≤ {max_norm})"))?;
    plots::draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    let high = plain.losses.iter().chain(&clipped.losses).fold(0.0f64, |a, &b| a.max(b));
    let low = plain.losses.iter().chain(&clipped.losses).fold(f64::INFINITY, |a, &b| a.min(b));
    let mut chart = ChartBuilder::on(&bottom)
        .caption("loss per step", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..steps, (low / 1.5..high * 1.5).log_scale())?;
    chart.configure_mesh().x_desc("step").y_desc("loss").draw()?;
    plots::draw_line(&mut chart, by_step(&plain.losses), RED, "without clipping")?;
    plots::draw_line(&mut chart, by_step(&clipped.losses), BLUE, "with clipping")?;
    plots::draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// The settings of the experiments the guide shows.
pub const VANISHING_STEPS: usize = 50;
pub const CLIP_STEPS: usize = 300;
pub const MAX_NORM: f64 = 1.0;

/// Writes `name` into every directory of `dirs`; a `.dot` is also rendered to `.svg` when
/// Graphviz's `dot` runs.
fn write_all(dirs: &[PathBuf], name: &str, contents: &str) -> Result<(), Box<dyn Error>> {
    for dir in dirs {
        std::fs::write(dir.join(name), contents)?;
        if let Some(stem) = name.strip_suffix(".dot") {
            let rendered = std::process::Command::new("dot")
                .args(["-Tsvg", "-o"])
                .arg(dir.join(format!("{stem}.svg")))
                .arg(dir.join(name))
                .status();
            match rendered {
                Ok(status) if status.success() => std::fs::remove_file(dir.join(name))?,
                _ => println!("{name}: left as DOT in {} (Graphviz's dot did not run)", dir.display()),
            }
        }
    }
    Ok(())
}

/// The command line.
#[derive(Debug, Parser)]
#[command(about = "Draws the guide's concept pictures into DIR, else into both editions' images/")]
struct Args {
    /// Where the pictures go [default: docs/guide/src/images and docs/ko/guide/src/images]
    dir: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = match args.dir {
        Some(dir) => vec![dir],
        None => vec![root.join("docs/guide/src/images"), root.join("docs/ko/guide/src/images")],
    };
    let mut dirs: Vec<PathBuf> = dirs
        .into_iter()
        .map(|dir| std::fs::create_dir_all(&dir).and_then(|()| dir.canonicalize()))
        .collect::<Result<_, _>>()?;
    dirs.dedup(); // the Korean edition's images/ is a link to the English one
    write_all(&dirs, "backward_apple_orange.dot", &apple_orange_backward())?;
    write_all(&dirs, "backward_sigmoid.dot", &sigmoid_backward())?;
    write_all(&dirs, "backward_softmax_with_loss.dot", &softmax_with_loss_backward())?;
    write_all(&dirs, "conv_window.svg", &conv_window_svg())?;
    write_all(&dirs, "im2col.svg", &im2col_svg())?;
    write_all(&dirs, "cbow_network.dot", &cbow_dot())?;
    write_all(&dirs, "lstm_cell.dot", &lstm_dot())?;

    let v = vanishing(VANISHING_STEPS, 0);
    let ratio = |g: &[f64]| g[0] / g[g.len() - 1];
    println!(
        "gradient at step 1 over gradient at step {VANISHING_STEPS}: RNN {:.3e}, LSTM {:.3e}, LSTM with b_f = 3 {:.3e}",
        ratio(&v.rnn),
        ratio(&v.lstm),
        ratio(&v.lstm_open)
    );
    let plain = train_recurrent(CLIP_STEPS, None, 0);
    let clipped = train_recurrent(CLIP_STEPS, Some(MAX_NORM), 0);
    let max = |v: &[f64]| v.iter().fold(0.0f64, |a, &b| a.max(b));
    let tail = |v: &[f64]| v[v.len() - 50..].iter().sum::<f64>() / 50.0;
    println!(
        "largest gradient norm: {:.3} without clipping, {:.3} with (before the clip); \
         mean loss of the last 50 steps: {:.4} without, {:.4} with",
        max(&plain.norms),
        max(&clipped.norms),
        tail(&plain.losses),
        tail(&clipped.losses)
    );
    for dir in &dirs {
        plot_vanishing(&dir.join("vanishing_gradients.png"), &v)?;
        plot_clipping(&dir.join("gradient_clipping.png"), &plain, &clipped, MAX_NORM)?;
    }
    Ok(())
}
