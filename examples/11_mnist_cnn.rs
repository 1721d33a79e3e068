//! Trains the course's SimpleConvNet on MNIST: the 10,000-digit sample in `data/mnist` (8,000 to
//! train, 2,000 held out), or the full MNIST with `--data-dir`.
//!
//! ```sh
//! cargo run --release --example mnist_cnn                       # Adam, 15 epochs, shifted digits
//! cargo run --release --example mnist_cnn -- --optimizer sgd --lr 0.1 --epochs 20 --no-shift
//! cargo run --release --example mnist_cnn -- --data-dir ~/mnist --epochs 5
//! cargo run --release --example mnist_cnn -- --workers 1        # one worker (default: 2 threads)
//! ```
//!
//! The network: convolution (30 filters 5×5) → ReLU → 2×2 max pooling → Linear 4320→100 →
//! ReLU → Linear 100→10. The learning rate follows a cosine from `--lr` down to zero, and each
//! training digit is shifted by up to two pixels each step (`--no-shift` turns that off): with
//! only 8,000 digits, this is what takes the held-out accuracy past 0.98.
//!
//! Prints the train and test accuracy after each epoch, shows a progress bar with the loss and
//! speed, saves to `target/mnist_cnn/` the weights (safetensors), the loss and accuracy curves
//! and the 30 first-layer filters before and after training (PNG), and ends with
//! `test accuracy: 0.XXXX`.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4, ArrayD, Axis, s};
use rand::{RngExt, SeedableRng};
use tapegrad::data::DataLoader;
use tapegrad::nn::{self, Activation, Conv2d, Flatten, Init, Linear, MaxPool2d, Module, Sequential};
use tapegrad::optim::{CosineLr, Schedule};
use tapegrad::parallel::{self, Communicator, ParallelError};
use tapegrad::{ConvOptions, Tape, Window};

#[path = "common/training.rs"]
mod training;
pub use training::Epoch;
use training::{
    Digits, Flags, accuracy, optimizer, progress_bar, report, save_weights_and_curves, train_epoch,
};

/// What to train, and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the IDX files are.
    pub data_dir: PathBuf,
    /// First-layer filters.
    pub filters: usize,
    /// Width of the hidden linear layer.
    pub hidden: usize,
    /// `sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`, `adam` or `adamw`.
    pub optimizer: String,
    /// The first epoch's learning rate; a cosine takes it to zero at the end.
    pub lr: f64,
    /// Samples per step.
    pub batch: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Shift each training digit by up to this many pixels (0: no shifting).
    pub shift: usize,
    /// Seed of the initial weights, the shuffling and the shifts.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// Where the weights and pictures are written.
    pub out_dir: PathBuf,
    /// Threads that share each batch (data-parallel training). Two by default, on any machine,
    /// so a run prints the same figures everywhere: measured faster than one on two cores.
    pub workers: usize,
    /// Share each batch between the processes of an MPI job instead (`mpirun -np W`; needs
    /// the `mpi` feature).
    pub mpi: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist").into(),
            filters: 30,
            hidden: 100,
            optimizer: "adam".into(),
            lr: 2e-3,
            batch: 100,
            epochs: 15,
            shift: 2,
            seed: 1,
            progress: true,
            out_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/target/mnist_cnn").into(),
            workers: 2,
            mpi: false,
        }
    }
}

impl Settings {
    /// Reads the command line: `--optimizer NAME`, `--lr X`, `--epochs N`, `--batch N`,
    /// `--seed N`, `--filters N`, `--hidden N`, `--shift N`, `--no-shift`, `--workers N`, `--mpi`,
    /// `--data-dir DIR`, `--out-dir DIR`.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut settings = Settings::default();
        let mut flags = Flags::new(args, &[]);
        while let Some(flag) = flags.next_flag() {
            match flag.as_str() {
                "--optimizer" => settings.optimizer = flags.value()?,
                "--lr" => settings.lr = flags.number()?,
                "--epochs" => settings.epochs = flags.number()? as usize,
                "--batch" => settings.batch = flags.number()? as usize,
                "--seed" => settings.seed = flags.number()? as u64,
                "--filters" => settings.filters = flags.number()? as usize,
                "--hidden" => settings.hidden = flags.number()? as usize,
                "--shift" => settings.shift = flags.number()? as usize,
                "--workers" => settings.workers = training::workers(&flags.number()?)?,
                "--mpi" => settings.mpi = true,
                "--no-shift" => settings.shift = 0,
                "--data-dir" => settings.data_dir = flags.value()?.into(),
                "--out-dir" => settings.out_dir = flags.value()?.into(),
                _ => return Err(flags.unknown()),
            }
        }
        optimizer(&settings.optimizer, Vec::new(), settings.lr)?;
        Ok(settings)
    }
}

