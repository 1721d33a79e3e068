//! A network with every convolution-family layer, loaded from weights PyTorch exported
//! (`tests/fixtures/conv_net.safetensors`, made by `benches/pytorch/make_conv_fixture.py`), must
//! reproduce PyTorch's logits in evaluation and training mode, its batch-norm running
//! statistics, and its gradients for every parameter and the input.

use ndarray::{ArrayD, IxDyn};
use safetensors::SafeTensors;
use tapegrad::nn::{
    self, Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, Flatten, Init,
    Linear, MaxPool2d, Module, Sequential,
};
use tapegrad::{ConvOptions, Tape, Window};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The fixture script's `ConvFixtureNet`, layer for layer, under the same names.
fn conv_fixture_net(tape: &Tape<f32>) -> Sequential<f32> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let same = ConvOptions { padding: (1, 1), ..ConvOptions::default() };
    let dilated = ConvOptions { padding: (2, 2), dilation: (2, 2), groups: 2, ..ConvOptions::default() };
    let up =
        ConvOptions { stride: (2, 2), padding: (1, 1), output_padding: (1, 1), ..ConvOptions::default() };
    let init = Init::PyTorchDefault;
    Sequential::new()
        .add("conv1", Conv2d::new(tape, 3, 8, (3, 3), same, init, &mut rng))
        .add("bn1", BatchNorm2d::new(tape, 8))
        .add("relu1", Activation::Relu)
        .add("pool1", MaxPool2d(Window::pool((2, 2))))
        .add("conv2", Conv2d::new(tape, 8, 8, (3, 3), dilated, init, &mut rng))
        .add("relu2", Activation::Relu)
        .add("up", ConvTranspose2d::new(tape, 8, 4, (3, 3), up, init, &mut rng))
        .add("relu3", Activation::Relu)
        .add("pool2", AvgPool2d(Window { stride: (2, 2), padding: (1, 1), ..Window::new((3, 3)) }))
        .add("gap", AdaptiveAvgPool2d((4, 4)))
        .add("flatten", Flatten)
        .add("fc", Linear::new(tape, 64, 5, init, &mut rng))
}

/// The f32 tensors of a safetensors file, sorted by name.
fn read(path: impl AsRef<std::path::Path>) -> Vec<(String, ArrayD<f32>)> {
    let bytes = std::fs::read(path).expect("a readable file");
    let tensors = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let mut named: Vec<_> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values =
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, ArrayD::from_shape_vec(IxDyn(view.shape()), values).unwrap())
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

fn get<'a>(tensors: &'a [(String, ArrayD<f32>)], name: &str) -> &'a ArrayD<f32> {
    &tensors.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in the fixture")).1
}

/// The largest absolute difference, after checking the shapes agree.
fn max_difference(name: &str, ours: &ArrayD<f32>, theirs: &ArrayD<f32>) -> f32 {
    assert_eq!(ours.shape(), theirs.shape(), "{name}");
    ours.iter().zip(theirs).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
}

#[test]
fn pytorch_weights_reproduce_pytorchs_logits_statistics_and_gradients() {
    let tape = Tape::<f32>::new();
    let mut model = conv_fixture_net(&tape);
    nn::load(format!("{FIXTURES}/conv_net.safetensors"), &tape, &model).expect("PyTorch's names and shapes");
    let io = read(format!("{FIXTURES}/conv_net_io.safetensors"));
    let x = get(&io, "input").clone();
    let labels: Vec<usize> = get(&io, "labels").iter().map(|&l| l as usize).collect();

    model.set_training(false);
    let logits = model.forward(tape.constant(x.clone())).to_array();
    let error = max_difference("logits_eval", &logits, get(&io, "logits_eval"));
    assert!(error < 1e-5, "eval-mode logits differ by {error}");

    model.set_training(true);
    let input = tape.var(x);
    let logits = model.forward(input);
    let error = max_difference("logits_train", &logits.to_array(), get(&io, "logits_train"));
    assert!(error < 1e-5, "train-mode logits differ by {error}");
    for name in ["running_mean", "running_var"] {
        let (_, buffer) = model.buffers().into_iter().find(|(n, _)| *n == format!("bn1.{name}")).unwrap();
        let error =
            max_difference(name, &tape.get(buffer).to_array(), get(&io, &format!("after.bn1.{name}")));
        assert!(error < 1e-6, "{name} differs by {error}");
    }

    let grads = nn::softmax_cross_entropy(logits, &labels).backward();
    let mut compared = 0;
    for (name, p) in model.parameters() {
        let theirs = get(&io, &format!("grad.{name}"));
        let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let error = max_difference(&name, &grads[p].to_array(), theirs);
        // relative to the tensor's largest gradient; conv1.bias is cancelled by the batch norm
        // after it, and both sides hold only rounding noise there
        assert!(error <= 1e-5 * scale.max(1e-3), "grad.{name} differs by {error} (largest {scale})");
        compared += 1;
    }
    assert_eq!(compared, 10);
    let error = max_difference("grad.input", &grads[input].to_array(), get(&io, "grad.input"));
    assert!(error < 1e-6, "the input's gradient differs by {error}");
}

/// Weights move both ways: what tapegrad saves has PyTorch's names and shapes, the fixture's.
#[test]
fn saved_weights_have_pytorchs_names_and_shapes() {
    let tape = Tape::<f32>::new();
    let model = conv_fixture_net(&tape);
    let path = std::env::temp_dir().join(format!("tapegrad-conv-net-{}.safetensors", std::process::id()));
    nn::save(&path, &tape, &model).unwrap();
    let ours: Vec<_> = read(&path).into_iter().map(|(n, a)| (n, a.shape().to_vec())).collect();
    let theirs: Vec<_> = read(format!("{FIXTURES}/conv_net.safetensors"))
        .into_iter()
        .map(|(n, a)| (n, a.shape().to_vec()))
        .collect();
    assert_eq!(ours, theirs);
    std::fs::remove_file(path).unwrap();
}
