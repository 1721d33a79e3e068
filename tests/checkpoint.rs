//! Checkpoints: a run stopped after 2 epochs and resumed from its file in a fresh model and
//! optimizer (on another thread, so nothing but the file carries over) ends bit-identical to 3
//! epochs straight; a checkpoint that does not fit is refused with every mismatch named.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use tapegrad::Tape;
use tapegrad::checkpoint::Checkpoint;
use tapegrad::data::DataLoader;
use tapegrad::data::mnist::Mnist;
use tapegrad::nn::{self, Activation, Init, Mlp, Module};
use tapegrad::optim::{Adam, CosineLr, Optimizer, Schedule};
use tapegrad::state::{Mismatch, StateDict, StateError};

const SIZES: [usize; 3] = [784, 64, 10];
const SCHEDULE: CosineLr = CosineLr { initial: 3e-3, min: 1e-4, epochs: 3 };

/// 2,000 digits of the shipped sample, as rows in [0, 1].
fn digits() -> (Array2<f32>, Vec<u8>) {
    let mnist = Mnist::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    let x = mnist.train_images.slice_axis(Axis(0), (0..2_000).into()).mapv(|p| p as f32 / 255.0);
    (x.into_shape_with_order((2_000, 784)).unwrap(), mnist.train_labels.as_slice().unwrap()[..2_000].to_vec())
}

/// Trains epochs `from..to` of an MLP built with `init_seed` (restored from `resume` if
/// given), writes a checkpoint to `save` if given, and returns the final model and optimizer
/// states.
fn run(
    from: usize,
    to: usize,
    init_seed: u64,
    resume: Option<&Path>,
    save: Option<&Path>,
) -> (StateDict<f32>, StateDict<f32>) {
    let (x, y) = digits();
    let tape = Tape::<f32>::new();
    let model = Mlp::new(
        &tape,
        &SIZES,
        Activation::Relu,
        Init::He,
        &mut rand::rngs::StdRng::seed_from_u64(init_seed),
    );
    let mut adam = Adam::new(nn::params(&model), SCHEDULE.initial);
    if let Some(path) = resume {
        let checkpoint = Checkpoint::load(path).unwrap();
        assert_eq!(checkpoint.notes["epoch"], from.to_string());
        checkpoint.restore(&tape, &model, &mut adam).unwrap();
    }
    let loader = DataLoader::new(&x, &y, 50).unwrap().seed(11);
    for epoch in from..to {
        adam.set_learning_rate(SCHEDULE.rate(epoch));
        for (batch, labels) in loader.epoch::<f32>(epoch as u64) {
            let loss = nn::softmax_cross_entropy(model.forward(tape.constant(batch)), &labels);
            adam.step(&tape, &loss.backward());
            tape.reset();
        }
    }
    if let Some(path) = save {
        Checkpoint::capture(&tape, &model, &adam).unwrap().note("epoch", to).save(path).unwrap();
    }
    (nn::state_dict(&tape, &model).unwrap(), adam.state_dict())
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tapegrad-checkpoint-{}-{name}", std::process::id()))
}

#[test]
fn two_epochs_saved_and_one_resumed_equal_three_straight_bit_for_bit() {
    let path = temp("resume.safetensors");
    let straight = run(0, 3, 5, None, None);
    let stopped = run(0, 2, 5, None, Some(&path));
    assert_ne!(stopped.0, straight.0, "the third epoch changes the weights");
    let resumed = std::thread::scope(|s| s.spawn(|| run(2, 3, 99, Some(&path), None)).join().unwrap());
    assert_eq!(resumed.0, straight.0, "model");
    assert_eq!(resumed.1, straight.1, "optimizer: moments, step counts, learning rate");
    assert_eq!(straight.1.count("state.0.step"), Some(3 * 2_000 / 50));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_checkpoint_that_does_not_fit_names_every_mismatch_and_changes_nothing() {
    let path = temp("misfit.safetensors");
    run(0, 1, 5, None, Some(&path));
    let tape = Tape::<f32>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let wider = Mlp::new(&tape, &[784, 32, 10, 10], Activation::Relu, Init::He, &mut rng);
    let mut adam = Adam::new(nn::params(&wider), 1e-3);
    let (model_before, adam_before) = (nn::state_dict(&tape, &wider).unwrap(), adam.state_dict());

    let error = Checkpoint::load(&path).unwrap().restore(&tape, &wider, &mut adam).unwrap_err();
    let StateError::Mismatch { mismatches, .. } = &error else { panic!("{error}") };
    let differs = |name: &str, expected: &str, found: &str| Mismatch::Differs {
        name: name.into(),
        expected: expected.into(),
        found: found.into(),
    };
    let expected = [
        differs("model.fc1.weight", "f32 [784, 32]", "f32 [784, 64]"),
        differs("model.fc1.bias", "f32 [32]", "f32 [64]"),
    ];
    assert_eq!(mismatches[..2], expected, "{error}");
    for name in ["model.fc2.weight", "model.fc3.weight", "model.fc3.bias", "optimizer.state.0.exp_avg"] {
        assert!(mismatches.iter().any(|m| m.name() == name), "{name} in {error}");
    }
    assert!(!mismatches.iter().any(|m| m.name() == "model.fc2.bias"), "fc2.bias fits: {error}");
    assert_eq!(nn::state_dict(&tape, &wider).unwrap(), model_before);
    assert_eq!(adam.state_dict(), adam_before);

    // an f32 checkpoint read as f64: each tensor is named with both element types
    let error = Checkpoint::<f64>::load(&path).unwrap_err().to_string();
    assert!(error.contains("\"model.fc1.weight\" is f32 [784, 64], expected f64 tensor"), "{error}");
    std::fs::remove_file(path).unwrap();
}