/// SimpleConvNet: conv → ReLU → max pool → linear → ReLU → linear, with PyTorch's names
/// (`conv1.weight`, `fc1.weight`, …).
pub fn simple_conv_net(tape: &Tape<f32>, settings: &Settings, rng: &mut impl rand::Rng) -> Sequential<f32> {
    let pooled = settings.filters * 12 * 12;
    Sequential::new()
        .add(
            "conv1",
            Conv2d::new(tape, 1, settings.filters, (5, 5), ConvOptions::default(), Init::Normal(0.01), rng),
        )
        .add("relu1", Activation::Relu)
        .add("pool1", MaxPool2d(Window::pool((2, 2))))
        .add("flatten", Flatten)
        .add("fc1", Linear::new(tape, pooled, settings.hidden, Init::He, rng))
        .add("relu2", Activation::Relu)
        .add("fc2", Linear::new(tape, settings.hidden, 10, Init::He, rng))
}

/// Trains as `settings` say, printing a line per epoch; returns every epoch's figures. With
/// `workers` above 1, that many threads share each batch (data-parallel), ending with the
/// weights one worker would reach up to rounding; with `mpi`, the processes of the MPI job do
/// (and only rank 0 returns the epochs, the others an empty list).
pub fn train(settings: &Settings) -> Result<Vec<Epoch>, Box<dyn std::error::Error>> {
    let shape = |x: ndarray::Array3<f32>| {
        let n = x.len_of(Axis(0));
        x.into_shape_with_order((n, 1, 28, 28)).expect("28×28 images")
    };
    training::on_workers(settings, &settings.data_dir, settings.workers, settings.mpi, shape)
}

impl training::Job<Array4<f32>> for Settings {
    fn run(&self, comm: &impl Communicator, data: &Data) -> Result<Vec<Epoch>, ParallelError> {
        run(comm, self, data)
    }
}

/// The digits, as the network takes them.
type Data = Digits<Array4<f32>>;

/// The training run of one worker of `comm`: rank 0 reports and saves.
fn run(comm: &impl Communicator, settings: &Settings, data: &Data) -> Result<Vec<Epoch>, ParallelError> {
    let failed =
        |e: &dyn std::fmt::Display| ParallelError::Worker { rank: comm.rank(), message: e.to_string() };
    let lead = comm.rank() == 0;
    let tape = Tape::<f32>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
    let model = simple_conv_net(&tape, settings, &mut rng);
    parallel::sync_replicas(comm, &tape, &model)?;
    let conv1 = model.parameters()[0].1;
    let filters_before = tape.get(conv1).to_array();
    let mut opt = optimizer(&settings.optimizer, nn::params(&model), settings.lr).map_err(|e| failed(&e))?;
    let schedule = CosineLr { initial: settings.lr, min: 0.0, epochs: settings.epochs };
    let loader =
        DataLoader::new(&data.train_x, &data.train_labels, settings.batch).map_err(|e| failed(&e))?;
    let loader = loader.seed(settings.seed);
    // Evaluation records nothing (no_grad), keeps nothing (scope frees its nodes), and goes in
    // batches so that the column buffers of the convolution stay small; each worker scores its
    // share of the digits.
    let evaluate = |x: &Array4<f32>, y: &[usize]| {
        accuracy(comm, y.len(), |rows| {
            let x = x.slice(s![rows.clone(), .., .., ..]);
            let chunks = x.axis_chunks_iter(Axis(0), 500).zip(y[rows].chunks(500));
            chunks
                .map(|(x, y)| {
                    tape.scope(|| {
                        let _frozen = tape.no_grad();
                        let scores = model.forward(tape.constant(x.to_owned())).to_array();
                        nn::accuracy(&scores, y) * y.len() as f64
                    })
                })
                .sum()
        })
    };

    // every worker draws the same shifts for the whole batch, then takes its shard
    let mut shifts = rand::rngs::StdRng::seed_from_u64(settings.seed ^ 0x5eed);
    let mut epochs = Vec::new();
    for epoch in 0..settings.epochs {
        opt.set_learning_rate(schedule.rate(epoch));
        let bar = progress_bar(settings.progress && lead, loader.len(), epoch);
        let batches = loader.epoch::<f32>(epoch as u64);
        let (loss, seconds) = train_epoch(comm, &tape, &model, opt.as_mut(), batches, &bar, |x| {
            let x = x.into_dimensionality().expect("[N, 1, 28, 28]");
            shift_randomly(x, settings.shift, &mut shifts).into_dyn()
        })?;
        let stats = Epoch {
            loss,
            train_accuracy: evaluate(&data.train_x, &data.train_y)?,
            test_accuracy: evaluate(&data.test_x, &data.test_y)?,
            seconds,
        };
        if lead {
            report(epoch, &stats);
        }
        epochs.push(stats);
    }
    if lead {
        save_weights_and_curves(&settings.out_dir, &tape, &model, &epochs).map_err(|e| failed(&e))?;
        let pictures = settings.out_dir.join("filters.png");
        plot_filters(&pictures, &filters_before, &tape.get(conv1).to_array()).map_err(|e| failed(&e))?;
        println!("first-layer filters before and after training drawn in {}", pictures.display());
    }
    Ok(epochs)
}

