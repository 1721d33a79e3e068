//! Layers, losses, optimizers and saving: each gradient checked against central differences,
//! each optimizer run to convergence, each file error reported.

use ndarray::{ArrayD, array};
use rand::SeedableRng;
use tapegrad::nn::{
    self, Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, ConvTranspose2d,
    Flatten, Init, Linear, Mlp, Module, Sequential,
};
use tapegrad::optim::{AdaGrad, Adam, ClipOptions, Momentum, Optimizer, RmsProp, Sgd, clip_grad_norm};
use tapegrad::{Context, ConvOptions, GradcheckOptions, Grads, Op, Tape, Value, Var, Window, gradcheck};

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(5)
}

/// An op whose forward is a module's forward and whose backward is the module's own backward:
/// on a tape of its own, the module built by `build` gets its parameters (in `parameters()`
/// order) set to inputs `1..` and runs on input 0; the gradients returned are the module's, for
/// its input and for each parameter (`grads[param]`). Gradcheck on this op therefore checks a
/// layer's gradients with respect to its weights against central differences of its forward.
struct ThroughModule {
    build: fn(&Tape<f64>) -> Box<dyn Module<f64>>,
}

impl ThroughModule {
    /// The module's output for `inputs`, or with `seed`, its gradients.
    fn run(&self, inputs: &[Value<f64>], seed: Option<Value<f64>>) -> Vec<Value<f64>> {
        let tape = Tape::new();
        let module = (self.build)(&tape);
        let params = module.parameters();
        assert_eq!(inputs.len(), params.len() + 1, "the input, then one value per parameter");
        for ((name, p), value) in params.iter().zip(&inputs[1..]) {
            assert_eq!(tape.get(*p).shape().as_slice(), value.shape(), "{name}");
            tape.get(*p).set_value(value.clone());
        }
        let x = tape.var(inputs[0].clone());
        let y = module.forward(x);
        let Some(seed) = seed else { return vec![y.value()] };
        let grads = y.backward_with(seed);
        let param_grads = params.iter().map(|&(_, p)| grads.param(p).cloned().expect("a gradient"));
        std::iter::once(grads.wrt(x)).chain(param_grads).collect()
    }
}

impl Op<f64> for ThroughModule {
    fn name(&self) -> &'static str {
        "through_module"
    }
    fn forward(&self, inputs: &[&Value<f64>]) -> tapegrad::Result<Value<f64>> {
        let inputs: Vec<_> = inputs.iter().map(|&v| v.clone()).collect();
        Ok(self.run(&inputs, None).remove(0))
    }
    fn backward<'a>(&self, cx: &Context<'a, f64>, gy: Var<'a, f64>) -> Grads<'a, f64> {
        let inputs: Vec<_> = (0..cx.num_inputs()).map(|i| cx.input(i).value()).collect();
        self.run(&inputs, Some(gy.value())).into_iter().map(|g| Some(cx.tape().constant(g))).collect()
    }
}

/// Builds a module on a tape, for [`gradcheck_through_parameters`].
type Build = fn(&Tape<f64>) -> Box<dyn Module<f64>>;

/// Gradient-checks the module `build` makes with respect to its input `inputs[0]` and each of
/// its parameters, set to `inputs[1..]`, in f64 with tight tolerances.
fn gradcheck_through_parameters(
    build: Build,
    inputs: &[ArrayD<f64>],
) -> Result<(), tapegrad::GradcheckError> {
    let tight = GradcheckOptions { eps: 1e-6, atol: 1e-8, rtol: 1e-6, seed: 3 };
    gradcheck(|v| v[0].tape().apply(ThroughModule { build }, v), inputs, tight)
}

/// Values in [−1, 1] of `shape`, drawn from `seed`.
fn uniform(shape: &[usize], seed: u64) -> ArrayD<f64> {
    Init::Uniform(1.0).sample(shape, &mut rand::rngs::StdRng::seed_from_u64(seed))
}

/// Linear, Mlp and BatchNorm1d (training and evaluation), each checked with respect to its
/// input and its parameters: weight and bias, every layer's of the MLP, BatchNorm's γ and β.
#[test]
fn layers_pass_gradcheck_through_their_parameters() {
    // Linear on a batch (the fused affine op) and on a stack of batches (matmul + bias)
    let linear =
        |t: &Tape<f64>| -> Box<dyn Module<f64>> { Box::new(Linear::new(t, 3, 2, Init::Zeros, &mut rng())) };
    for x in [uniform(&[4, 3], 1), uniform(&[2, 4, 3], 2)] {
        gradcheck_through_parameters(linear, &[x, uniform(&[3, 2], 3), uniform(&[2], 4)]).unwrap();
    }

    let mlp = |t: &Tape<f64>| -> Box<dyn Module<f64>> {
        Box::new(Mlp::new(t, &[3, 4, 3, 2], Activation::Tanh, Init::Zeros, &mut rng()))
    };
    let layers = [uniform(&[3, 4], 5), uniform(&[4], 6), uniform(&[4, 3], 7), uniform(&[3], 8)];
    let (last_weight, last_bias) = (uniform(&[3, 2], 9), uniform(&[2], 10));
    let mut inputs = vec![uniform(&[5, 3], 11)];
    inputs.extend(layers.into_iter().chain([last_weight, last_bias]));
    gradcheck_through_parameters(mlp, &inputs).unwrap();

    // γ and β away from their initial 1 and 0; features with clearly different spreads
    let x = uniform(&[5, 3], 12) * array![1.0, 3.0, 0.5] + array![0.5, -2.0, 1.0];
    let (gamma, beta) = (uniform(&[3], 13) + 1.5, uniform(&[3], 14));
    let training = |t: &Tape<f64>| -> Box<dyn Module<f64>> { Box::new(BatchNorm1d::new(t, 3)) };
    gradcheck_through_parameters(training, &[x.clone(), gamma.clone(), beta.clone()]).unwrap();
    let evaluation = |t: &Tape<f64>| -> Box<dyn Module<f64>> {
        let mut bn = BatchNorm1d::new(t, 3);
        t.get(bn.running_mean).set_value(array![0.2, -1.5, 0.7]);
        t.get(bn.running_var).set_value(array![0.8, 4.0, 0.3]);
        bn.set_training(false);
        Box::new(bn)
    };
    gradcheck_through_parameters(evaluation, &[x, gamma, beta]).unwrap();
}

