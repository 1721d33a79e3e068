//! The optimizers side by side: SGD, Momentum, AdaGrad, RMSProp and Adam each take 30 steps on
//! the same function `f(x, y) = x²/20 + y²` from `(−7, 2)`, the textbook's comparison. The
//! function is twenty times steeper along `y` than along `x`, so a single learning rate is too
//! large for one axis and too small for the other: SGD zig-zags across the valley while
//! creeping along it; the others each correct for that in their own way.
//!
//! The learning rates are the textbook's (SGD 0.95, Momentum 0.1, AdaGrad 1.5, Adam 0.3), except
//! RMSProp's, which its figure does not have: 0.1 here (with the textbook's default of 0.01 it
//! moves only to `(−6.04, 1.12)` in 30 steps). Each uses tapegrad's own optimizer from
//! `tapegrad::optim` on one parameter of shape `[2]`, with the textbook's settings (momentum
//! 0.9; AdaGrad's and RMSProp's ε = 1e-7, RMSProp's decay 0.99; Adam's β₁ = 0.9, β₂ = 0.999).
//!
//! Prints each optimizer's final point, its value and how often `y` changed sign, and draws
//! the five paths over the function's contours in one picture. Run with
//! `cargo run --release --example 15_optimizers [-- DIR]`; the PNG (`optimizers.png`) goes to
//! `DIR`, else to `$TAPEGRAD_PLOTS`, else to `target/plots/`.

use std::path::{Path, PathBuf};

use ndarray::Array1;
use plotters::prelude::*;
use tapegrad::optim::{AdaGrad, Adam, Momentum, Optimizer, RmsProp, Sgd};
use tapegrad::{Param, Tape, Var, s};

#[path = "common/font.rs"]
mod font;
use font::register_font;

/// Where every optimizer starts.
pub const START: [f64; 2] = [-7.0, 2.0];

/// How many steps each takes.
pub const STEPS: usize = 30;

/// The optimizers compared, with their learning rates: the textbook's, but for RMSProp's.
pub const OPTIMIZERS: [(&str, f64); 5] =
    [("SGD", 0.95), ("Momentum", 0.1), ("AdaGrad", 1.5), ("RMSProp", 0.1), ("Adam", 0.3)];

/// The file the picture is written to, in the plot directory.
pub const PLOT: &str = "optimizers.png";

/// `x²/20 + y²` on plain numbers.
pub fn f(x: f64, y: f64) -> f64 {
    x * x / 20.0 + y * y
}

/// `x²/20 + y²` on a parameter `p = (x, y)` on the tape.
pub fn objective<'t>(p: Var<'t, f64>) -> Var<'t, f64> {
    let (x, y) = (p.slice(s![0]), p.slice(s![1]));
    x.square() / 20.0 + y.square()
}

/// The optimizer `name` over `params`, with the textbook's settings.
///
/// Panics on a name not in [`OPTIMIZERS`].
pub fn optimizer(name: &str, params: Vec<Param>, lr: f64) -> Box<dyn Optimizer<f64>> {
    match name {
        "SGD" => Box::new(Sgd::new(params, lr)),
        "Momentum" => Box::new(Momentum::new(params, lr)),
        "AdaGrad" => Box::new(AdaGrad::new(params, lr)),
        "RMSProp" => {
            let mut rmsprop = RmsProp::new(params, lr);
            rmsprop.eps = 1e-7;
            Box::new(rmsprop)
        }
        "Adam" => Box::new(Adam::new(params, lr)),
        _ => panic!("no optimizer named {name:?}; expected one of {OPTIMIZERS:?}"),
    }
}

/// One optimizer's run: its name, learning rate and the points `p₀ … p₃₀`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The optimizer's name.
    pub name: &'static str,
    /// Its learning rate.
    pub lr: f64,
    /// Where it was before each step, and after the last.
    pub path: Vec<[f64; 2]>,
}

impl Run {
    /// The last point.
    pub fn last(&self) -> [f64; 2] {
        *self.path.last().expect("a path has its start")
    }

    /// How many steps changed the sign of `y`: SGD's zig-zag across the valley.
    pub fn y_sign_changes(&self) -> usize {
        self.path.windows(2).filter(|w| w[0][1] * w[1][1] < 0.0).count()
    }
}

