//! A classifier for Fisher's iris flowers: four measurements (sepal and petal length and width,
//! in cm) in, one of three species out.
//!
//! The 150 flowers of `data/iris.csv` are split 80/20 with a seed. Each feature is standardised
//! (minus its mean, over its standard deviation) with statistics of the training part only, so
//! nothing about the held-out flowers leaks into training. A 4-16-3 ReLU network is then trained
//! with softmax cross-entropy and Adam on shuffled mini-batches, and scored on both parts.
//! Everything is seeded: every run prints the same figures.
//!
//! Run with `cargo run --release --example 09_iris`.

use std::fmt;

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use tapegrad::Tape;
use tapegrad::data::{DataError, DataLoader, LabelledDataset};
use tapegrad::nn::{self, Activation, Init, Mlp, Module};
use tapegrad::optim::{Adam, Optimizer};

/// Where the data set is.
pub const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv");
/// The fraction of flowers held out.
pub const TEST_FRACTION: f64 = 0.2;
/// The seed of the split, the initial weights and the shuffling.
pub const SEED: u64 = 0;
/// Passes over the training flowers.
pub const EPOCHS: usize = 60;

/// Standardises features with the mean and standard deviation it was fitted on (scikit-learn's
/// `StandardScaler`).
#[derive(Debug, Clone, PartialEq)]
pub struct StandardScaler {
    /// Each feature's mean.
    pub mean: Array1<f64>,
    /// Each feature's standard deviation (over `n`, not `n − 1`).
    pub std: Array1<f64>,
}

impl StandardScaler {
    /// The statistics of each column of `x`.
    pub fn fit(x: &Array2<f64>) -> Self {
        let mean = x.mean_axis(Axis(0)).expect("at least one row");
        StandardScaler { std: x.std_axis(Axis(0), 0.0), mean }
    }

    /// `(x − mean) / std`, column by column.
    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean) / &self.std
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epoch {
    /// The mean training loss over the epoch's mini-batches.
    pub loss: f64,
    /// Accuracy on the training flowers after the epoch.
    pub train_accuracy: f64,
    /// Accuracy on the held-out flowers after the epoch.
    pub test_accuracy: f64,
}

/// What training produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// The species names.
    pub class_names: Vec<String>,
    /// The scaler, fitted on the training flowers.
    pub scaler: StandardScaler,
    /// Every epoch's figures.
    pub epochs: Vec<Epoch>,
    /// The predicted species of each held-out flower, in the split's order.
    pub test_predictions: Vec<usize>,
    /// How many flowers were trained on and held out.
    pub sizes: (usize, usize),
}

/// Splits, standardises and trains with `seed`.
pub fn train(seed: u64) -> Result<Report, DataError> {
    let iris = LabelledDataset::load(IRIS)?;
    let (train, test) = iris.split(TEST_FRACTION, seed)?;
    let scaler = StandardScaler::fit(&train.features);
    let (train_x, test_x) = (scaler.transform(&train.features), scaler.transform(&test.features));
    let (train_y, test_y) = (train.labels.to_vec(), test.labels.to_vec());

    let tape = Tape::<f32>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let model = Mlp::new(&tape, &[4, 16, 3], Activation::Relu, Init::He, &mut rng);
    let mut optimizer = Adam::new(nn::params(&model), 0.01);
    let loader = DataLoader::new(&train_x, &train.labels, 16)?.seed(seed);
    // Evaluation records nothing (no_grad) and keeps nothing (scope frees its nodes).
    let scores = |x: &Array2<f64>| {
        tape.scope(|| {
            let _frozen = tape.no_grad();
            model.forward(tape.constant(x.mapv(|v| v as f32))).to_array()
        })
    };

    let mut epochs = Vec::new();
    for epoch in 0..EPOCHS {
        let mut total = 0.0;
        for (x, y) in loader.epoch::<f32>(epoch as u64) {
            let logits = model.forward(tape.constant(x));
            let loss = nn::softmax_cross_entropy(logits, &y);
            optimizer.step(&tape, &loss.backward());
            total += f64::from(loss.scalar());
            tape.reset();
        }
        epochs.push(Epoch {
            loss: total / loader.len() as f64,
            train_accuracy: nn::accuracy(&scores(&train_x), &train_y),
            test_accuracy: nn::accuracy(&scores(&test_x), &test_y),
        });
    }
    let test_predictions = nn::predicted_classes(&scores(&test_x));
    Ok(Report {
        class_names: iris.class_names,
        scaler,
        epochs,
        test_predictions,
        sizes: (train.len(), test.len()),
    })
}

/// Trains with the example's seed.
pub fn report() -> Result<Report, DataError> {
    train(SEED)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (train, test) = self.sizes;
        writeln!(f, "iris: {train} flowers to train on, {test} held out ({})", self.class_names.join(", "))?;
        writeln!(f, "training means {:.3}, standard deviations {:.3}", self.scaler.mean, self.scaler.std)?;
        for (i, e) in self.epochs.iter().enumerate().filter(|(i, _)| i % 10 == 9 || *i == 0) {
            writeln!(
                f,
                "epoch {:>3}: loss {:.4}  train accuracy {:.4}  test accuracy {:.4}",
                i + 1,
                e.loss,
                e.train_accuracy,
                e.test_accuracy
            )?;
        }
        let last = self.epochs.last().expect("at least one epoch");
        writeln!(f, "train accuracy: {:.4}", last.train_accuracy)?;
        writeln!(f, "test accuracy: {:.4}", last.test_accuracy)
    }
}

#[allow(dead_code)]
fn main() {
    match report() {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("09_iris: {e}");
            std::process::exit(1);
        }
    }
}
