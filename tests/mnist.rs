//! The README's main job: the MNIST example's default settings reach 0.95 test accuracy on the
//! shipped sample, and its flags parse.

#[path = "../examples/10_mnist_mlp.rs"]
mod mnist_mlp;

use clap::Parser;
use mnist_mlp::{OptimizerName, Settings, WorkerFlags};

/// The settings of `mnist_mlp` run with `flags`, or clap's error.
fn parse(flags: &str) -> Result<Settings, clap::Error> {
    Settings::try_parse_from(std::iter::once("mnist_mlp").chain(flags.split_whitespace()))
}

/// The first line of clap's error for `flags`.
fn error(flags: &str) -> String {
    parse(flags).unwrap_err().to_string().lines().next().unwrap_or_default().to_string()
}

#[test]
fn default_settings_reach_95_percent_on_the_held_out_digits() {
    let out = std::env::temp_dir().join(format!("tapegrad-mnist-test-{}", std::process::id()));
    let settings = Settings { progress: false, out_dir: out.clone(), ..Settings::default() };
    let epochs = mnist_mlp::train(&settings).unwrap();
    assert_eq!(epochs.len(), 15);
    let last = epochs.last().unwrap();
    assert!(last.test_accuracy >= 0.95, "test accuracy {}", last.test_accuracy);
    assert!(
        epochs[0].loss > 3.0 * last.loss,
        "the loss falls: {:?}",
        epochs.iter().map(|e| e.loss).collect::<Vec<_>>()
    );
    assert!(epochs.windows(2).take(5).all(|w| w[1].loss < w[0].loss));
    // the saved weights load back into a fresh model of the same shape
    let tape = tapegrad::Tape::<f32>::new();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
    let model = mnist_mlp::mlp(&tape, &settings, &mut rng);
    tapegrad::nn::load(out.join("weights.safetensors"), &tape, &model).unwrap();
    // and the curves are a real picture of the promised size
    let decoder =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out.join("curves.png")).unwrap()));
    let info = decoder.read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (960, 400));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn flags_choose_the_textbook_network_and_the_optimizer() {
    let s = parse("--two-layer-net --epochs 3").unwrap();
    assert_eq!(
        (s.hidden.as_slice(), s.batch, s.lr, s.optimizer, s.epochs),
        (&[50][..], 100, 0.1, OptimizerName::Sgd, 3)
    );
    let s = Settings::default();
    assert_eq!(
        (s.hidden.as_slice(), s.batch, s.lr, s.optimizer, s.epochs, s.two_layer_net),
        (&[256, 128][..], 64, 1e-3, OptimizerName::Adam, 15, false)
    );
    let s = parse("--optimizer rmsprop --hidden 64,32 --data-dir /tmp/mnist").unwrap();
    assert_eq!((s.hidden.as_slice(), s.optimizer), (&[64, 32][..], OptimizerName::Rmsprop));
    assert_eq!(s.data_dir, std::path::PathBuf::from("/tmp/mnist"));
    // the textbook's network from the flags, with its sigmoid and its small weights
    let tape = tapegrad::Tape::<f32>::new();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let net = mnist_mlp::mlp(&tape, &parse("--two-layer-net").unwrap(), &mut rng);
    let shapes: Vec<_> = tapegrad::nn::Module::parameters(&net)
        .into_iter()
        .map(|(name, p)| (name, tape.get(p).shape().to_vec()))
        .collect();
    assert_eq!(shapes[0], ("fc1.weight".to_string(), vec![784, 50]));
    assert_eq!(shapes[2], ("fc2.weight".to_string(), vec![50, 10]));
    let first = tape.get(tapegrad::nn::Module::parameters(&net)[0].1).to_array();
    let spread = (first.iter().map(|w| (w * w) as f64).sum::<f64>() / first.len() as f64).sqrt();
    assert!((spread - 0.01).abs() < 0.001, "weights N(0, 0.01²), found a spread of {spread}");

    assert!(error("--optimizer lbfgs").contains("invalid value 'lbfgs' for '--optimizer <OPTIMIZER>'"));
    assert!(error("--epochs").contains("a value is required for '--epochs <EPOCHS>'"));
    assert!(error("--hidden 25x").contains("invalid value '25x' for '--hidden <WIDTHS>'"));
    assert!(error("--bogus").contains("unexpected argument '--bogus'"));
    assert_eq!(Settings::default().workers, WorkerFlags { workers: 2, mpi: false }, "two by default");
    assert_eq!(parse("--workers 1").unwrap().workers.workers, 1);
    assert_eq!(parse("--mpi").unwrap().workers.workers(), tapegrad::parallel::Workers::Mpi);
    assert_eq!(
        error("--workers 0"),
        "error: invalid value '0' for '--workers <N>': expected a whole number of at least 1"
    );
    assert!(error("--mpi --workers 3").contains("cannot be used with"));
}

/// Two workers sharing each batch train the same network as one: after two epochs of
/// momentum SGD the accuracies agree to rounding (the summation order differs).
#[test]
fn two_workers_train_the_same_network_as_one() {
    let out = std::env::temp_dir().join(format!("tapegrad-mnist-workers-{}", std::process::id()));
    let settings = |workers| Settings {
        progress: false,
        out_dir: out.clone(),
        epochs: 2,
        optimizer: OptimizerName::Momentum,
        lr: 0.02,
        workers: WorkerFlags { workers, mpi: false },
        ..Settings::default()
    };
    let (one, two) = (mnist_mlp::train(&settings(1)).unwrap(), mnist_mlp::train(&settings(2)).unwrap());
    for (a, b) in one.iter().zip(&two) {
        assert!((a.loss - b.loss).abs() < 1e-5 * a.loss, "{} against {}", a.loss, b.loss);
        assert!((a.test_accuracy - b.test_accuracy).abs() <= 1.0 / 2000.0, "{a:?} against {b:?}");
    }
    assert!(one[1].test_accuracy > 0.9, "{one:?}");
    std::fs::remove_dir_all(out).unwrap();
}
