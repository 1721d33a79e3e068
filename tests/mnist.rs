//! The README's main job: the MNIST example's default settings reach 0.95 test accuracy on the
//! shipped sample, and its flags parse.

#[path = "../examples/10_mnist_mlp.rs"]
mod mnist_mlp;

use mnist_mlp::Settings;

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
    let model = tapegrad::nn::Mlp::new(&tape, &settings.sizes, settings.activation, settings.init, &mut rng);
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
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let s = Settings::from_args(args("--two-layer-net --epochs 3")).unwrap();
    assert_eq!(
        (s.sizes.as_slice(), s.batch, s.lr, s.optimizer.as_str(), s.epochs),
        (&[784, 50, 10][..], 100, 0.1, "sgd", 3)
    );
    let s = Settings::from_args(args("--optimizer rmsprop --hidden 64,32 --data-dir /tmp/mnist")).unwrap();
    assert_eq!((s.sizes.as_slice(), s.optimizer.as_str()), (&[784, 64, 32, 10][..], "rmsprop"));
    assert_eq!(s.data_dir, std::path::PathBuf::from("/tmp/mnist"));
    let e = Settings::from_args(args("--optimizer lbfgs")).unwrap_err();
    assert!(e.starts_with("unknown optimizer \"lbfgs\""), "{e}");
    assert_eq!(Settings::from_args(args("--epochs")).unwrap_err(), "--epochs needs a value");
    assert_eq!(Settings::default().workers, 2, "two workers by default, on any machine");
    assert_eq!(Settings::from_args(args("--workers 1")).unwrap().workers, 1);
    let e = Settings::from_args(args("--workers 0")).unwrap_err();
    assert_eq!(e, "--workers: 0 is not a number of workers; expected 1, 2, …");
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
        optimizer: "momentum".into(),
        lr: 0.02,
        workers,
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
