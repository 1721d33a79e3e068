//! Gradient descent: step against the gradient until it vanishes. Each gradient comes from the
//! tape (`backward()`), each step updates a parameter in place, and `reset()` frees the step's
//! graph.
//!
//! Prints the iterates of
//! - `y = x²` from `x₁ = 2` with learning rate `η = 0.1` (`x₂ = 1.6`, `x₃ = 1.28`, …) and with
//!   `η = 0.2` (the course's `lr`; `h` is kept for the step of numerical differentiation);
//! - `f(x, y) = x² + y²` from `(−3, 4)` with learning rate 0.1;
//! - the Rosenbrock function `100(y − x²)² + (1 − x)²` from `(0, 2)` with learning rate 0.001
//!   for 10,000 steps, which crawls along the curved valley towards the minimum at `(1, 1)`;
//!
//! and draws five pictures: the tangent line of `0.01x² + 0.1x` at `x = 5` from the numerical
//! derivative, the field of negative gradients of `x² + y²`, and each descent over its function.
//!
//! Run with `cargo run --release --example 04_gradient_descent [-- DIR]`; the PNGs go to `DIR`,
//! else to `$TAPEGRAD_PLOTS`, else to `target/plots/`.

use std::path::Path;

use ndarray::{Array1, array};
use plotters::prelude::*;
use tapegrad::{Tape, numerical_gradient};

#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;
use plots::{Area, ContourStyle, draw_contours, draw_path, plot_dir, register_font};

/// `x` to 10 significant digits, without trailing zeros or floating-point noise.
pub fn show(x: f64) -> String {
    let rounded: f64 = format!("{x:.9e}").parse().expect("a number");
    if rounded != 0.0 && rounded.abs() < 1e-3 { format!("{rounded:e}") } else { format!("{rounded}") }
}

/// `xₖ₊₁ = xₖ − η·dy/dx` for `y = x²` from `x₁ = x` with learning rate `η = lr`: the iterates
/// `x₁ … x_steps`.
pub fn descend_square(x: f64, lr: f64, steps: usize) -> Vec<f64> {
    let tape = Tape::<f64>::new();
    let x = tape.get(tape.param(x));
    let mut iterates = vec![x.scalar()];
    for _ in 1..steps {
        let y = x * x;
        let dy = y.backward()[x].scalar().expect("a scalar");
        x.update(|mut v| v.mapv_inplace(|x| x - lr * dy));
        tape.reset();
        iterates.push(x.scalar());
    }
    iterates
}

/// Gradient descent on a function of a 2-vector from `start`: the points `p₀ … p_steps`.
pub fn descend_2d(
    f: impl for<'t> Fn(tapegrad::Var<'t, f64>) -> tapegrad::Var<'t, f64>,
    start: [f64; 2],
    lr: f64,
    steps: usize,
) -> Vec<[f64; 2]> {
    let tape = Tape::<f64>::new();
    let p = tape.get(tape.param(Array1::from(start.to_vec())));
    let mut path = vec![start];
    for _ in 0..steps {
        let grad = f(p).backward().wrt(p);
        p.update(|mut v| v.zip_mut_with(&grad.view(), |w, &g| *w -= lr * g));
        tape.reset();
        let a = p.to_array();
        path.push([a[0], a[1]]);
    }
    path
}

/// `x² + y²` on a 2-vector.
pub fn sphere<'t>(p: tapegrad::Var<'t, f64>) -> tapegrad::Var<'t, f64> {
    p.square().sum()
}

/// The Rosenbrock function `100(y − x²)² + (1 − x)²` on a 2-vector `(x, y)`.
pub fn rosenbrock<'t>(p: tapegrad::Var<'t, f64>) -> tapegrad::Var<'t, f64> {
    let (x, y) = (p.slice(tapegrad::s![0]), p.slice(tapegrad::s![1]));
    (y - x.square()).square() * 100.0 + (1.0 - x).square()
}

/// `0.01x² + 0.1x`, the function whose tangent is drawn.
pub fn curve(x: f64) -> f64 {
    0.01 * x * x + 0.1 * x
}

/// Its derivative at `x` by central differences (`numerical_gradient`, `h = 1e-4`).
pub fn numerical_slope(x: f64) -> f64 {
    numerical_gradient(|v: &Array1<f64>| curve(v[0]), &array![x])[0]
}

/// The names of the pictures [`report`] draws.
pub const PLOTS: [&str; 5] = [
    "tangent.png",
    "gradient_field.png",
    "descent_square.png",
    "descent_sphere.png",
    "descent_rosenbrock.png",
];

