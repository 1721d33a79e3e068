//! The parts of a training loop that are easy to get wrong: parameter groups, schedules that
//! drive an optimizer, train/eval mode reaching every layer, the model summary, and gradient
//! accumulation over micro-batches.

use ndarray::{Array2, ArrayD, IxDyn};
use rand::{RngExt, SeedableRng};
use tapegrad::nn::{
    self, Activation, BatchNorm1d, Dropout, Embedding, Init, Linear, Mlp, Module, Sequential,
};
use tapegrad::optim::{Adam, CosineLr, Groups, Optimizer, Schedule, Sgd};
use tapegrad::state::StateError;
use tapegrad::{Param, Tape};

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Weight decay on the weights only: after one step with a zero loss, each weight has shrunk
/// by `1 − lr·λ` and each bias is untouched; a schedule scales both groups' rates together.
#[test]
fn parameter_groups_decay_the_weights_but_not_the_biases() {
    let tape = Tape::<f64>::new();
    let model = Mlp::new(&tape, &[3, 4, 2], Activation::Relu, Init::He, &mut rng(0));
    let (decay, no_decay) = nn::decay_split(&tape, &model);
    let before: Vec<ArrayD<f64>> = nn::params(&model).iter().map(|&p| tape.get(p).to_array()).collect();
    let mut opt = Groups::new(vec![
        Box::new(Adam::adamw(decay.clone(), 0.1, 0.5)),
        Box::new(Adam::adamw(no_decay.clone(), 0.01, 0.0)),
    ]);
    CosineLr { initial: 0.2, min: 0.0, epochs: 10 }.apply(&mut opt, 0);
    assert_eq!(opt.groups()[1].learning_rate(), 0.02, "the ratio stays");
    let loss = model.forward(tape.constant(Array2::<f64>::ones((1, 3)))).sum() * 0.0;
    opt.step(&tape, &loss.backward());
    for (p, old) in nn::params(&model).iter().zip(&before) {
        let now = tape.get(*p).to_array();
        if decay.contains(p) {
            assert_eq!(now, old.mapv(|w| w - 0.2 * 0.5 * w), "decayed with the scheduled rate");
        } else {
            assert_eq!(&now, old, "biases are not decayed");
        }
    }
    // the groups' state comes back, and a wrong one is refused whole
    let state = opt.state_dict();
    assert!(state.names().contains(&"group.1.state.0.exp_avg"), "{:?}", state.names());
    let mut fresh = Groups::new(vec![
        Box::new(Adam::adamw(decay.clone(), 1.0, 0.5)),
        Box::new(Adam::adamw(no_decay.clone(), 1.0, 0.0)),
    ]);
    fresh.load_state_dict(&tape, &state).unwrap();
    assert_eq!(fresh.state_dict(), state);
    let mut swapped = Groups::new(vec![
        Box::new(Adam::adamw(no_decay, 1.0, 0.0)) as Box<dyn Optimizer<f64>>,
        Box::new(Adam::adamw(decay, 1.0, 0.5)),
    ]);
    let untouched = swapped.state_dict();
    let Err(StateError::Mismatch { mismatches, .. }) = swapped.load_state_dict(&tape, &state) else {
        panic!("groups in another order have other shapes")
    };
    assert!(mismatches.iter().any(|m| m.name() == "group.0.state.0.exp_avg"), "{mismatches:?}");
    assert_eq!(swapped.state_dict(), untouched, "nothing changed");
}

#[test]
#[should_panic(expected = "Groups: parameter")]
fn a_parameter_in_two_groups_is_refused() {
    let tape = Tape::<f32>::new();
    let w = tape.param(1.0f32);
    let _ = Groups::<f32>::new(vec![Box::new(Sgd::new(vec![w], 0.1)), Box::new(Sgd::new(vec![w], 0.1))]);
}

