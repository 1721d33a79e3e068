//! The CNN example: SimpleConvNet with its default settings passes 0.975 test accuracy on the
//! shipped sample, writes its weights and pictures, and its flags parse.

#[path = "../examples/11_mnist_cnn.rs"]
mod mnist_cnn;

use clap::Parser;
use mnist_cnn::{OptimizerName, Settings};

/// The settings of `mnist_cnn` run with `flags`, or clap's error.
fn parse(flags: &str) -> Result<Settings, clap::Error> {
    Settings::try_parse_from(std::iter::once("mnist_cnn").chain(flags.split_whitespace()))
}

#[test]
fn simple_conv_net_passes_97_5_percent_on_the_held_out_digits() {
    let out = std::env::temp_dir().join(format!("tapegrad-mnist-cnn-test-{}", std::process::id()));
    let settings = Settings { progress: false, out_dir: out.clone(), ..Settings::default() };
    let epochs = mnist_cnn::train(&settings).unwrap();
    assert_eq!(epochs.len(), 15);
    let last = epochs.last().unwrap();
    assert!(last.test_accuracy >= 0.975, "test accuracy {}", last.test_accuracy);
    assert!(
        epochs[0].loss > 5.0 * last.loss,
        "the loss falls: {:?}",
        epochs.iter().map(|e| e.loss).collect::<Vec<_>>()
    );
    // the saved weights load back into a fresh SimpleConvNet, under PyTorch's names
    let tape = tapegrad::Tape::<f32>::new();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
    let model = mnist_cnn::simple_conv_net(&tape, &settings, &mut rng);
    tapegrad::nn::load(out.join("weights.safetensors"), &tape, &model).unwrap();
    let names: Vec<_> = tapegrad::nn::Module::parameters(&model).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    // the curves and the filter grids are real pictures of the promised sizes
    for (file, size) in [("curves.png", (960, 400)), ("filters.png", (840, 388))] {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out.join(file)).unwrap()));
        let info = decoder.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), size, "{file}");
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn flags_choose_the_optimizer_the_shifts_and_the_data() {
    let s = parse("--optimizer sgd --lr 0.1 --epochs 3 --batch 50 --no-shift").unwrap();
    assert_eq!((s.optimizer, s.lr, s.epochs, s.batch, s.shift), (OptimizerName::Sgd, 0.1, 3, 50, 0));
    let s = parse("--filters 16 --hidden 64 --shift 1 --data-dir /tmp/mnist").unwrap();
    assert_eq!((s.filters, s.hidden, s.shift), (16, 64, 1));
    assert_eq!(s.data_dir, std::path::PathBuf::from("/tmp/mnist"));
    let s = Settings::default();
    assert_eq!((s.filters, s.hidden, s.optimizer, s.lr, s.shift), (30, 100, OptimizerName::Adam, 2e-3, 2));
    let error = |flags: &str| parse(flags).unwrap_err().to_string();
    assert!(error("--optimizer lbfgs").contains("invalid value 'lbfgs' for '--optimizer <OPTIMIZER>'"));
    assert!(error("--seed").contains("a value is required for '--seed <SEED>'"));
    assert!(error("--shift 1 --no-shift").contains("cannot be used with"));
    assert_eq!(Settings::default().workers.workers, 2, "two workers by default, on any machine");
    assert_eq!(parse("--workers 1").unwrap().workers.workers, 1);
}