/// The convolution-family layers, each checked with respect to its input and its parameters:
/// Conv2d (grouped, strided, padded), ConvTranspose2d, BatchNorm2d in training and evaluation,
/// and a small network of conv, pooling, flatten and linear layers.
#[test]
fn convolution_layers_pass_gradcheck_through_their_parameters() {
    let conv = |t: &Tape<f64>| -> Box<dyn Module<f64>> {
        let options = ConvOptions { stride: (2, 1), padding: (1, 0), groups: 2, ..ConvOptions::default() };
        Box::new(Conv2d::new(t, 4, 2, (3, 2), options, Init::Zeros, &mut rng()))
    };
    let x = uniform(&[2, 4, 5, 4], 20);
    gradcheck_through_parameters(conv, &[x.clone(), uniform(&[2, 2, 3, 2], 21), uniform(&[2], 22)]).unwrap();
    let transposed = |t: &Tape<f64>| -> Box<dyn Module<f64>> {
        let options =
            ConvOptions { stride: (2, 2), padding: (1, 0), output_padding: (1, 0), ..ConvOptions::default() };
        Box::new(ConvTranspose2d::new(t, 4, 3, (3, 2), options, Init::Zeros, &mut rng()))
    };
    gradcheck_through_parameters(transposed, &[x.clone(), uniform(&[4, 3, 3, 2], 23), uniform(&[3], 24)])
        .unwrap();

    // channels with clearly different spreads; γ and β away from 1 and 0
    let spread = array![1.0, 3.0, 0.5, 2.0].into_shape_with_order((1, 4, 1, 1)).unwrap();
    let images = &x * &spread + &spread;
    let (gamma, beta) = (uniform(&[4], 25) + 1.5, uniform(&[4], 26));
    let training = |t: &Tape<f64>| -> Box<dyn Module<f64>> { Box::new(BatchNorm2d::new(t, 4)) };
    gradcheck_through_parameters(training, &[images.clone(), gamma.clone(), beta.clone()]).unwrap();
    let evaluation = |t: &Tape<f64>| -> Box<dyn Module<f64>> {
        let mut bn = BatchNorm2d::new(t, 4);
        t.get(bn.running_mean).set_value(array![0.2, -1.5, 0.7, 0.0]);
        t.get(bn.running_var).set_value(array![0.8, 4.0, 0.3, 1.0]);
        bn.set_training(false);
        Box::new(bn)
    };
    gradcheck_through_parameters(evaluation, &[images, gamma, beta]).unwrap();

    // conv → relu → average pool → flatten → linear (max pooling's ties would trip the
    // differences on random weights; its gradient is checked by the op registry)
    let small_net = |t: &Tape<f64>| -> Box<dyn Module<f64>> {
        Box::new(
            Sequential::new()
                .add("conv", Conv2d::new(t, 4, 3, (2, 2), ConvOptions::default(), Init::Zeros, &mut rng()))
                .add("act", Activation::Tanh)
                .add("pool", AvgPool2d(Window::pool((2, 1))))
                .add("gap", AdaptiveAvgPool2d((1, 2)))
                .add("flatten", Flatten)
                .add("fc", Linear::new(t, 6, 2, Init::Zeros, &mut rng())),
        )
    };
    let weights = [uniform(&[3, 4, 2, 2], 27), uniform(&[3], 28), uniform(&[6, 2], 29), uniform(&[2], 30)];
    gradcheck_through_parameters(small_net, &[[x].as_slice(), &weights].concat()).unwrap();
}

/// The recurrent layers on tiny sequences, checked with respect to the input and every weight
/// and bias of every layer and direction (the weights against PyTorch are in
/// `tests/pytorch_rnn.rs`).
#[test]
fn recurrent_layers_pass_gradcheck_through_their_parameters() {
    fn inputs(module: &dyn Module<f64>, tape: &Tape<f64>) -> Vec<ArrayD<f64>> {
        let x = uniform(&[2, 3, 2], 50);
        let weights = module
            .parameters()
            .into_iter()
            .enumerate()
            .map(|(k, (_, p))| uniform(&tape.get(p).shape(), 51 + k as u64));
        std::iter::once(x).chain(weights).collect()
    }
    let builders: [Build; 3] = [
        |t| Box::new(nn::Lstm::new(t, 2, 3, 2, true, &mut rng())),
        |t| Box::new(nn::Gru::new(t, 2, 3, 1, true, &mut rng())),
        |t| Box::new(nn::Rnn::new(t, 2, 3, 2, false, &mut rng())),
    ];
    for build in builders {
        let tape = Tape::<f64>::new();
        let values = inputs(build(&tape).as_ref(), &tape);
        gradcheck_through_parameters(build, &values).unwrap();
    }
}

