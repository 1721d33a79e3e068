//! Trains a multilayer perceptron on MNIST: the 10,000-digit sample in `data/mnist` (8,000 to
//! train, 2,000 held out), or the full MNIST with `--data-dir`.
//!
//! ```sh
//! cargo run --release --example mnist_mlp                         # 784-256-128-10 ReLU, Adam
//! cargo run --release --example mnist_mlp -- --two-layer-net      # the textbook's TwoLayerNet
//! cargo run --release --example mnist_mlp -- --optimizer momentum --epochs 20 --data-dir ~/mnist
//! cargo run --release --example mnist_mlp -- --workers 1          # one worker (default: 2 threads)
//! cargo run --release --example mnist_mlp -- --help               # every flag
//! ```
//!
//! The training loop is the course's: for each batch, forward, loss, backward and an optimizer
//! step; after each epoch, the accuracy on the training and the held-out digits. It runs
//! data-parallel: one call, `parallel::launch`, runs it on every worker (two threads by
//! default), each with its own replica of the model, and it differs from the loop of a single
//! worker only where data-parallel training does, at the lines marked "data parallel": the
//! replicas start from rank 0's weights, a worker takes its shard of each batch, the workers
//! average their gradients before each step, and they add up their losses and counts of right
//! answers.
//!
//! Prints the train and test accuracy after each epoch, shows a progress bar with the loss and
//! speed, saves the weights (safetensors) and the loss and accuracy curves (PNG) to
//! `target/mnist_mlp/`, and ends with `test accuracy: 0.XXXX`.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::data::DataLoader;
use tapegrad::nn::{self, Activation, Init, Mlp, Module};
use tapegrad::parallel::{self, Communicator, ParallelError, WorkerComm};
use tapegrad::{Tape, s};

#[path = "common/command_line.rs"]
mod command_line;
#[path = "common/mnist.rs"]
mod mnist;
#[path = "common/optimizer.rs"]
mod optimizer;
#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;

use command_line::{at_least_one, progress_bar};
use mnist::{Digits, report, save_weights_and_curves};
pub use mnist::{Epoch, WorkerFlags};
pub use optimizer::OptimizerName;
use optimizer::optimizer;

/// Trains a multilayer perceptron on the MNIST digits.
#[derive(Debug, Clone, Parser)]
#[command(name = "mnist_mlp")]
pub struct Settings {
    /// Train the textbook's TwoLayerNet: 784-50-10 sigmoid, weights N(0, 0.01²), SGD at 0.1,
    /// batches of 100, 50 epochs (the flags below still change each)
    #[arg(long)]
    pub two_layer_net: bool,
    /// The hidden layers' widths, input to output [default: 256,128; 50 with --two-layer-net]
    #[arg(
        long,
        value_name = "WIDTHS",
        value_delimiter = ',',
        value_parser = at_least_one,
        default_value = "256,128",
        default_value_if("two_layer_net", "true", "50"),
        hide_default_value = true
    )]
    pub hidden: Vec<usize>,
    /// The optimizer [default: adam; sgd with --two-layer-net]
    #[arg(
        long,
        value_enum,
        default_value_t = OptimizerName::Adam,
        default_value_if("two_layer_net", "true", "sgd"),
        hide_default_value = true
    )]
    pub optimizer: OptimizerName,
    /// The learning rate [default: 0.001; 0.1 with --two-layer-net]
    #[arg(
        long,
        default_value_t = 1e-3,
        default_value_if("two_layer_net", "true", "0.1"),
        hide_default_value = true
    )]
    pub lr: f64,
    /// Samples per step [default: 64; 100 with --two-layer-net]
    #[arg(
        long,
        value_parser = at_least_one,
        default_value_t = 64,
        default_value_if("two_layer_net", "true", "100"),
        hide_default_value = true
    )]
    pub batch: usize,
    /// Passes over the training set [default: 15; 50 with --two-layer-net]
    #[arg(
        long,
        default_value_t = 15,
        default_value_if("two_layer_net", "true", "50"),
        hide_default_value = true
    )]
    pub epochs: usize,
    /// Seed of the initial weights and the shuffling
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub workers: WorkerFlags,
    /// Where the IDX files are
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))]
    pub data_dir: PathBuf,
    /// Where the weights and the curves are written
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/mnist_mlp"))]
    pub out_dir: PathBuf,
    /// Show a progress bar
    #[arg(skip = true)]
    pub progress: bool,
}

impl Default for Settings {
    /// The settings of a command line without flags.
    fn default() -> Self {
        Settings::parse_from(["mnist_mlp"])
    }
}