/// Runs every descent, draws the plots into `dir`, and returns the printed report.
pub fn report(dir: &Path) -> String {
    let mut out = String::new();
    let mut square = Vec::new();
    for lr in [0.1, 0.2] {
        let xs = descend_square(2.0, lr, 50);
        out += &format!("y = x², x₁ = 2, learning rate η = {lr}\n");
        for (k, x) in xs.iter().enumerate() {
            out += &format!("x{} = {}\n", k + 1, show(*x));
        }
        out += "\n";
        square.push((lr, xs));
    }

    let sphere_path = descend_2d(sphere, [-3.0, 4.0], 0.1, 100);
    out += "f(x, y) = x² + y², from (−3, 4), learning rate 0.1\n";
    for (k, p) in sphere_path.iter().enumerate().filter(|(k, _)| *k <= 10 || k % 10 == 0) {
        out += &format!("step {k}: ({}, {})\n", show(p[0]), show(p[1]));
    }
    out += "\n";

    let rosenbrock_path = descend_2d(rosenbrock, [0.0, 2.0], 0.001, 10_000);
    out += "Rosenbrock 100(y − x²)² + (1 − x)², from (0, 2), learning rate 0.001\n";
    for (k, p) in rosenbrock_path.iter().enumerate().filter(|(k, _)| *k <= 5 || k % 1000 == 0) {
        out += &format!("step {k}: ({}, {})\n", show(p[0]), show(p[1]));
    }
    out += "\n";

    out += "0.01x² + 0.1x: numerical derivative\n";
    out += &format!("at x = 5: {}\n", show(numerical_slope(5.0)));
    out += &format!("at x = 10: {}\n\n", show(numerical_slope(10.0)));

    std::fs::create_dir_all(dir).expect("the plot directory can be created");
    register_font();
    let path = |name: &str| dir.join(name);
    plot_tangent(&path(PLOTS[0])).expect("the tangent plot");
    plot_gradient_field(&path(PLOTS[1])).expect("the gradient field plot");
    plot_square_descent(&path(PLOTS[2]), &square).expect("the descent on x²");
    let sphere = Descent {
        name: "x² + y²",
        f: &|x, y| x * x + y * y,
        levels: (1..=12).map(|r| (r as f64 * 0.5).powi(2)).collect(),
        window: ((-4.5, 4.5), (-4.5, 4.5)),
        minimum: (0.0, 0.0),
        path: sphere_path.clone(),
        steps: sphere_path.len() - 1,
    };
    plot_descent(&path(PLOTS[3]), &sphere).expect("the descent on x² + y²");
    let rosenbrock = Descent {
        name: "Rosenbrock",
        f: &|x, y| 100.0 * (y - x * x).powi(2) + (1.0 - x).powi(2),
        levels: (-2..=12).map(|k| 2f64.powi(k)).collect(),
        window: ((-2.0, 2.0), (-1.0, 3.0)),
        minimum: (1.0, 1.0),
        // every step of the first 100, where the path drops into the valley; then every 100th
        path: rosenbrock_path
            .iter()
            .enumerate()
            .filter(|(k, _)| *k < 100 || k % 100 == 0)
            .map(|(_, p)| *p)
            .collect(),
        steps: rosenbrock_path.len() - 1,
    };
    plot_descent(&path(PLOTS[4]), &rosenbrock).expect("the descent on Rosenbrock");
    for name in PLOTS {
        out += &format!("wrote {}\n", path(name).display());
    }
    out
}

type Plot = Result<(), Box<dyn std::error::Error>>;

