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

use std::path::Path;

use clap::ValueEnum;
use ndarray::Array1;
use plotters::prelude::*;
use tapegrad::optim::{Optimizer, RmsProp};
use tapegrad::{Param, Tape, Var, s};

#[path = "common/optimizer.rs"]
mod optimizer;
#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;
use optimizer::{OptimizerName, optimizer};
use plots::{Area, ContourStyle, draw_contours, draw_path, plot_dir, register_font};

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

/// The optimizer `name` (a name of [`OPTIMIZERS`], in any case) over `params`, with the
/// textbook's settings: those of the optimizer the other examples choose by name, but for
/// RMSProp's ε, 1e-7 as in the textbook instead of PyTorch's 1e-8.
///
/// Panics on a name not in [`OPTIMIZERS`].
pub fn textbook_optimizer(name: &str, params: Vec<Param>, lr: f64) -> Box<dyn Optimizer<f64>> {
    match OptimizerName::from_str(name, true) {
        Ok(OptimizerName::Rmsprop) => {
            let mut rmsprop = RmsProp::new(params, lr);
            rmsprop.eps = 1e-7;
            Box::new(rmsprop)
        }
        Ok(other) => optimizer(other, params, lr),
        Err(_) => panic!("no optimizer named {name:?}; expected one of {OPTIMIZERS:?}"),
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
    let mut opt = textbook_optimizer(name, vec![p], lr);
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
const WINDOW: Area = ((-10.0, 10.0), (-5.0, 5.0));

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
    let style = ContourStyle { area: WINDOW, grid: 200, lightest: 225, darkening: 120 };
    draw_contours(&mut chart, &f, &levels, &style)?;
    let colours = [RED, RGBColor(0, 150, 0), BLUE, RGBColor(230, 140, 0), MAGENTA];
    for (run, colour) in runs.iter().zip(colours) {
        let [x, y] = run.last();
        draw_path(&mut chart, &run.path, colour, format!("{} (lr {}): ({x:.2}, {y:.2})", run.name, run.lr))?;
    }
    chart.draw_series(std::iter::once(Cross::new((0.0, 0.0), 7, BLACK.stroke_width(2))))?;
    plots::draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let about = "SGD, Momentum, AdaGrad, RMSProp and Adam on x²/20 + y², their paths drawn into DIR";
    print!("{}", report(&plot_dir(about)));
}