/// [`STEPS`] steps of the optimizer `name` from [`START`].
pub fn descend(name: &'static str, lr: f64) -> Run {
    let tape = Tape::<f64>::new();
    let p = tape.param(Array1::from(START.to_vec()));
    let mut opt = optimizer(name, vec![p], lr);
    let mut path = vec![START];
    for _ in 0..STEPS {
        let grads = objective(tape.get(p)).backward();
        opt.step(&tape, &grads);
        tape.reset();
        let now = tape.get(p).to_array();
        path.push([now[0], now[1]]);
    }
    Run { name, lr, path }
}

/// Every optimizer of [`OPTIMIZERS`], in order.
pub fn runs() -> Vec<Run> {
    OPTIMIZERS.iter().map(|&(name, lr)| descend(name, lr)).collect()
}

/// Where the plot goes: the first argument, else `$TAPEGRAD_PLOTS`, else `target/plots/`.
pub fn plot_dir() -> PathBuf {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TAPEGRAD_PLOTS").ok())
        .map_or_else(|| PathBuf::from("target/plots"), PathBuf::from)
}

/// Runs every optimizer, draws the paths into `dir` and returns the printed report.
pub fn report(dir: &Path) -> String {
    let runs = runs();
    let mut out = format!("f(x, y) = x²/20 + y², from ({}, {}), {STEPS} steps each\n", START[0], START[1]);
    for run in &runs {
        let [x, y] = run.last();
        out += &format!(
            "{:<8}  lr {:<4}  ends at ({x:>8.4}, {y:>7.4})  f = {:.6}  y changed sign {} times\n",
            run.name,
            run.lr,
            f(x, y),
            run.y_sign_changes()
        );
    }
    std::fs::create_dir_all(dir).expect("the plot directory can be created");
    register_font();
    let path = dir.join(PLOT);
    plot(&path, &runs).expect("the optimizers' paths");
    out += &format!("wrote {}\n", path.display());
    out
}

/// The window drawn: the textbook's x ∈ [−10, 10], y ∈ [−5, 5].
const WINDOW: ((f64, f64), (f64, f64)) = ((-10.0, 10.0), (-5.0, 5.0));

fn plot(file: &Path, runs: &[Run]) -> Result<(), Box<dyn std::error::Error>> {
    // 20 by 10 units drawn 2 by 1, so circles look round and the valley keeps its shape
    let root = BitMapBackend::new(file, (880, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let ((x0, x1), (y0, y1)) = WINDOW;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("f(x, y) = x²/20 + y²: {STEPS} steps from (−7, 2)"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart.configure_mesh().disable_mesh().x_desc("x").y_desc("y").draw()?;
    let levels: Vec<f64> = (1..=12).map(|k| 0.05 * 1.6f64.powi(k)).collect();
    for (k, &level) in levels.iter().enumerate() {
        let shade = 225 - (120 * k / levels.len()) as u8;
        let colour = RGBColor(shade, shade, 255);
        let segments = contour(&f, level, WINDOW, 200);
        chart.draw_series(segments.into_iter().map(|s| PathElement::new(s.to_vec(), colour)))?;
    }
    let colours = [RED, RGBColor(0, 150, 0), BLUE, RGBColor(230, 140, 0), MAGENTA];
    for (run, colour) in runs.iter().zip(colours) {
        let points: Vec<(f64, f64)> = run.path.iter().map(|p| (p[0], p[1])).collect();
        let [x, y] = run.last();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(format!("{} (lr {}): ({x:.2}, {y:.2})", run.name, run.lr))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 2, colour.filled())))?;
    }
    chart.draw_series(std::iter::once(Cross::new((0.0, 0.0), 7, BLACK.stroke_width(2))))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The level set `f = level` as line segments, by marching squares on an `n × n` grid.
fn contour(
    f: &dyn Fn(f64, f64) -> f64,
    level: f64,
    (xr, yr): ((f64, f64), (f64, f64)),
    n: usize,
) -> Vec<[(f64, f64); 2]> {
    let at = |i: usize, j: usize| {
        let (x, y) = (xr.0 + (xr.1 - xr.0) * i as f64 / n as f64, yr.0 + (yr.1 - yr.0) * j as f64 / n as f64);
        (x, y, f(x, y) - level)
    };
    let mut segments = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let corners = [at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)];
            let mut crossings = Vec::with_capacity(4);
            for e in 0..4 {
                let (a, b) = (corners[e], corners[(e + 1) % 4]);
                if (a.2 < 0.0) != (b.2 < 0.0) {
                    let t = a.2 / (a.2 - b.2);
                    crossings.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
                }
            }
            for pair in crossings.chunks_exact(2) {
                segments.push([pair[0], pair[1]]);
            }
        }
    }
    segments
}

#[allow(dead_code)]
fn main() {
    print!("{}", report(&plot_dir()));
}
