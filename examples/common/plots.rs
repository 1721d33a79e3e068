//! What the examples' pictures share: the embedded font (so they need no system font library),
//! the directory they go to, labelled lines, and contour lines traced by marching squares with
//! a descent's path drawn over them.

use std::error::Error;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Registers the embedded DejaVu Sans as plotters' `"sans-serif"`, once.
pub fn register_font() {
    static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("DejaVuSans.ttf is a valid font"))
    });
}

/// The command line of an example whose only argument is where its files go.
#[derive(Debug, Parser)]
struct PlotDirArgs {
    /// Where the files go [default: $TAPEGRAD_PLOTS, else target/plots]
    dir: Option<PathBuf>,
}

/// Where the files go: the command line's argument, else `$TAPEGRAD_PLOTS`, else
/// `target/plots/`. `about` says what the example does, for `--help`.
pub fn plot_dir(about: &'static str) -> PathBuf {
    let matches = PlotDirArgs::command().about(about).get_matches();
    let args = PlotDirArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let from_env = || std::env::var_os("TAPEGRAD_PLOTS").map(PathBuf::from);
    args.dir.or_else(from_env).unwrap_or_else(|| PathBuf::from("target/plots"))
}

/// A chart of plain `f64` coordinates, or a log scale on either axis.
type Chart<'a, 'b, X, Y> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>;

/// `points` joined by a line two pixels wide in `colour`, shown in the legend as `label`.
pub fn draw_line<X, Y>(
    chart: &mut Chart<'_, '_, X, Y>,
    points: impl IntoIterator<Item = (f64, f64)>,
    colour: RGBColor,
    label: impl Into<String>,
) -> Result<(), Box<dyn Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    Ok(())
}

/// The chart's legend at `position`, framed in black on white.
pub fn draw_legend<'a, 'b: 'a, X, Y>(
    chart: &mut Chart<'a, 'b, X, Y>,
    position: SeriesLabelPosition,
) -> Result<(), Box<dyn Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart.configure_series_labels().position(position).border_style(BLACK).background_style(WHITE).draw()?;
    Ok(())
}

/// A descent's path: its points joined by a line and marked by dots, shown in the legend as
/// `label`.
pub fn draw_path(
    chart: &mut Chart<'_, '_, RangedCoordf64, RangedCoordf64>,
    path: &[[f64; 2]],
    colour: RGBColor,
    label: impl Into<String>,
) -> Result<(), Box<dyn Error>> {
    let points: Vec<(f64, f64)> = path.iter().map(|p| (p[0], p[1])).collect();
    draw_line(chart, points.clone(), colour, label)?;
    chart.draw_series(points.into_iter().map(|p| Circle::new(p, 2, colour.filled())))?;
    Ok(())
}

/// The x and the y range of a picture of a function of two variables.
pub type Area = ((f64, f64), (f64, f64));

/// How [`draw_contours`] draws: each level traced on a `grid × grid` grid of `area`, in blues
/// from `lightest` (the first level) darkening by up to `darkening` (the last).
pub struct ContourStyle {
    /// The x and y ranges traced.
    pub area: Area,
    /// Cells along each side.
    pub grid: usize,
    /// The red and green of the first level's blue.
    pub lightest: u8,
    /// How much darker the last level is.
    pub darkening: usize,
}

/// The contour lines of `f` at each of `levels`.
pub fn draw_contours(
    chart: &mut Chart<'_, '_, RangedCoordf64, RangedCoordf64>,
    f: &dyn Fn(f64, f64) -> f64,
    levels: &[f64],
    style: &ContourStyle,
) -> Result<(), Box<dyn Error>> {
    for (k, &level) in levels.iter().enumerate() {
        let shade = style.lightest - (style.darkening * k / levels.len()) as u8;
        let colour = RGBColor(shade, shade, 255);
        let segments = contour(f, level, style.area, style.grid);
        chart.draw_series(segments.into_iter().map(|s| PathElement::new(s.to_vec(), colour)))?;
    }
    Ok(())
}

/// The level set `f = level` as line segments, by marching squares on an `n × n` grid.
pub fn contour(f: &dyn Fn(f64, f64) -> f64, level: f64, (xr, yr): Area, n: usize) -> Vec<[(f64, f64); 2]> {
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