/// Dropout takes any shape: an image batch keeps its shape, and about `p` of it is zeroed.
#[test]
fn dropout_takes_images() {
    let tape = Tape::<f64>::new();
    let dropout = nn::Dropout::new(0.25, 7);
    let y = Module::<f64>::forward(&dropout, tape.constant(ndarray::Array4::<f64>::ones((4, 3, 10, 10))))
        .to_array();
    assert_eq!(y.shape(), &[4, 3, 10, 10]);
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.25).abs() < 0.04, "{zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || v == 1.0 / 0.75));
}

#[test]
fn losses_pass_gradcheck() {
    let logits = array![[0.2, -1.0, 2.0], [1.5, 0.3, -0.4]].into_dyn();
    let soft = array![[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]].into_dyn();
    let options = GradcheckOptions::default();
    gradcheck(|v| nn::softmax_cross_entropy(v[0], &[2, 0]), std::slice::from_ref(&logits), options).unwrap();
    gradcheck(
        |v| nn::softmax_cross_entropy_with_targets(v[0], v[1]),
        &[logits.clone(), soft.clone()],
        options,
    )
    .unwrap();
    gradcheck(|v| nn::binary_cross_entropy_with_logits(v[0], v[1]), &[logits.clone(), soft.clone()], options)
        .unwrap();
    gradcheck(|v| nn::mean_squared_error(v[0], v[1]), &[logits.clone(), soft.clone()], options).unwrap();
    gradcheck(|v| nn::sum_squared_error(v[0], v[1]), &[logits.clone(), soft.clone()], options).unwrap();
    gradcheck(|v| nn::mean_absolute_error(v[0], v[1]), &[logits, soft], options).unwrap();
    // a sequence batch [N, T, C] with padding marked −1
    let sequences = uniform(&[2, 3, 4], 31) * 3.0;
    let labels = [3, 0, -1, 1, -1, 2];
    let tight = GradcheckOptions { eps: 1e-6, atol: 1e-8, rtol: 1e-6, seed: 1 };
    gradcheck(|v| nn::softmax_cross_entropy_ignoring(v[0], &labels, -1), &[sequences], tight).unwrap();
}

/// Ignored rows leave the mean: the loss over `[N, T, C]` with some labels −1 equals the plain
/// cross-entropy of the kept rows alone; a label that is neither a class nor ignored is an
/// error naming it; all rows ignored gives NaN, as in PyTorch.
#[test]
fn cross_entropy_ignores_the_padding() {
    let tape = Tape::<f64>::new();
    let x = uniform(&[2, 2, 3], 40);
    let logits = tape.var(x.clone());
    let loss = nn::softmax_cross_entropy_ignoring(logits, &[2, -1, 0, 1], -1).scalar();
    let rows = x.into_shape_with_order((4, 3)).unwrap();
    let kept = tape.constant(ndarray::stack![ndarray::Axis(0), rows.row(0), rows.row(2), rows.row(3)]);
    assert!((loss - nn::softmax_cross_entropy(kept, &[2, 0, 1]).scalar()).abs() < 1e-15);
    let message = panic_message(|| {
        nn::softmax_cross_entropy_ignoring(logits, &[2, -2, 0, 1], -1);
    });
    assert_eq!(
        message,
        "softmax_cross_entropy_ignoring: label -2 at row 1 is neither a class (0..3) nor ignore = -1"
    );
    assert!(nn::softmax_cross_entropy_ignoring(logits, &[-1; 4], -1).scalar().is_nan());
}

#[test]
fn softmax_cross_entropy_is_finite_for_huge_logits() {
    let tape = Tape::<f32>::new();
    let logits = tape.var(array![[1000.0f32, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]]);
    let loss = nn::softmax_cross_entropy(logits, &[1, 2]);
    // row 0: 2000 (the label's logit is 2000 below the max); row 1: ln 2
    assert!((loss.scalar() - (2000.0 + std::f32::consts::LN_2) / 2.0).abs() < 1e-3, "{}", loss.scalar());
    let g = loss.backward()[logits].to_array();
    assert!(g.iter().all(|v| v.is_finite()));
    assert_eq!(g[[0, 0]], 0.5); // softmax 1 at the wrong class, halved by the batch mean
    assert_eq!(g[[0, 1]], -0.5);
}

