//! What the MNIST examples share: the optimizer chosen by name, the training pass over one
//! epoch, an epoch's figures, the progress bar, and the weights and the loss and accuracy curves
//! saved at the end.

use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, ArrayD, Axis};
use tapegrad::Tape;
use tapegrad::nn::{self, Module};
use tapegrad::optim::{AdaGrad, Adam, Momentum, Optimizer, RmsProp, Sgd};
use tapegrad::parallel::{self, Communicator, ParallelError};

#[path = "flags.rs"]
mod flags;
#[path = "font.rs"]
mod font;
pub use flags::Flags;
pub use font::register_font;

/// The optimizer called `name` over `params`.
pub fn optimizer(
    name: &str,
    params: Vec<tapegrad::Param>,
    lr: f64,
) -> Result<Box<dyn Optimizer<f32>>, String> {
    Ok(match name {
        "sgd" => Box::new(Sgd::new(params, lr)),
        "momentum" => Box::new(Momentum::new(params, lr)),
        "nesterov" => Box::new(Momentum::nesterov(params, lr)),
        "adagrad" => Box::new(AdaGrad::new(params, lr)),
        "rmsprop" => Box::new(RmsProp::new(params, lr)),
        "adam" => Box::new(Adam::new(params, lr)),
        "adamw" => Box::new(Adam::adamw(params, lr, 1e-2)),
        other => {
            return Err(format!(
                "unknown optimizer {other:?}; expected sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw"
            ));
        }
    })
}

/// A training run that any worker of any communicator can take part in.
pub trait Job<X> {
    /// The run of this worker of `comm` on `data`: rank 0 reports and saves.
    fn run(&self, comm: &impl Communicator, data: &Digits<X>) -> Result<Vec<Epoch>, ParallelError>;
}

/// Loads the digits in `dir` (shaped by `shape`) and runs `job` on one worker, on `workers`
/// threads, or, with `mpi`, as this process of the MPI job; returns rank 0's epochs (an MPI
/// process of another rank gets an empty list).
pub fn on_workers<X: Sync>(
    job: &(impl Job<X> + Sync),
    dir: &Path,
    workers: usize,
    mpi: bool,
    shape: impl Fn(ndarray::Array3<f32>) -> X,
) -> Result<Vec<Epoch>, Box<dyn std::error::Error>> {
    if mpi {
        let comm = mpi_comm()?;
        let data = Digits::load(dir, comm.size(), comm.rank() == 0, shape)?;
        let epochs = job.run(&comm, &data)?;
        return Ok(if comm.rank() == 0 { epochs } else { Vec::new() });
    }
    let data = Digits::load(dir, workers, true, shape)?;
    Ok(match workers {
        1 => job.run(&parallel::Single, &data)?,
        workers => parallel::run_threads(workers, |comm| job.run(&comm, &data))?.swap_remove(0),
    })
}

/// The communicator of this MPI process, for `--mpi`.
#[cfg(feature = "mpi")]
pub fn mpi_comm() -> Result<parallel::MpiComm, ParallelError> {
    parallel::MpiComm::init()
}

/// Without the `mpi` feature, `--mpi` explains how to get it.
#[cfg(not(feature = "mpi"))]
pub fn mpi_comm() -> Result<parallel::Single, ParallelError> {
    let message =
        "this build has no MPI: build with `--features mpi` (needs Open MPI) and run under `mpirun -np 2`";
    Err(ParallelError::Worker { rank: 0, message: message.into() })
}

/// The `--workers` flag's value: a whole number of at least 1.
pub fn workers(n: &f64) -> Result<usize, String> {
    if *n >= 1.0 && n.fract() == 0.0 {
        Ok(*n as usize)
    } else {
        Err(format!("--workers: {n} is not a number of workers; expected 1, 2, …"))
    }
}

/// The digits of an MNIST directory, pixels in [0, 1] shaped by `images`, with their labels.
pub struct Digits<X> {
    /// Training images.
    pub train_x: X,
    /// Held-out images.
    pub test_x: X,
    /// Training labels.
    pub train_y: Vec<usize>,
    /// Held-out labels.
    pub test_y: Vec<usize>,
    /// Training labels as stored, for the loader.
    pub train_labels: Array1<u8>,
}

impl<X> Digits<X> {
    /// Loads `dir`, shaping each set of images with `shape` (from `[N, 28, 28]` in [0, 1]),
    /// and, if `say`, says what it loaded for how many `workers`.
    pub fn load(
        dir: &Path,
        workers: usize,
        say: bool,
        shape: impl Fn(ndarray::Array3<f32>) -> X,
    ) -> Result<Self, tapegrad::data::DataError> {
        let mnist = tapegrad::data::Mnist::load(dir)?;
        let images = |images: &ndarray::Array3<u8>| shape(images.mapv(|p| p as f32 / 255.0));
        let labels = |l: &Array1<u8>| l.iter().map(|&l| l as usize).collect::<Vec<_>>();
        let digits = Digits {
            train_x: images(&mnist.train_images),
            test_x: images(&mnist.test_images),
            train_y: labels(&mnist.train_labels),
            test_y: labels(&mnist.test_labels),
            train_labels: mnist.train_labels,
        };
        let sharing = if workers > 1 { format!(", {workers} workers") } else { String::new() };
        let (train, test) = (digits.train_y.len(), digits.test_y.len());
        if say {
            println!("MNIST: {train} training and {test} test digits from {}{sharing}", dir.display());
        }
        Ok(digits)
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Copy)]
pub struct Epoch {
    /// The mean training loss over the epoch's steps.
    pub loss: f64,
    /// Accuracy on the whole training set after the epoch.
    pub train_accuracy: f64,
    /// Accuracy on the held-out set after the epoch.
    pub test_accuracy: f64,
    /// Wall-clock seconds of the epoch's training steps.
    pub seconds: f64,
}

