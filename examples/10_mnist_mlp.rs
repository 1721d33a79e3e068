//! Trains a multilayer perceptron on MNIST: the 10,000-digit sample in `data/mnist` (8,000 to
//! train, 2,000 held out), or the full MNIST with `--data-dir`.
//!
//! ```sh
//! cargo run --release --example mnist_mlp                         # 784-256-128-10 ReLU, Adam
//! cargo run --release --example mnist_mlp -- --two-layer-net      # the textbook's TwoLayerNet
//! cargo run --release --example mnist_mlp -- --optimizer momentum --epochs 20 --data-dir ~/mnist
//! cargo run --release --example mnist_mlp -- --workers 1          # one worker (default: 2 threads)
//! ```
//!
//! Prints the train and test accuracy after each epoch, shows a progress bar with the loss and
//! speed, saves the weights (safetensors) and the loss and accuracy curves (PNG) to
//! `target/mnist_mlp/`, and ends with `test accuracy: 0.XXXX`.

use std::path::PathBuf;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use tapegrad::parallel::{self, Communicator, ParallelError};
use tapegrad::{Tape, s};

use tapegrad::data::DataLoader;
use tapegrad::nn::{self, Activation, Init, Mlp, Module};

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
    /// Layer widths, input to output.
    pub sizes: Vec<usize>,
    /// The hidden activation.
    pub activation: Activation,
    /// How the weights start.
    pub init: Init,
    /// `sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`, `adam` or `adamw`.
    pub optimizer: String,
    /// The learning rate.
    pub lr: f64,
    /// Samples per step.
    pub batch: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Seed of the initial weights and the shuffling.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// Where the weights are written.
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
            sizes: vec![784, 256, 128, 10],
            activation: Activation::Relu,
            init: Init::He,
            optimizer: "adam".into(),
            lr: 1e-3,
            batch: 64,
            epochs: 15,
            seed: 1,
            progress: true,
            out_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/target/mnist_mlp").into(),
            workers: 2,
            mpi: false,
        }
    }
}

impl Settings {
    /// The textbook's TwoLayerNet: 784-50-10 sigmoid, weights N(0, 0.01²), batch 100, SGD with
    /// learning rate 0.1.
    pub fn two_layer_net() -> Self {
        Settings {
            sizes: vec![784, 50, 10],
            activation: Activation::Sigmoid,
            init: Init::Normal(0.01),
            optimizer: "sgd".into(),
            lr: 0.1,
            batch: 100,
            epochs: 50,
            ..Settings::default()
        }
    }

    /// Reads the command line: `--two-layer-net`, `--optimizer NAME`, `--lr X`, `--epochs N`,
    /// `--batch N`, `--seed N`, `--hidden 256,128`, `--workers N`, `--mpi`, `--data-dir DIR`, `--out-dir DIR`.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut settings = if args.iter().any(|a| a == "--two-layer-net") {
            Settings::two_layer_net()
        } else {
            Settings::default()
        };
        let mut flags = Flags::new(args, &["--two-layer-net"]);
        while let Some(flag) = flags.next_flag() {
            match flag.as_str() {
                "--optimizer" => settings.optimizer = flags.value()?,
                "--lr" => settings.lr = flags.number()?,
                "--epochs" => settings.epochs = flags.number()? as usize,
                "--batch" => settings.batch = flags.number()? as usize,
                "--seed" => settings.seed = flags.number()? as u64,
                "--workers" => settings.workers = training::workers(&flags.number()?)?,
                "--mpi" => settings.mpi = true,
                "--hidden" => {
                    let widths: Result<Vec<usize>, _> = flags.value()?.split(',').map(str::parse).collect();
                    let widths = widths.map_err(|_| format!("{flag}: expected widths such as 256,128"))?;
                    settings.sizes = [vec![784], widths, vec![10]].concat();
                }
                "--data-dir" => settings.data_dir = flags.value()?.into(),
                "--out-dir" => settings.out_dir = flags.value()?.into(),
                _ => return Err(flags.unknown()),
            }
        }
        optimizer(&settings.optimizer, Vec::new(), settings.lr)?;
        Ok(settings)
    }
}

/// Trains as `settings` say, printing a line per epoch; returns every epoch's figures. With
/// `workers` above 1, that many threads share each batch (data-parallel), ending with the
/// weights one worker would reach up to rounding; with `mpi`, the processes of the MPI job do
/// (and only rank 0 returns the epochs, the others an empty list).
pub fn train(settings: &Settings) -> Result<Vec<Epoch>, Box<dyn std::error::Error>> {
    let shape = |x: ndarray::Array3<f32>| {
        let n = x.len_of(Axis(0));
        x.into_shape_with_order((n, 784)).expect("28×28 images")
    };
    training::on_workers(settings, &settings.data_dir, settings.workers, settings.mpi, shape)
}

impl training::Job<Array2<f32>> for Settings {
    fn run(&self, comm: &impl Communicator, data: &Data) -> Result<Vec<Epoch>, ParallelError> {
        run(comm, self, data)
    }
}

/// The digits, as the network takes them.
type Data = Digits<Array2<f32>>;

/// The training run of one worker of `comm`: rank 0 reports and saves.
fn run(comm: &impl Communicator, settings: &Settings, data: &Data) -> Result<Vec<Epoch>, ParallelError> {
    let failed =
        |e: &dyn std::fmt::Display| ParallelError::Worker { rank: comm.rank(), message: e.to_string() };
    let lead = comm.rank() == 0;
    let tape = Tape::<f32>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
    let model = Mlp::new(&tape, &settings.sizes, settings.activation, settings.init, &mut rng);
    parallel::sync_replicas(comm, &tape, &model)?;
    let mut opt = optimizer(&settings.optimizer, nn::params(&model), settings.lr).map_err(|e| failed(&e))?;
    let loader =
        DataLoader::new(&data.train_x, &data.train_labels, settings.batch).map_err(|e| failed(&e))?;
    let loader = loader.seed(settings.seed);
    // Evaluation records nothing (no_grad) and keeps nothing (scope frees its nodes); each
    // worker scores its share of the digits.
    let evaluate = |x: &Array2<f32>, y: &[usize]| {
        accuracy(comm, y.len(), |rows| {
            tape.scope(|| {
                let _frozen = tape.no_grad();
                let scores =
                    model.forward(tape.constant(x.slice(s![rows.clone(), ..]).to_owned())).to_array();
                nn::accuracy(&scores, &y[rows.clone()]) * rows.len() as f64
            })
        })
    };

    let mut epochs = Vec::new();
    for epoch in 0..settings.epochs {
        let bar = progress_bar(settings.progress && lead, loader.len(), epoch);
        let batches = loader.epoch::<f32>(epoch as u64);
        let (loss, seconds) =
            train_epoch(comm, &tape, &model, opt.as_mut(), batches, &bar, |x| x.into_dyn())?;
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
    }
    Ok(epochs)
}

#[allow(dead_code)]
fn main() {
    let settings = match Settings::from_args(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mnist_mlp: {e}");
            std::process::exit(2);
        }
    };
    match train(&settings) {
        // under MPI, only rank 0 reports
        Ok(epochs) if epochs.is_empty() => {}
        Ok(epochs) => println!("test accuracy: {:.4}", epochs.last().map_or(0.0, |e| e.test_accuracy)),
        Err(e) => {
            eprintln!("mnist_mlp: {e}");
            std::process::exit(1);
        }
    }
}