/// Each optimizer minimises a badly scaled quadratic `Σ cᵢ(wᵢ − tᵢ)²` from zero.
#[test]
fn every_optimizer_converges_on_a_quadratic() {
    let target = array![1.0, -2.0, 0.5];
    let scale = array![1.0, 10.0, 0.1];
    let run = |make: &dyn Fn(Vec<tapegrad::Param>) -> Box<dyn Optimizer<f64>>, steps: usize| {
        let tape = Tape::<f64>::new();
        let w = tape.param(ndarray::Array1::<f64>::zeros(3));
        let mut opt = make(vec![w]);
        for _ in 0..steps {
            let loss =
                ((tape.get(w) - tape.constant(target.clone())).square() * tape.constant(scale.clone())).sum();
            let grads = loss.backward();
            opt.step(&tape, &grads);
            tape.reset();
        }
        let w = tape.get(w).to_array();
        (&w - &target.clone().into_dyn()).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v))
    };
    assert!(run(&|p| Box::new(Sgd::new(p, 0.04)), 2000) < 1e-3);
    assert!(run(&|p| Box::new(Momentum::new(p, 0.01)), 2000) < 1e-3);
    assert!(run(&|p| Box::new(Momentum::nesterov(p, 0.01)), 2000) < 1e-3);
    assert!(run(&|p| Box::new(AdaGrad::new(p, 0.5)), 3000) < 1e-3);
    assert!(run(&|p| Box::new(RmsProp::new(p, 0.01)), 3000) < 2e-2);
    assert!(run(&|p| Box::new(Adam::new(p, 0.05)), 3000) < 1e-3);
    assert!(run(&|p| Box::new(Adam::adamw(p, 0.05, 1e-4)), 3000) < 1e-2);
}

#[test]
fn an_mlp_learns_xor() {
    let tape = Tape::<f64>::new();
    let model = Mlp::new(&tape, &[2, 8, 1], Activation::Tanh, Init::Xavier, &mut rng());
    let x = array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let t = array![[0.0], [1.0], [1.0], [0.0]];
    let mut opt = Adam::new(nn::params(&model), 0.05);
    for _ in 0..500 {
        let loss = nn::binary_cross_entropy_with_logits(
            model.forward(tape.constant(x.clone())),
            tape.constant(t.clone()),
        );
        let grads = loss.backward();
        opt.step(&tape, &grads);
        tape.reset();
    }
    let y = model.forward(tape.constant(x)).sigmoid().to_array();
    for (y, t) in y.iter().zip(&t) {
        assert!((y - t).abs() < 0.1, "{y} vs {t}");
    }
}

#[test]
fn parameters_survive_many_resets_without_growing_the_tape() {
    let tape = Tape::<f32>::new();
    let model = Mlp::new(&tape, &[4, 3, 2], Activation::Relu, Init::He, &mut rng());
    let params = tape.len();
    for _ in 0..100 {
        let y = model.forward(tape.constant(ndarray::Array2::<f32>::ones((2, 4)))).sum();
        y.backward();
        tape.reset();
    }
    assert_eq!(tape.len(), params);
}

