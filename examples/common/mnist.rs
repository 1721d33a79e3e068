//! What the MNIST examples (`mnist_mlp`, `mnist_cnn`) share around their training loops: the
//! `--workers` and `--mpi` flags, the digits, an epoch's figures and its printed line, and the
//! weights and the loss and accuracy curves saved at the end.

use std::error::Error;
use std::path::Path;

use ndarray::{Array1, Array3};
use plotters::prelude::*;
use tapegrad::Tape;
use tapegrad::data::{DataError, Mnist};
use tapegrad::nn::{self, Module};
use tapegrad::parallel::Workers;

use super::command_line::at_least_one;
use super::plots::{draw_line, register_font};

/// Where the workers of a run are: threads of this process, or the processes of an MPI job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct WorkerFlags {
    /// Threads that share each batch (data-parallel training). Two by default on any machine,
    /// so that a run prints the same figures everywhere (measured faster than one on two cores)
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least_one)]
    pub workers: usize,
    /// Share each batch between the processes of an MPI job instead (`mpirun -np W`; needs the
    /// `mpi` feature)
    #[arg(long, conflicts_with = "workers")]
    pub mpi: bool,
}

impl WorkerFlags {
    /// The workers the flags ask for, as `parallel::launch` takes them.
    pub fn workers(self) -> Workers {
        if self.mpi { Workers::Mpi } else { Workers::Threads(self.workers) }
    }
}

/// The digits of an MNIST directory, pixels in [0, 1] shaped as the network takes them, with
/// their labels.
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
    /// Loads `dir`, shaping each set of images with `shape` (from `[N, 28, 28]` in [0, 1]).
    pub fn load(dir: &Path, shape: impl Fn(Array3<f32>) -> X) -> Result<Self, DataError> {
        let mnist = Mnist::load(dir)?;
        let images = |images: &Array3<u8>| shape(images.mapv(|p| p as f32 / 255.0));
        let labels = |l: &Array1<u8>| l.iter().map(|&l| l as usize).collect::<Vec<_>>();
        Ok(Digits {
            train_x: images(&mnist.train_images),
            test_x: images(&mnist.test_images),
            train_y: labels(&mnist.train_labels),
            test_y: labels(&mnist.test_labels),
            train_labels: mnist.train_labels,
        })
    }

    /// Says how many digits came from `dir`, and for how many `workers`.
    pub fn announce(&self, dir: &Path, workers: usize) {
        let sharing = if workers > 1 { format!(", {workers} workers") } else { String::new() };
        let (train, test) = (self.train_y.len(), self.test_y.len());
        println!("MNIST: {train} training and {test} test digits from {}{sharing}", dir.display());
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Copy)]
pub struct Epoch {
    /// The mean training loss over the epoch's samples.
    pub loss: f64,
    /// Accuracy on the whole training set after the epoch.
    pub train_accuracy: f64,
    /// Accuracy on the held-out set after the epoch.
    pub test_accuracy: f64,
    /// Wall-clock seconds of the epoch's training steps.
    pub seconds: f64,
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

/// Writes the weights (`weights.safetensors`) and the curves (`curves.png`) to `out_dir`,
/// saying where.
pub fn save_weights_and_curves(
    out_dir: &Path,
    tape: &Tape<f32>,
    model: &impl Module<f32>,
    epochs: &[Epoch],
) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(out_dir)?;
    let weights = out_dir.join("weights.safetensors");
    nn::save(&weights, tape, model)?;
    println!("weights saved to {}", weights.display());
    let curves = out_dir.join("curves.png");
    plot_curves(&curves, epochs)?;
    println!("loss and accuracy curves drawn in {}", curves.display());
    Ok(())
}

/// The loss (left) and the train and test accuracy (right) by epoch.
pub fn plot_curves(path: &Path, epochs: &[Epoch]) -> Result<(), Box<dyn Error>> {
    register_font();
    let root = BitMapBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let n = epochs.len() as f64;
    let by_epoch =
        |value: fn(&Epoch) -> f64| epochs.iter().enumerate().map(move |(i, e)| ((i + 1) as f64, value(e)));
    let max_loss = epochs.iter().map(|e| e.loss).fold(0.0, f64::max) * 1.05;
    let mut loss = ChartBuilder::on(&left)
        .caption("training loss", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..n.max(2.0), 0.0..max_loss.max(1e-3))?;
    loss.configure_mesh().x_desc("epoch").y_desc("cross-entropy").draw()?;
    loss.draw_series(LineSeries::new(by_epoch(|e| e.loss), RED.stroke_width(2)))?;
    let low = epochs.iter().map(|e| e.test_accuracy.min(e.train_accuracy)).fold(1.0, f64::min);
    let mut accuracy = ChartBuilder::on(&right)
        .caption("accuracy", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..n.max(2.0), (low - 0.02).max(0.0)..1.0)?;
    accuracy.configure_mesh().x_desc("epoch").draw()?;
    draw_line(&mut accuracy, by_epoch(|e| e.train_accuracy), BLUE, "train")?;
    draw_line(&mut accuracy, by_epoch(|e| e.test_accuracy), GREEN, "test")?;
    accuracy
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
