//! Panics from misuse point at the caller's line and say what was wrong.

use std::panic::{self, Location};
use std::sync::{Arc, Mutex};

use ndarray::Array2;
use tapegrad::Tape;

/// Runs `f`, which must panic, and returns the message and the line it was reported at. The
/// panic hook is global to the process, so tests take turns installing theirs.
fn panic_site(f: impl FnOnce()) -> (String, u32) {
    static HOOK: Mutex<()> = Mutex::new(());
    let _turn = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let line = Arc::new(Mutex::new(0));
    let seen = line.clone();
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        *seen.lock().unwrap() = info.location().map_or(0, Location::line);
    }));
    let payload = panic::catch_unwind(panic::AssertUnwindSafe(f)).expect_err("the call panics");
    panic::set_hook(previous);
    let message = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    let line = *line.lock().unwrap();
    (message, line)
}

#[test]
fn misuse_is_reported_at_the_callers_line() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Array2::<f64>::zeros((2, 3)));

    let (message, line) = panic_site(|| {
        a.matmul(a);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, "matmul: got shapes [2, 3] and [2, 3], expected [m, k]·[k, n] with equal k (3 ≠ 2)");

    let b = tape.var(vec![1.0, 2.0]);
    let (message, line) = panic_site(|| {
        let _ = a + b;
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "add: got shapes [2, 3] and [2], expected shapes that broadcast (each axis, aligned from the \
         right, equal or 1)"
    );

    let (message, line) = panic_site(|| {
        a.backward();
    });
    assert_eq!(line, line!() - 2);
    assert!(message.starts_with("backward: the output has shape [2, 3], expected a scalar"), "{message}");

    let (message, line) = panic_site(|| {
        a.reshape(&[4]);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "reshape: got shapes [2, 3] and [4], expected a shape with the same number of elements (6)"
    );

    let (message, line) = panic_site(|| {
        a.softmax(2);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, "softmax: axis 2 is out of range for a value of rank 2 (axes 0..2)");

    let (message, _) = panic_site(|| {
        a.slice(tapegrad::s![..5, ..]);
    });
    assert!(
        message.starts_with(
            "slice: Slice { start: 0, end: Some(5), step: 1 } is out of range for axis 0 of length 2"
        ),
        "{message}"
    );

    let (message, _) = panic_site(|| {
        a.rows(&[0, 7]);
    });
    assert_eq!(message, "rows: index 7 is out of range for 2 rows (shape [2, 3])");
}

#[test]
fn layer_and_vector_errors_name_the_callers_shapes() {
    let tape = Tape::<f64>::new();
    let (u, v) = (tape.var(vec![1.0, 2.0, 3.0]), tape.var(vec![1.0, 2.0]));
    let e = u.try_matmul(v).unwrap_err().to_string();
    assert_eq!(
        e,
        "matmul: got shapes [3] and [2], expected a shared inner dimension k ([.., k]·[k, ..]), got 3 ≠ 2"
    );
    let bn = tapegrad::nn::BatchNorm1d::new(&tape, 3);
    let (message, _) = panic_site(|| {
        tapegrad::nn::Module::forward(&bn, tape.var(Array2::<f64>::zeros((4, 5))));
    });
    assert_eq!(message, "BatchNorm1d: got shapes [4, 5], expected (batch, 3)");
}

/// A model used on another tape than the one it was built on, and an initialiser with an
/// impossible spread, are reported at the caller's line, through every layer of the library
/// between (containers, builders, trait objects), naming the layer or initialiser.
#[test]
fn model_and_initialiser_misuse_is_reported_at_the_callers_line() {
    use rand::SeedableRng;
    use tapegrad::nn::{Activation, BatchNorm1d, Init, Linear, Mlp, Module, Sequential};

    let (tape, other) = (Tape::<f64>::new(), Tape::<f64>::new());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mlp = Mlp::new(&tape, &[3, 4, 2], Activation::Tanh, Init::Xavier, &mut rng);
    let x = other.constant(Array2::<f64>::zeros((2, 3)));
    let foreign = |layer: &str| {
        format!(
            "{layer}: the input (shape [2, 3]) is on another tape than the layer's parameters; expected \
             an input recorded on the tape the layer was built on"
        )
    };

    let (message, line) = panic_site(|| {
        mlp.forward(x);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, foreign("Linear"));

    let sequential = Sequential::new().add("act", Activation::Relu).add("fc", mlp.layers()[0]);
    let (message, line) = panic_site(|| {
        sequential.forward(x);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, foreign("Linear"));

    let boxed: Box<dyn Module<f64>> = Box::new(BatchNorm1d::new(&tape, 3));
    let (message, line) = panic_site(|| {
        boxed.forward(x);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, foreign("BatchNorm1d"));

    let one = tape.constant(Array2::<f64>::zeros((1, 3)));
    let (message, line) = panic_site(|| {
        Sequential::new().add("bn", BatchNorm1d::new(&tape, 3)).forward(one);
    });
    assert_eq!(line, line!() - 2);
    assert!(message.starts_with("BatchNorm1d: got shapes [1, 3], expected more than 1 value per channel"));

    let (message, line) = panic_site(|| {
        Mlp::new(&tape, &[3, 4, 2], Activation::Tanh, Init::Normal(f64::NAN), &mut rng);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "Init::Normal: std = NaN for a weight of shape [3, 4]; expected a finite standard deviation ≥ 0"
    );

    let (message, line) = panic_site(|| {
        Linear::new(&tape, 2, 5, Init::Normal(-0.5), &mut rng);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "Init::Normal: std = -0.5 for a weight of shape [2, 5]; expected a finite standard deviation ≥ 0"
    );

    let (message, line) = panic_site(|| {
        Init::Uniform(f64::INFINITY).sample::<f64>(&[4], &mut rng);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "Init::Uniform: a = inf for a weight of shape [4]; expected a finite bound ≥ 0 (draws are in [−a, a])"
    );

    let (message, line) = panic_site(|| {
        Mlp::<f64>::new(&tape, &[3], Activation::Tanh, Init::Xavier, &mut rng);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, "Mlp::new: got sizes [3], expected at least an input and an output size");
}

/// Builders refuse what they cannot build at the caller's line: a taken layer name, a
/// parameter given twice to an optimizer, a dropout probability of 1.
#[test]
fn builder_misuse_is_reported_at_the_callers_line() {
    use tapegrad::nn::{Activation, Dropout, Sequential};
    use tapegrad::optim::Momentum;

    let (message, line) = panic_site(|| {
        Dropout::new(1.0, 0);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, "Dropout::new: p = 1, expected 0 ≤ p < 1");

    let (_, line) = panic_site(|| {
        Sequential::<f64>::new().add("act", Activation::Relu).add("act", Activation::Tanh);
    });
    assert_eq!(line, line!() - 2);

    let tape = Tape::<f64>::new();
    let w = tape.param(1.0);
    let (message, line) = panic_site(|| {
        Momentum::<f64>::nesterov(vec![w, w], 0.1);
    });
    assert_eq!(line, line!() - 2);
    assert!(message.starts_with("Momentum: parameter Param"), "{message}");
}

/// Misuse is refused where it happens, not later inside another function: a gradient of the
/// wrong shape at `Gradients::set_param` (not in the optimizer's step), a sample index out of
/// range at `LabelledDataset::select`, a rank out of range at `parallel::shard`.
#[test]
fn misuse_is_refused_where_it_happens() {
    use tapegrad::Value;
    use tapegrad::data::LabelledDataset;

    let tape = Tape::<f64>::new();
    let w = tape.param(vec![1.0, 2.0]);
    let mut grads = (tape.get(w) * 3.0).sum().backward();
    let (message, line) = panic_site(|| {
        grads.set_param(&tape, w, Value::from(vec![1.0, 2.0, 3.0]));
    });
    assert_eq!(line, line!() - 2);
    let (head, tail) = message.split_once("Param#").expect("names the parameter");
    assert_eq!(head, "Gradients::set_param: got shapes [2] and [3], expected a gradient of ");
    assert!(tail.ends_with("'s shape [2]"), "{message}");
    // the gradient is unchanged, and the right shape is accepted
    assert_eq!(grads[w].to_array().into_raw_vec_and_offset().0, [3.0, 3.0]);
    grads.set_param(&tape, w, Value::from(vec![-1.0, 0.5]));
    assert_eq!(grads[w].to_array().into_raw_vec_and_offset().0, [-1.0, 0.5]);
    let other = Tape::<f64>::new();
    let (message, _) = panic_site(|| {
        grads.set_param(&other, w, Value::from(vec![0.0, 0.0]));
    });
    assert!(message.starts_with("Gradients::set_param: Param#"), "{message}");
    assert!(message.contains("belongs to a different Tape"), "{message}");

    let data = LabelledDataset::parse("3,1,a,b\n10,0\n20,1\n30,0\n").unwrap();
    let (message, line) = panic_site(|| {
        data.select(&[2, 7]);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(
        message,
        "invalid argument: LabelledDataset::select: index 7 (at position 1) is out of range for 3 samples; \
         expected an index in 0..3"
    );

    let (message, line) = panic_site(|| {
        tapegrad::parallel::shard(10, 3, 2);
    });
    assert_eq!(line, line!() - 2);
    assert_eq!(message, "shard: rank 3 of 2 workers; expected a rank in 0..2");
    let (message, _) = panic_site(|| {
        tapegrad::parallel::shard(10, 0, 0);
    });
    assert_eq!(message, "shard: rank 0 of 0 workers; expected at least 1 worker");
}