#[test]
fn loading_weights_with_other_names_or_shapes_is_an_error() {
    let tape = Tape::<f32>::new();
    let dir = std::env::temp_dir().join(format!("tapegrad-nn-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    let small = Mlp::new(&tape, &[3, 4, 2], Activation::Relu, Init::He, &mut rng());
    nn::save(&path, &tape, &small).unwrap();

    let wide = Mlp::new(&tape, &[3, 5, 2], Activation::Relu, Init::He, &mut rng());
    let before = tape.get(wide.layers()[0].weight).to_array();
    let e = nn::load(&path, &tape, &wide).unwrap_err().to_string();
    assert!(
        e.contains("3 mismatches, nothing changed: \"fc1.weight\" is f32 [3, 4], expected f32 [3, 5]; "),
        "{e}"
    );
    assert!(e.ends_with("; \"fc2.weight\" is f32 [4, 2], expected f32 [5, 2]"), "{e}");
    assert_eq!(tape.get(wide.layers()[0].weight).to_array(), before, "nothing changes on error");

    let deeper = Mlp::new(&tape, &[3, 4, 2, 2], Activation::Relu, Init::He, &mut rng());
    let e = nn::load(&path, &tape, &deeper).unwrap_err().to_string();
    assert!(e.contains("\"fc3.weight\" is missing (expected f32 [2, 2])"), "{e}");

    let single: Linear<f32> = Linear::new(&tape, 3, 4, Init::He, &mut rng());
    let e = nn::load(&path, &tape, &single).unwrap_err().to_string();
    assert!(e.contains("\"fc2.weight\" (f32 [4, 2]) is not expected"), "{e}");

    std::fs::write(&path, b"not a safetensors file").unwrap();
    let e = nn::load(&path, &tape, &small).unwrap_err().to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn initialisers_have_the_documented_spread() {
    let mut r = rng();
    let std = |a: &ArrayD<f64>| (a.mapv(|v| v * v).mean().unwrap()).sqrt();
    assert!((std(&Init::Xavier.sample(&[300, 100], &mut r)) - (2.0f64 / 400.0).sqrt()).abs() < 0.003);
    assert!((std(&Init::Normal(0.01).sample(&[300, 100], &mut r)) - 0.01).abs() < 0.0005);
    let u = Init::Uniform(0.5).sample::<f64>(&[1000], &mut r);
    assert!(u.iter().all(|v| v.abs() <= 0.5) && u.iter().any(|v| v.abs() > 0.45));
    // seeded: the same draws again
    assert_eq!(Init::He.sample::<f32>(&[4, 4], &mut rng()), Init::He.sample::<f32>(&[4, 4], &mut rng()));
}

#[test]
fn predicted_classes_are_the_ones_accuracy_counts() {
    let scores = array![[0.2, 0.5, 0.3], [2.0, -1.0, 2.0], [f64::NEG_INFINITY, -7.0, -5.0]].into_dyn();
    // the largest score of each row; the tie in row 1 goes to the first
    assert_eq!(nn::predicted_classes(&scores), [1, 0, 2]);
    assert_eq!(nn::accuracy(&scores, &[1, 2, 2]), 2.0 / 3.0);
    // a NaN is the largest, as numpy.argmax and torch.argmax take it
    let broken = array![[0.2, f64::NAN, 0.9], [f64::NAN, f64::NAN, 1.0]].into_dyn();
    assert_eq!(nn::predicted_classes(&broken), [1, 0]);
    let vector = array![0.2, 0.8].into_dyn();
    let payload = std::panic::catch_unwind(|| nn::predicted_classes(&vector)).unwrap_err();
    let message = payload.downcast_ref::<String>().unwrap();
    assert_eq!(message, "predicted_classes: scores of shape [2]; expected (batch, classes)");
}

/// One or two steps of each update rule that the doc examples do not pin, by hand.
#[test]
fn nesterov_weight_decay_and_schedules_by_hand() {
    // Nesterov, μ = 0.9, lr = 0.1, g = 2 twice: b₁ = 2, w₁ = 1 − 0.1·(2 + 0.9·2) = 0.62;
    // b₂ = 0.9·2 + 2 = 3.8, w₂ = 0.62 − 0.1·(2 + 0.9·3.8) = 0.078
    let tape = Tape::<f64>::new();
    let w = tape.param(1.0);
    let mut opt = Momentum::nesterov(vec![w], 0.1);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let grads = (tape.get(w) * 2.0).backward();
        opt.step(&tape, &grads);
        seen.push(tape.get(w).scalar());
        tape.reset();
    }
    assert!((seen[0] - 0.62).abs() < 1e-12 && (seen[1] - 0.078).abs() < 1e-12, "{seen:?}");

    // SGD with L2 weight decay λ = 0.5: w ← w − lr·(g + λw) = 2 − 0.1·(4 + 1) = 1.5 for g = 2w
    let w = tape.param(2.0);
    let mut sgd = Sgd::new(vec![w], 0.1);
    sgd.weight_decay = 0.5;
    let grads = tape.get(w).square().backward();
    sgd.step(&tape, &grads);
    assert!((tape.get(w).scalar() - 1.5).abs() < 1e-12);

    // a parameter without a gradient in this step is left alone, and so is its state
    let (a, b) = (tape.param(1.0), tape.param(1.0));
    let mut adam = Adam::new(vec![a, b], 0.1);
    let grads = (tape.get(a) * 3.0).backward();
    adam.step(&tape, &grads);
    assert_eq!(tape.get(b).scalar(), 1.0);
    assert!((tape.get(a).scalar() - 0.9).abs() < 1e-6);
}

/// Adam's bias correction counts each parameter's own updates: one that first gets a gradient
/// after many steps of another moves by about `lr` on its first step, as a fresh Adam would.
#[test]
fn adam_corrects_each_parameter_by_its_own_step_count() {
    let tape = Tape::<f64>::new();
    let (w, u) = (tape.param(0.0), tape.param(0.0));
    let mut opt = Adam::new(vec![w, u], 0.1);
    for _ in 0..1000 {
        let grads = (tape.get(w) * 1.0).backward();
        opt.step(&tape, &grads);
        tape.reset();
    }
    let grads = (tape.get(u) * 1.0).backward();
    opt.step(&tape, &grads);
    assert!((tape.get(u).scalar() + 0.1).abs() < 1e-6, "{}", tape.get(u).scalar());
}

#[test]
fn zero_vectors_and_zero_powers_have_finite_gradients() {
    use tapegrad::Norm;
    let tape = Tape::<f64>::new();
    let x = tape.var(vec![0.0, 0.0]);
    for p in [Norm::L2, Norm::P(2.0), Norm::P(3.0)] {
        let g = x.norm(p).backward()[x].to_array();
        assert!(g.iter().all(|v| *v == 0.0), "{p:?}: {g}");
    }
    let (a, b) = (tape.var(0.0), tape.var(2.0));
    let g = a.pow(b).backward();
    assert_eq!((g[a].scalar(), g[b].scalar()), (Some(0.0), Some(0.0)));
}

/// Batch-norm running statistics are buffers: saved and loaded with the weights, so a reloaded
/// model evaluates exactly like the saved one.
#[test]
fn batch_norm_statistics_travel_with_the_weights() {
    let tape = Tape::<f64>::new();
    let build = || {
        nn::Sequential::new()
            .add("fc", Linear::new(&tape, 3, 4, Init::Xavier, &mut rng()))
            .add("bn", BatchNorm1d::new(&tape, 4))
    };
    let mut trained = build();
    for step in 0..5 {
        let x = tape.constant(array![[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [step as f64, 0.0, 1.0]]);
        trained.forward(x);
        tape.reset();
    }
    let names: Vec<_> = trained.buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["bn.running_mean", "bn.running_var"]);
    let path = std::env::temp_dir().join(format!("tapegrad-bn-{}.safetensors", std::process::id()));
    nn::save(&path, &tape, &trained).unwrap();
    let mut fresh = build();
    nn::load(&path, &tape, &fresh).unwrap();
    std::fs::remove_file(&path).unwrap();
    trained.set_training(false);
    fresh.set_training(false);
    let x = array![[0.3, 0.1, -0.2]];
    let (a, b) =
        (trained.forward(tape.constant(x.clone())).to_array(), fresh.forward(tape.constant(x)).to_array());
    assert_eq!(a, b);
    assert!(a.iter().all(|v| v.is_finite()));
}

/// A hand-written module that lists two parameters under one name.
struct SameNameTwice {
    first: tapegrad::Param,
    second: tapegrad::Param,
}

impl Module<f64> for SameNameTwice {
    fn forward<'t>(&self, x: tapegrad::Var<'t, f64>) -> tapegrad::Var<'t, f64> {
        x
    }
    fn parameters(&self) -> Vec<(String, tapegrad::Param)> {
        vec![("weight".into(), self.first), ("weight".into(), self.second)]
    }
}