fn plot_tangent(path: &Path) -> Plot {
    let root = BitMapBackend::new(path, (640, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("y = 0.01x² + 0.1x and its tangent at x = 5", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..20.0, -1.0..6.0)?;
    chart.configure_mesh().x_desc("x").y_desc("f(x)").draw()?;
    let xs = || (0..=200).map(|i| i as f64 * 0.1);
    chart
        .draw_series(LineSeries::new(xs().map(|x| (x, curve(x))), BLUE.stroke_width(2)))?
        .label("f(x)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    let (x0, slope) = (5.0, numerical_slope(5.0));
    let tangent = |x: f64| curve(x0) + slope * (x - x0);
    chart
        .draw_series(LineSeries::new(xs().map(|x| (x, tangent(x))), RED.stroke_width(2)))?
        .label(format!("tangent, slope {slope:.4} (numerical)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.draw_series(std::iter::once(Circle::new((x0, curve(x0)), 4, BLACK.filled())))?;
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn plot_gradient_field(path: &Path) -> Plot {
    // All the gradients at once: x and y are 2-D grids, f = Σ x² + y², one backward pass.
    let n = 9;
    let coordinate = |i: usize| -2.0 + 4.0 * i as f64 / (n - 1) as f64;
    let tape = Tape::<f64>::new();
    let gx = tape.var(ndarray::Array2::from_shape_fn((n, n), |(i, _)| coordinate(i)));
    let gy = tape.var(ndarray::Array2::from_shape_fn((n, n), |(_, j)| coordinate(j)));
    let grads = (gx.square() + gy.square()).sum().backward();
    let (dx, dy) = (grads[gx].to_array(), grads[gy].to_array());

    let root = BitMapBackend::new(path, (560, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("−∇(x² + y²): every arrow points downhill", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(-2.5..2.5, -2.5..2.5)?;
    chart.configure_mesh().x_desc("x").y_desc("y").draw()?;
    let scale = 0.1;
    for i in 0..n {
        for j in 0..n {
            let (x, y) = (coordinate(i), coordinate(j));
            let (u, v) = (-dx[[i, j]] * scale, -dy[[i, j]] * scale);
            chart.draw_series(arrow((x, y), (x + u, y + v), &BLUE))?;
        }
    }
    root.present()?;
    Ok(())
}

/// A line from `from` to `to` with a head at `to`, as path elements.
fn arrow(from: (f64, f64), to: (f64, f64), color: &RGBColor) -> Vec<PathElement<(f64, f64)>> {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let length = (dx * dx + dy * dy).sqrt();
    if length == 0.0 {
        return vec![];
    }
    let (ux, uy) = (dx / length, dy / length);
    let head = 0.3 * length.min(0.5);
    let side = |s: f64| (to.0 - head * (ux + s * 0.5 * uy), to.1 - head * (uy - s * 0.5 * ux));
    let style = color.stroke_width(2);
    vec![PathElement::new(vec![from, to], style), PathElement::new(vec![side(1.0), to, side(-1.0)], style)]
}

fn plot_square_descent(path: &Path, runs: &[(f64, Vec<f64>)]) -> Plot {
    let root = BitMapBackend::new(path, (640, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Gradient descent on y = x² from x₁ = 2", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(-2.5..2.5, -0.2..4.5)?;
    chart.configure_mesh().x_desc("x").y_desc("y").draw()?;
    chart.draw_series(LineSeries::new((-250..=250).map(|i| i as f64 * 0.01).map(|x| (x, x * x)), BLACK))?;
    for ((lr, xs), color) in runs.iter().zip([RED, BLUE]) {
        let points: Vec<(f64, f64)> = xs.iter().map(|&x| (x, x * x)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.mix(0.6)))?
            .label(format!("learning rate η = {lr}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperMiddle).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// A descent to draw: the function, the contour levels, the window, the path and its minimum.
struct Descent<'a> {
    name: &'a str,
    f: &'a dyn Fn(f64, f64) -> f64,
    levels: Vec<f64>,
    window: Area,
    minimum: (f64, f64),
    /// The points drawn (maybe a sample of the path).
    path: Vec<[f64; 2]>,
    steps: usize,
}

/// The descent's path over the contours of its function.
fn plot_descent(file: &Path, d: &Descent<'_>) -> Plot {
    let root = BitMapBackend::new(file, (560, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let last = d.path.last().expect("a path");
    let short = |x: f64| if x != 0.0 && x.abs() < 1e-3 { format!("{x:.1e}") } else { format!("{x:.3}") };
    let caption = format!("{}: {} steps to ({}, {})", d.name, d.steps, short(last[0]), short(last[1]));
    let ((x0, x1), (y0, y1)) = d.window;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart.configure_mesh().disable_mesh().x_desc("x").y_desc("y").draw()?;
    let style = ContourStyle { area: d.window, grid: 160, lightest: 210, darkening: 130 };
    draw_contours(&mut chart, d.f, &d.levels, &style)?;
    draw_path(&mut chart, &d.path, RED, "path")?;
    chart
        .draw_series(std::iter::once(Cross::new(d.minimum, 7, BLACK.stroke_width(2))))?
        .label(format!("minimum ({}, {})", d.minimum.0, d.minimum.1))
        .legend(|p| Cross::new(p, 5, BLACK.stroke_width(2)));
    plots::draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let about = "Gradient descent on x², x² + y² and Rosenbrock's function, drawn into DIR";
    print!("{}", report(&plot_dir(about)));
}