/// The network: `784 → hidden… → 10`, ReLU with He's initial weights, or for the textbook's
/// TwoLayerNet sigmoid with weights drawn from N(0, 0.01²).
pub fn mlp(tape: &Tape<f32>, settings: &Settings, rng: &mut StdRng) -> Mlp<f32> {
    let sizes = [&[784][..], &settings.hidden, &[10]].concat();
    let (activation, init) = match settings.two_layer_net {
        true => (Activation::Sigmoid, Init::Normal(0.01)),
        false => (Activation::Relu, Init::He),
    };
    Mlp::new(tape, &sizes, activation, init, rng)
}

/// The digits, each a row of 784 pixels.
type Images = Array2<f32>;

/// Trains as `settings` say, printing a line per epoch, and returns every epoch's figures: one
/// call runs [`train_worker`] on each worker and hands back rank 0's (an MPI process of another
/// rank gets an empty list).
pub fn train(settings: &Settings) -> Result<Vec<Epoch>, Box<dyn Error>> {
    let digits = Digits::load(&settings.data_dir, |images| {
        let n = images.len_of(Axis(0));
        images.into_shape_with_order((n, 784)).expect("28×28 images")
    })?;
    let epochs = parallel::launch(settings.workers.workers(), |comm| train_worker(comm, settings, &digits))?;
    Ok(epochs.unwrap_or_default())
}

/// The training run of one worker of `comm`: rank 0 reports and saves.
fn train_worker(
    comm: WorkerComm<'_>,
    settings: &Settings,
    digits: &Digits<Images>,
) -> Result<Vec<Epoch>, Box<dyn Error>> {
    let lead = comm.rank() == 0;
    if lead {
        digits.announce(&settings.data_dir, comm.size());
    }
    let tape = Tape::<f32>::new();
    let model = mlp(&tape, settings, &mut StdRng::seed_from_u64(settings.seed));
    // data parallel: every replica starts from rank 0's weights
    parallel::sync_replicas(&comm, &tape, &model)?;
    let params = nn::params(&model);
    let mut opt = optimizer(settings.optimizer, params.clone(), settings.lr);
    let loader = DataLoader::new(&digits.train_x, &digits.train_labels, settings.batch)?.seed(settings.seed);

    let mut epochs = Vec::new();
    for epoch in 0..settings.epochs {
        let bar = progress_bar(settings.progress && lead, loader.len(), epoch);
        let (start, mut loss_sum, mut samples) = (Instant::now(), 0.0, 0);
        for (x, y) in loader.epoch::<f32>(epoch as u64) {
            // data parallel: this worker's shard of the batch
            let mine = parallel::shard(y.len(), comm.rank(), comm.size());
            let x = x.slice(s![mine.clone(), ..]).to_owned();
            let logits = model.forward(tape.constant(x));
            let loss = nn::softmax_cross_entropy(logits, &y[mine.clone()]);
            let mut grads = loss.backward();
            // data parallel: the mean gradient over the whole batch, the same on every worker
            parallel::all_reduce_gradients(&comm, &tape, &params, &mut grads, mine.len())?;
            opt.step(&tape, &grads);
            loss_sum += loss.scalar() as f64 * mine.len() as f64;
            samples += mine.len();
            tape.reset();
            bar.set_message(format!("loss {:.4}", loss_sum / samples as f64));
            bar.inc(1);
        }
        bar.finish_and_clear();
        // data parallel: the sums over every worker's samples
        let mut sums = [loss_sum, samples as f64];
        comm.all_reduce_sum(&mut sums)?;
        let seconds = start.elapsed().as_secs_f64();
        let stats = Epoch {
            loss: sums[0] / sums[1].max(1.0),
            train_accuracy: accuracy(&comm, &tape, &model, &digits.train_x, &digits.train_y)?,
            test_accuracy: accuracy(&comm, &tape, &model, &digits.test_x, &digits.test_y)?,
            seconds,
        };
        if lead {
            report(epoch, &stats);
        }
        epochs.push(stats);
    }
    if lead {
        save_weights_and_curves(&settings.out_dir, &tape, &model, &epochs)?;
    }
    Ok(epochs)
}

/// The share of the digits `x` that `model` labels as `y` does. Evaluation records nothing
/// (`no_grad`) and keeps nothing (`scope` frees its nodes).
fn accuracy(
    comm: &impl Communicator,
    tape: &Tape<f32>,
    model: &Mlp<f32>,
    x: &Images,
    y: &[usize],
) -> Result<f64, ParallelError> {
    // data parallel: each worker scores its shard of the digits, and the counts are added up
    let mine = parallel::shard(y.len(), comm.rank(), comm.size());
    let mut right = [tape.scope(|| {
        let _frozen = tape.no_grad();
        let scores = model.forward(tape.constant(x.slice(s![mine.clone(), ..]).to_owned())).to_array();
        nn::accuracy(&scores, &y[mine.clone()]) * mine.len() as f64
    })];
    comm.all_reduce_sum(&mut right)?;
    Ok(right[0] / y.len() as f64)
}

#[allow(dead_code)]
fn main() {
    let settings = Settings::parse();
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