/// A repeated name is reported before the file is opened: a new file is not created, an old
/// one keeps its contents, and loading refuses the ambiguous model too.
#[test]
fn saving_a_model_with_a_repeated_name_is_an_error_that_writes_nothing() {
    let tape = Tape::<f64>::new();
    let model = SameNameTwice { first: tape.param(array![1.0, 2.0]), second: tape.param(array![[3.0]]) };
    let dir = std::env::temp_dir().join(format!("tapegrad-duplicate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let expected = |path: &std::path::Path| {
        format!(
            "{}: the model names two tensors \"weight\" (shapes [2] and [1, 1]); expected each \
             parameter and buffer name once",
            path.display()
        )
    };

    let fresh = dir.join("fresh.safetensors");
    let e = nn::save(&fresh, &tape, &model).unwrap_err();
    assert!(matches!(e, tapegrad::state::StateError::Duplicate { .. }), "{e:?}");
    assert_eq!(e.to_string(), expected(&fresh));
    assert!(!fresh.exists());

    let existing = dir.join("existing.safetensors");
    std::fs::write(&existing, b"earlier contents").unwrap();
    assert_eq!(nn::save(&existing, &tape, &model).unwrap_err().to_string(), expected(&existing));
    assert_eq!(std::fs::read(&existing).unwrap(), b"earlier contents");

    let single = Linear::from_arrays(&tape, array![[5.0]], array![6.0]);
    nn::save(&existing, &tape, &single).unwrap();
    assert_eq!(nn::load(&existing, &tape, &model).unwrap_err().to_string(), expected(&existing));
    assert_eq!(tape.get(model.first).to_array(), array![1.0, 2.0].into_dyn());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `Sequential::add` refuses the names PyTorch's `add_module` refuses: one already taken, one
/// with a `.` (which would make `"a.b" + "weight"` collide with `"a" + "b.weight"`), an empty one.
#[test]
fn sequential_refuses_a_taken_dotted_or_empty_layer_name() {
    let add = |name: &'static str| {
        let model = nn::Sequential::<f64>::new().add("relu", Activation::Relu);
        let payload =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.add(name, Activation::Tanh)))
                .err()
                .unwrap();
        *payload.downcast::<String>().unwrap()
    };
    assert_eq!(
        add("relu"),
        "Sequential::add: the layer name \"relu\" is already taken (layers so far: [\"relu\"]); expected a \
         new name"
    );
    assert_eq!(
        add("a.b"),
        "Sequential::add: the layer name \"a.b\" contains '.', which separates a layer's name from its \
         parameters' (layers so far: [\"relu\"]); expected a new name"
    );
    assert_eq!(
        add(""),
        "Sequential::add: the layer name \"\" is empty (layers so far: [\"relu\"]); expected a new name"
    );
}

/// The message a call panics with.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("the call panics");
    *payload.downcast::<String>().unwrap()
}

/// A parameter listed twice would be updated twice per step: every constructor refuses it and
/// names it with both positions.
#[test]
fn optimizers_refuse_a_parameter_listed_twice() {
    let tape = Tape::<f64>::new();
    let (w, b) = (tape.param(1.0), tape.param(2.0));
    let expected = |optimizer: &str| {
        format!(
            "{optimizer}: parameter {w:?} is listed at positions 0 and 2; expected each parameter \
             once (a repeated one would be updated twice per step)"
        )
    };
    let listed = || vec![w, b, w];
    assert_eq!(panic_message(|| drop(Sgd::new(listed(), 0.1))), expected("Sgd"));
    assert_eq!(panic_message(|| drop(Momentum::<f64>::new(listed(), 0.1))), expected("Momentum"));
    assert_eq!(panic_message(|| drop(Momentum::<f64>::nesterov(listed(), 0.1))), expected("Momentum"));
    assert_eq!(panic_message(|| drop(AdaGrad::<f64>::new(listed(), 0.1))), expected("AdaGrad"));
    assert_eq!(panic_message(|| drop(RmsProp::<f64>::new(listed(), 0.1))), expected("RmsProp"));
    assert_eq!(panic_message(|| drop(Adam::<f64>::new(listed(), 0.1))), expected("Adam"));
    assert_eq!(panic_message(|| drop(Adam::<f64>::adamw(listed(), 0.1, 0.01))), expected("Adam"));
}