/// Each image moved by up to `max` pixels along each axis (a fresh draw per image), with zeros
/// shifted in: the digits stay the same, their positions vary, and the network learns that
/// position does not matter.
fn shift_randomly(x: Array4<f32>, max: usize, rng: &mut impl rand::Rng) -> Array4<f32> {
    if max == 0 {
        return x;
    }
    let (n, _, h, w) = x.dim();
    let mut out = Array4::zeros(x.raw_dim());
    let m = max as i64;
    for i in 0..n {
        let (dy, dx) = (rng.random_range(-m..=m) as isize, rng.random_range(-m..=m) as isize);
        // rows and columns that stay inside the image after the shift
        let range = |d: isize, len: usize| (d.max(0) as usize, (len as isize + d.min(0)) as usize);
        let ((to_y, end_y), (to_x, end_x)) = (range(dy, h), range(dx, w));
        let (from_y, from_x) = ((to_y as isize - dy) as usize, (to_x as isize - dx) as usize);
        let source = x.slice(s![i, .., from_y..from_y + end_y - to_y, from_x..from_x + end_x - to_x]);
        out.slice_mut(s![i, .., to_y..end_y, to_x..end_x]).assign(&source);
    }
    out
}

/// The first layer's filters `[30, 1, 5, 5]` as two grids of gray squares, before (left) and
/// after (right) training; each filter is scaled to its own range, black to white.
fn plot_filters(
    path: &Path,
    before: &ArrayD<f32>,
    after: &ArrayD<f32>,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    training::register_font();
    let (count, kh, kw) = (before.shape()[0], before.shape()[2], before.shape()[3]);
    let columns = 6;
    let rows = count.div_ceil(columns);
    let (cell, gap, top) = (12u32, 8u32, 40u32);
    let panel = (columns as u32 * (kw as u32 * cell + gap), rows as u32 * (kh as u32 * cell + gap));
    let root = BitMapBackend::new(path, (2 * panel.0 + 3 * gap, panel.1 + top + gap)).into_drawing_area();
    root.fill(&WHITE)?;
    for (p, (title, weights)) in
        [("before training", before), ("after training", after)].into_iter().enumerate()
    {
        let left = gap as i32 + p as i32 * (panel.0 + gap) as i32;
        root.draw(&Text::new(title, (left, 10), ("sans-serif", 20).into_font()))?;
        for f in 0..count {
            let filter: Array2<f32> = weights.slice(s![f, 0, .., ..]).to_owned();
            let (lo, hi) = filter.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let (x0, y0) = (
                left + ((f % columns) as u32 * (kw as u32 * cell + gap)) as i32,
                (top + (f / columns) as u32 * (kh as u32 * cell + gap)) as i32,
            );
            for ((r, c), &v) in filter.indexed_iter() {
                let level = (255.0 * (v - lo) / (hi - lo).max(f32::MIN_POSITIVE)) as u8;
                let (x, y) = (x0 + (c as u32 * cell) as i32, y0 + (r as u32 * cell) as i32);
                let square = [(x, y), (x + cell as i32, y + cell as i32)];
                root.draw(&Rectangle::new(square, RGBColor(level, level, level).filled()))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let settings = match Settings::from_args(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mnist_cnn: {e}");
            std::process::exit(2);
        }
    };
    match train(&settings) {
        // under MPI, only rank 0 reports
        Ok(epochs) if epochs.is_empty() => {}
        Ok(epochs) => println!("test accuracy: {:.4}", epochs.last().map_or(0.0, |e| e.test_accuracy)),
        Err(e) => {
            eprintln!("mnist_cnn: {e}");
            std::process::exit(1);
        }
    }
}