/// A progress bar over `steps` steps of epoch `epoch` (from 0), hidden unless `shown`.
pub fn progress_bar(shown: bool, steps: usize, epoch: usize) -> ProgressBar {
    let bar = if shown { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
    let style = ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos}/{len} {msg} {per_sec}");
    bar.set_style(style.expect("a valid template").progress_chars("=> "));
    bar.set_prefix(format!("{}", epoch + 1));
    bar
}

/// One pass over `batches` on this worker of `comm`: each global batch's input made by `input`,
/// this worker's shard of it, softmax cross-entropy, backward, the gradients averaged over the
/// workers, an optimizer step and `reset`, with `bar` showing the running loss. Returns the mean
/// loss over the epoch's samples and the seconds the pass took. With [`Single`], the plain
/// training loop.
///
/// [`Single`]: tapegrad::parallel::Single
pub fn train_epoch<X>(
    comm: &impl Communicator,
    tape: &Tape<f32>,
    model: &impl Module<f32>,
    opt: &mut dyn Optimizer<f32>,
    batches: impl Iterator<Item = (X, Vec<usize>)>,
    bar: &ProgressBar,
    mut input: impl FnMut(X) -> ArrayD<f32>,
) -> Result<(f64, f64), ParallelError> {
    let (start, mut total, mut samples) = (Instant::now(), 0.0, 0);
    let params = nn::params(model);
    for (x, y) in batches {
        let mine = parallel::shard(y.len(), comm.rank(), comm.size());
        let x = input(x).slice_axis(Axis(0), mine.clone().into()).to_owned();
        let logits = model.forward(tape.constant(x));
        let loss = nn::softmax_cross_entropy(logits, &y[mine.clone()]);
        let mut grads = loss.backward();
        parallel::all_reduce_gradients(comm, tape, &params, &mut grads, mine.len())?;
        opt.step(tape, &grads);
        total += loss.scalar() as f64 * mine.len() as f64;
        samples += mine.len();
        tape.reset();
        bar.set_message(format!("loss {:.4}", total / samples as f64));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut sums = [total, samples as f64];
    comm.all_reduce_sum(&mut sums)?;
    Ok((sums[0] / sums[1].max(1.0), start.elapsed().as_secs_f64()))
}

/// The accuracy of `scores` on `n` samples, this worker of `comm` scoring its shard: `correct`
/// gives the number right in a range of samples.
pub fn accuracy(
    comm: &impl Communicator,
    n: usize,
    correct: impl Fn(std::ops::Range<usize>) -> f64,
) -> Result<f64, ParallelError> {
    let mut right = [correct(parallel::shard(n, comm.rank(), comm.size()))];
    comm.all_reduce_sum(&mut right)?;
    Ok(right[0] / n as f64)
}

/// Writes the weights (`weights.safetensors`) and the curves (`curves.png`) to `out_dir`,
/// saying where.
pub fn save_weights_and_curves(
    out_dir: &Path,
    tape: &Tape<f32>,
    model: &impl Module<f32>,
    epochs: &[Epoch],
) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(out_dir)?;
    let weights = out_dir.join("weights.safetensors");
    nn::save(&weights, tape, model)?;
    println!("weights saved to {}", weights.display());
    let curves = out_dir.join("curves.png");
    plot_curves(&curves, epochs)?;
    println!("loss and accuracy curves drawn in {}", curves.display());
    Ok(())
}

/// Prints an epoch's line.
pub fn report(epoch: usize, stats: &Epoch) {
    println!(
        "epoch {:>2}: loss {:.4}  train accuracy {:.4}  test accuracy {:.4}  ({:.2} s)",
        epoch + 1,
        stats.loss,
        stats.train_accuracy,
        stats.test_accuracy,
        stats.seconds
    );
}

/// The loss (left) and the train and test accuracy (right) by epoch.
pub fn plot_curves(path: &Path, epochs: &[Epoch]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    register_font();
    let root = BitMapBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let n = epochs.len() as f64;
    let at = |i: usize| (i + 1) as f64;
    let max_loss = epochs.iter().map(|e| e.loss).fold(0.0, f64::max) * 1.05;
    let mut loss = ChartBuilder::on(&left)
        .caption("training loss", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..n.max(2.0), 0.0..max_loss.max(1e-3))?;
    loss.configure_mesh().x_desc("epoch").y_desc("cross-entropy").draw()?;
    loss.draw_series(LineSeries::new(
        epochs.iter().enumerate().map(|(i, e)| (at(i), e.loss)),
        RED.stroke_width(2),
    ))?;
    let low = epochs.iter().map(|e| e.test_accuracy.min(e.train_accuracy)).fold(1.0, f64::min);
    let mut accuracy = ChartBuilder::on(&right)
        .caption("accuracy", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..n.max(2.0), (low - 0.02).max(0.0)..1.0)?;
    accuracy.configure_mesh().x_desc("epoch").draw()?;
    let series = [
        ("train", BLUE, epochs.iter().map(|e| e.train_accuracy).collect::<Vec<_>>()),
        ("test", GREEN, epochs.iter().map(|e| e.test_accuracy).collect()),
    ];
    for (name, color, values) in series {
        accuracy
            .draw_series(LineSeries::new(
                values.iter().enumerate().map(|(i, &a)| (at(i), a)),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    accuracy
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