/// A layer used twice (tied weights) lists its parameters under two names; `nn::params` gives
/// each once, so an optimizer takes them and one step moves each parameter once by its
/// accumulated gradient.
#[test]
fn a_layer_used_twice_is_stepped_once() {
    let tape = Tape::<f64>::new();
    let layer = Linear::from_arrays(&tape, array![[2.0]], array![1.0]);
    let model = nn::Sequential::new().add("first", layer).add("again", layer);
    assert_eq!(model.parameters().len(), 4);
    assert_eq!(nn::params(&model), [layer.weight, layer.bias]);
    let mut sgd = Sgd::new(nn::params(&model), 0.1);
    // y = w·(w·x + b) + b at x = 3, w = 2, b = 1: ∂y/∂w = 2wx + b = 13, ∂y/∂b = w + 1 = 3
    let y = model.forward(tape.constant(array![[3.0]])).sum();
    assert_eq!(y.scalar(), 15.0);
    sgd.step(&tape, &y.backward());
    assert!((tape.get(layer.weight).scalar() - (2.0 - 0.1 * 13.0)).abs() < 1e-12);
    assert!((tape.get(layer.bias).scalar() - (1.0 - 0.1 * 3.0)).abs() < 1e-12);
}

/// Clipping scales the listed parameters' gradients, and only theirs, to exactly `max_norm`,
/// and returns their norm before clipping.
#[test]
fn clip_grad_norm_scales_only_the_listed_parameters() {
    let tape = Tape::<f64>::new();
    let (a, b, other, unused) =
        (tape.param(array![1.0, 1.0]), tape.param(1.0), tape.param(1.0), tape.param(1.0));
    let x = tape.var(1.0);
    // gradients: a → (3, 0), b → 4 (together of norm 5), other → 12, x → 20
    let y = (tape.get(a) * tape.constant(array![3.0, 0.0])).sum()
        + tape.get(b) * 4.0
        + tape.get(other) * 12.0
        + x * 20.0;
    let mut grads = y.backward();
    let options = ClipOptions::default();
    assert_eq!(clip_grad_norm(&[a, b, unused], &mut grads, 2.0, options), Ok(5.0));
    // scaled by 2/5
    let ga = grads[a].to_array();
    assert!((ga[0] - 1.2).abs() < 1e-15 && ga[1] == 0.0, "{ga}");
    assert!((grads[b].scalar().unwrap() - 1.6).abs() < 1e-15);
    assert_eq!((grads[other].scalar(), grads[x].scalar()), (Some(12.0), Some(20.0)));
    // now within the limit: unchanged
    let norm = clip_grad_norm(&[a, b], &mut grads, 3.0, options).unwrap();
    assert!((norm - 2.0).abs() < 1e-15, "{norm}");
    assert!((grads[b].scalar().unwrap() - 1.6).abs() < 1e-15);
    assert_eq!(clip_grad_norm(&[unused], &mut grads, 1.0, options), Ok(0.0));

    // finite gradients whose squares overflow f64: (3e200, 4e200) has norm 5e200
    let (p, q) = (tape.param(1.0), tape.param(1.0));
    let mut grads = (tape.get(p) * 3e200 + tape.get(q) * 4e200).backward();
    let norm = clip_grad_norm(&[p, q], &mut grads, 1.0, options).unwrap();
    assert!((norm / 5e200 - 1.0).abs() < 1e-15, "{norm}");
    assert!(
        (grads[p].scalar().unwrap() - 0.6).abs() < 1e-15 && (grads[q].scalar().unwrap() - 0.8).abs() < 1e-15
    );
}

/// A negative or NaN `max_norm`, or a parameter listed twice, is an error that changes
/// nothing.
#[test]
fn clip_grad_norm_refuses_a_bad_max_norm_or_a_repeated_parameter() {
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.param(1.0), tape.param(1.0));
    let mut grads = (tape.get(a) * 3.0 + tape.get(b) * 4.0).backward();
    for (max_norm, shown) in [(-1.0, "-1"), (f64::NAN, "NaN"), (f64::NEG_INFINITY, "-inf")] {
        let e = clip_grad_norm(&[a, b], &mut grads, max_norm, ClipOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("clip_grad_norm: max_norm = {shown}; expected a number ≥ 0 (or infinity: no clipping)")
        );
    }
    let e = clip_grad_norm(&[a, b, a], &mut grads, 1.0, ClipOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "clip_grad_norm: parameter {a:?} is listed at positions 0 and 2; expected each parameter once \
             (a repeated one would count twice in the norm and be scaled twice)"
        )
    );
    assert_eq!((grads[a].scalar(), grads[b].scalar()), (Some(3.0), Some(4.0)));
}

