//! The first recurrent network: a small LSTM learns to predict the next value of a noisy sine
//! wave, trained by truncated backpropagation through time.
//!
//! The series is `sin(2π·t/50) + ε` (`ε` normal, σ = 0.05) for 2,000 steps: the first 1,600 train,
//! the rest test. Training walks the series in 16 parallel streams, 25 steps at a time; each
//! chunk starts from the previous chunk's final state, carried over as a constant so that
//! backpropagation stops at the chunk's start (and `reset` can free the chunk's graph). The
//! model is an LSTM of 32 units and a linear read-out, trained with Adam on the mean squared
//! error of the next value.
//!
//! Prints the training loss after each epoch and the test error, and draws the prediction
//! against the truth in `target/plots/sine_lstm.png`. Run with
//! `cargo run --release --example sine_lstm`.

use ndarray::{Array1, Array3};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use tapegrad::nn::{self, Linear, Lstm, Module, State};
use tapegrad::optim::{Adam, Optimizer};
use tapegrad::{Tape, Value};

#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;

/// The series' period, in steps.
pub const PERIOD: f64 = 50.0;
/// The noise's standard deviation.
pub const NOISE: f64 = 0.05;
/// Steps in the series; the last fifth is the test part.
pub const LENGTH: usize = 2_000;

/// The noisy sine wave, seeded.
pub fn series(seed: u64) -> Array1<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0, NOISE).expect("a positive standard deviation");
    (0..LENGTH)
        .map(|t| ((2.0 * std::f64::consts::PI * t as f64 / PERIOD).sin() + noise.sample(&mut rng)) as f32)
        .collect()
}

/// What training reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// The mean training loss of each epoch.
    pub losses: Vec<f64>,
    /// The mean squared error of the one-step-ahead predictions on the test part.
    pub test_mse: f64,
    /// The test part's truth and predictions, for the picture.
    pub truth: Vec<f32>,
    /// See [`Report::truth`].
    pub predicted: Vec<f32>,
}

/// `[N, T, 1]` inputs and next-value targets: `streams` contiguous streams of `xs`, cut into
/// chunks of `steps`.
fn chunks(xs: &[f32], streams: usize, steps: usize) -> Vec<(Array3<f32>, Array3<f32>)> {
    let per_stream = (xs.len() - 1) / streams;
    (0..per_stream / steps)
        .map(|c| {
            let at = |n: usize, t: usize, shift: usize| xs[n * per_stream + c * steps + t + shift];
            let inputs = Array3::from_shape_fn((streams, steps, 1), |(n, t, _)| at(n, t, 0));
            let targets = Array3::from_shape_fn((streams, steps, 1), |(n, t, _)| at(n, t, 1));
            (inputs, targets)
        })
        .collect()
}

/// The state's values, kept across `reset`: the next chunk starts from them as constants.
type Carried = (Value<f32>, Option<Value<f32>>);

fn restore<'t>(tape: &'t Tape<f32>, carried: &Option<Carried>) -> Option<State<'t, f32>> {
    carried
        .as_ref()
        .map(|(h, c)| State { h: tape.constant(h.clone()), c: c.clone().map(|c| tape.constant(c)) })
}

/// Trains for `epochs` epochs and evaluates on the test part.
pub fn train(epochs: usize, seed: u64) -> Report {
    let xs = series(seed);
    let split = LENGTH * 4 / 5;
    let tape = Tape::<f32>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let lstm = Lstm::new(&tape, 1, 32, 1, false, &mut rng);
    let head = Linear::new(&tape, 32, 1, nn::Init::Xavier, &mut rng);
    let mut params = nn::params(&lstm);
    params.extend(nn::params(&head));
    let mut opt = Adam::new(params, 1e-2);
    let batches = chunks(&xs.as_slice().expect("contiguous")[..split], 16, 25);
    let mut losses = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let (mut total, mut carried) = (0.0, None);
        for (inputs, targets) in &batches {
            let (outputs, state) = lstm.run(tape.constant(inputs.clone()), restore(&tape, &carried));
            let loss = nn::mean_squared_error(head.forward(outputs), tape.constant(targets.clone()));
            let grads = loss.backward();
            opt.step(&tape, &grads);
            total += loss.scalar() as f64;
            carried = Some((state.h.value(), state.c.map(|c| c.value())));
            tape.reset();
        }
        losses.push(total / batches.len() as f64);
    }
    // one-step-ahead predictions over the test part, warmed up on the training part's end
    let test = &xs.as_slice().expect("contiguous")[split - 100..];
    let predicted = tape.scope(|| {
        let _frozen = tape.no_grad();
        let inputs = Array3::from_shape_fn((1, test.len() - 1, 1), |(_, t, _)| test[t]);
        let (outputs, _) = lstm.run(tape.constant(inputs), None);
        head.forward(outputs).to_array().iter().copied().collect::<Vec<f32>>()
    });
    let (truth, predicted) = (test[101..].to_vec(), predicted[100..].to_vec());
    let test_mse =
        truth.iter().zip(&predicted).map(|(t, p)| ((t - p) as f64).powi(2)).sum::<f64>() / truth.len() as f64;
    Report { losses, test_mse, truth, predicted }
}

/// The test part: truth and one-step-ahead predictions.
fn plot(path: &std::path::Path, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    plots::register_font();
    let root = BitMapBackend::new(path, (900, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = report.truth.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("noisy sine: next value, test part", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..n, -1.4..1.4)?;
    chart.configure_mesh().x_desc("step").draw()?;
    let by_step =
        |values: &[f32]| values.iter().enumerate().map(|(t, &v)| (t as f64, v as f64)).collect::<Vec<_>>();
    plots::draw_line(&mut chart, by_step(&report.truth), BLUE, "truth")?;
    plots::draw_line(&mut chart, by_step(&report.predicted), RED, "LSTM")?;
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let report = train(60, 7);
    for (epoch, loss) in report.losses.iter().enumerate().filter(|(e, _)| e % 5 == 4 || *e == 0) {
        println!("epoch {:>2}: training loss {loss:.5}", epoch + 1);
    }
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/plots"));
    let path = dir.join("sine_lstm.png");
    match std::fs::create_dir_all(dir).map_err(Into::into).and_then(|_| plot(&path, &report)) {
        Ok(()) => println!("prediction against truth drawn in {}", path.display()),
        Err(e) => eprintln!("sine_lstm: could not draw {}: {e}", path.display()),
    }
    println!("noise variance {:.5}", NOISE * NOISE);
    println!("test mse: {:.5}", report.test_mse);
}