/// `set_training(false)` on the outer container reaches the dropout and the batch norm inside
/// a nested one: evaluation is then deterministic and uses the running statistics.
#[test]
fn evaluation_mode_set_once_reaches_every_layer() {
    let tape = Tape::<f64>::new();
    let inner = Sequential::new()
        .add("fc", Linear::new(&tape, 4, 4, Init::He, &mut rng(1)))
        .add("bn", BatchNorm1d::new(&tape, 4))
        .add("drop", Dropout::new(0.5, 3));
    let mut model =
        Sequential::new().add("block", inner).add("head", Linear::new(&tape, 4, 2, Init::He, &mut rng(2)));
    let x = Array2::from_shape_fn((8, 4), |(i, j)| (i * 4 + j) as f64 / 10.0);
    let run = |model: &Sequential<f64>| model.forward(tape.constant(x.clone())).to_array();
    assert_ne!(run(&model), run(&model), "training: fresh dropout masks each call");
    model.set_training(false);
    let (a, b) = (run(&model), run(&model));
    assert_eq!(a, b, "evaluation: no dropout");
    // batch statistics would make row 0 depend on the other rows; running statistics do not
    let single = model.forward(tape.constant(x.slice(ndarray::s![0..1, ..]).to_owned())).to_array();
    for (u, v) in single.iter().zip(a.index_axis(ndarray::Axis(0), 0)) {
        assert!((u - v).abs() < 1e-12, "{u} against {v}");
    }
}

#[test]
fn the_summary_lists_every_parameter_and_buffer_with_totals() {
    let tape = Tape::<f32>::new();
    let model = Sequential::new()
        .add("embed", Embedding::new(&tape, 1_000, 16, &mut rng(3)))
        .add("fc", Linear::new(&tape, 16, 8, Init::He, &mut rng(4)))
        .add("bn", BatchNorm1d::new(&tape, 8));
    let summary = nn::summary(&tape, &model);
    let expected = "\
name             kind       shape       values
embed.weight     parameter  [1000, 16]  16,000
fc.weight        parameter  [16, 8]        128
fc.bias          parameter  [8]              8
bn.weight        parameter  [8]              8
bn.bias          parameter  [8]              8
bn.running_mean  buffer     [8]              8
bn.running_var   buffer     [8]              8
16,152 parameters, 16 buffer values
";
    assert_eq!(summary.to_string(), expected);
    assert_eq!(summary.parameters, 16_000 + 128 + 8 + 16);
}

/// Three micro-batches of 5, 5 and 2 samples, each loss scaled by its share, accumulate to the
/// gradient of the whole batch of 12: for dense weights and for a row-sparse embedding table.
#[test]
fn accumulated_micro_batches_give_the_whole_batch_gradient() {
    let tape = Tape::<f64>::new();
    let table = Embedding::new(&tape, 50, 3, &mut rng(5));
    let fc = Linear::new(&tape, 3, 2, Init::He, &mut rng(6));
    let mut r = rng(7);
    let ids: Vec<usize> = (0..12).map(|_| r.random_range(0..50)).collect();
    let targets: Vec<usize> = (0..12).map(|_| r.random_range(0..2)).collect();
    let loss_on = |rows: std::ops::Range<usize>| {
        let looked_up = table.lookup(
            &tape,
            &ArrayD::from_shape_vec(IxDyn(&[rows.len()]), ids[rows.clone()].to_vec()).unwrap(),
        );
        nn::softmax_cross_entropy(fc.forward(looked_up), &targets[rows])
    };
    let params: Vec<Param> = [nn::params(&table), nn::params(&fc)].concat();
    let whole = loss_on(0..12).backward();
    let expected: Vec<ArrayD<f64>> = params.iter().map(|&p| whole[p].to_array()).collect();
    tape.reset();

    let mut sum: Option<tapegrad::Gradients<f64>> = None;
    for rows in [0..5, 5..10, 10..12] {
        let share = rows.len() as f64 / 12.0;
        let grads = (loss_on(rows) * share).backward();
        match &mut sum {
            None => sum = Some(grads),
            Some(sum) => sum.accumulate(grads),
        }
        tape.reset();
    }
    let sum = sum.unwrap();
    assert!(sum.sparse_param(params[0]).is_some(), "the table's gradient stays row-sparse");
    assert_eq!(sum.sparse_param(params[0]).unwrap().rows().len(), 12);
    for (&p, want) in params.iter().zip(&expected) {
        let got = sum[p].to_array();
        let error = (&got - want).mapv(f64::abs).fold(0.0f64, |m, &e| m.max(e));
        assert!(error < 1e-14, "{error:e}");
    }
}