/// An infinite `max_norm` is accepted, as in PyTorch: nothing is scaled, whatever the norm, and
/// the norm is returned (still an error for a non-finite norm with `error_if_nonfinite`).
#[test]
fn clip_grad_norm_with_an_infinite_max_norm_only_measures() {
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.param(1.0), tape.param(1.0));
    let mut grads = (tape.get(a) * 3e150 + tape.get(b) * 4e150).backward();
    let norm = clip_grad_norm(&[a, b], &mut grads, f64::INFINITY, ClipOptions::default()).unwrap();
    assert!((norm / 5e150 - 1.0).abs() < 1e-15, "{norm}");
    assert_eq!((grads[a].scalar(), grads[b].scalar()), (Some(3e150), Some(4e150)));
    // an infinite norm: left as it is, not made NaN by ∞/∞
    let mut grads = (tape.get(a) * f64::INFINITY + tape.get(b) * 4.0).backward();
    let norm = clip_grad_norm(&[a, b], &mut grads, f64::INFINITY, ClipOptions::default()).unwrap();
    assert_eq!(norm, f64::INFINITY);
    assert_eq!((grads[a].scalar(), grads[b].scalar()), (Some(f64::INFINITY), Some(4.0)));
    let strict = ClipOptions { error_if_nonfinite: true };
    assert!(clip_grad_norm(&[a, b], &mut grads, f64::INFINITY, strict).is_err());
}

/// A NaN or infinite norm: an error changing nothing with `error_if_nonfinite`; without it,
/// PyTorch's scaling by `max_norm / norm` (NaN everywhere, or zero and NaN where infinite).
#[test]
fn clip_grad_norm_with_a_nonfinite_norm_follows_pytorch() {
    let tape = Tape::<f64>::new();
    let (a, b, other) = (tape.param(1.0), tape.param(1.0), tape.param(1.0));
    let strict = ClipOptions { error_if_nonfinite: true };
    for (bad, shown) in [(f64::NAN, "NaN"), (f64::INFINITY, "inf")] {
        let y = tape.get(a) * bad + tape.get(b) * 4.0 + tape.get(other) * 5.0;
        let mut grads = y.backward();
        let e = clip_grad_norm(&[a, b], &mut grads, 1.0, strict).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "clip_grad_norm: the total norm of the gradients of 2 parameters is {shown}; expected a \
                 finite norm (error_if_nonfinite is set)"
            )
        );
        assert_eq!(grads[b].scalar(), Some(4.0));

        let norm = clip_grad_norm(&[a, b], &mut grads, 1.0, ClipOptions::default()).unwrap();
        assert_eq!(norm.to_string(), shown);
        let (ga, gb) = (grads[a].scalar().unwrap(), grads[b].scalar().unwrap());
        if bad.is_nan() {
            assert!(ga.is_nan() && gb.is_nan(), "{ga} {gb}");
        } else {
            // the coefficient 1/∞ = 0: ∞·0 is NaN, 4·0 is 0
            assert!(ga.is_nan() && gb == 0.0, "{ga} {gb}");
        }
        assert_eq!(grads[other].scalar(), Some(5.0));
    }
}

/// A batch of one has zero variance, so training on it would give every output as the bias:
/// it is an error naming the layer and the shape, before the running statistics change. In
/// evaluation mode one sample is normalised with the running statistics.
#[test]
fn batch_norm_refuses_a_batch_of_one_while_training() {
    let tape = Tape::<f64>::new();
    let mut bn = BatchNorm1d::new(&tape, 3);
    tape.get(bn.bias).set_value(array![0.5, -0.5, 2.0]);
    let one = array![[1.0, 2.0, 3.0]];
    assert_eq!(
        panic_message(|| {
            bn.forward(tape.constant(one.clone()));
        }),
        "BatchNorm1d: got shapes [1, 3], expected more than 1 value per channel when training (one \
         value has zero variance, so every output would be the bias); evaluation mode takes any batch"
    );
    assert_eq!(tape.get(bn.running_mean).to_array(), array![0.0, 0.0, 0.0].into_dyn());
    assert_eq!(tape.get(bn.running_var).to_array(), array![1.0, 1.0, 1.0].into_dyn());

    bn.set_training(false);
    // (x − 0)/√(1 + 1e-5)·1 + bias
    let y = bn.forward(tape.constant(one)).to_array();
    let scale = 1.0 / (1.0f64 + 1e-5).sqrt();
    let expected = array![[0.5 + scale, -0.5 + 2.0 * scale, 2.0 + 3.0 * scale]].into_dyn();
    assert!((&y - &expected).iter().all(|d| d.abs() < 1e-15), "{y}");
}

/// One NaN pixel in a batch makes the loss NaN (relu, max and the fused loss keep it), so it is
/// seen before an optimizer step spreads it into the weights.
#[test]
fn a_nan_input_gives_a_nan_loss_not_a_finite_one() {
    let tape = Tape::<f32>::new();
    let model = Mlp::new(&tape, &[4, 8, 3], Activation::Relu, Init::He, &mut rng());
    let mut x = ndarray::Array2::<f32>::from_elem((2, 4), 0.5);
    x[[1, 2]] = f32::NAN;
    let logits = model.forward(tape.constant(x));
    assert!(logits.to_array().index_axis(ndarray::Axis(0), 1).iter().all(|v| v.is_nan()), "{}", logits);
    assert!(logits.to_array().index_axis(ndarray::Axis(0), 0).iter().all(|v| v.is_finite()));
    let loss = nn::softmax_cross_entropy(logits, &[0, 1]);
    assert!(loss.scalar().is_nan());
    assert_eq!(nn::predicted_classes(&logits.to_array())[1], 0);
}
