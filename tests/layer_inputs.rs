//! Layers refuse inputs and states that do not fit, as PyTorch does, with a message naming the
//! layer, what it expected and what it got, instead of accepting them silently (a state
//! broadcast over the batch, a layer dropped, a cell state ignored) or failing inside an op.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use tapegrad::nn::{Conv2d, Embedding, Gru, Init, Linear, Lstm, LstmCell, Module, Rnn, State};
use tapegrad::{ConvOptions, Tape};

/// The message `f` panics with; fails when it returns.
#[track_caller]
fn panic_message<R>(f: impl FnOnce() -> R) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).err().expect("a panic");
    payload.downcast_ref::<String>().cloned().unwrap_or_default()
}

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(0)
}

fn zeros(shape: &[usize]) -> ArrayD<f64> {
    ArrayD::zeros(IxDyn(shape))
}

#[test]
fn a_state_of_another_batch_size_is_not_broadcast() {
    let tape = Tape::<f64>::new();
    let lstm = Lstm::new(&tape, 3, 4, 1, false, &mut rng());
    let x = tape.constant(zeros(&[3, 5, 3]));
    let h = tape.constant(zeros(&[1, 1, 4]));
    let message = panic_message(|| lstm.run(x, Some(State { h, c: Some(h) })));
    assert_eq!(
        message,
        "Lstm: got shapes [1, 1, 4] and [1, 1, 4], expected an initial state (h, c), each of shape \
         [layers·directions, N, H] = [1, 3, 4]"
    );
}

#[test]
fn a_state_with_more_layers_than_the_layer_is_refused() {
    let tape = Tape::<f64>::new();
    let lstm = Lstm::new(&tape, 3, 4, 2, false, &mut rng());
    let x = tape.constant(zeros(&[2, 5, 3]));
    let h = tape.constant(zeros(&[3, 2, 4]));
    let message = panic_message(|| lstm.run(x, Some(State { h, c: Some(h) })));
    assert!(message.starts_with("Lstm: got shapes [3, 2, 4] and [3, 2, 4]"), "{message}");
    assert!(message.ends_with("[layers·directions, N, H] = [2, 2, 4]"), "{message}");
    // a bidirectional layer takes two rows per layer
    let both = Lstm::new(&tape, 3, 4, 1, true, &mut rng());
    let h = tape.constant(zeros(&[1, 2, 4]));
    let message = panic_message(|| both.run(x, Some(State { h, c: Some(h) })));
    assert!(message.ends_with("= [2, 2, 4]"), "{message}");
}

#[test]
fn a_cell_state_is_required_by_an_lstm_and_refused_by_others() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(zeros(&[2, 5, 3]));
    let h = tape.constant(zeros(&[1, 2, 4]));
    let gru = Gru::new(&tape, 3, 4, 1, false, &mut rng());
    let message = panic_message(|| gru.run(x, Some(State { h, c: Some(h) })));
    assert_eq!(
        message,
        "Gru: got shapes [1, 2, 4] and [1, 2, 4], expected an initial state h of shape [layers·directions, N, \
         H] = [1, 2, 4] and no c; only an LSTM's state has c"
    );
    let rnn = Rnn::new(&tape, 3, 4, 1, false, &mut rng());
    assert!(panic_message(|| rnn.run(x, Some(State { h, c: Some(h) }))).starts_with("Rnn: "));
    let lstm = Lstm::new(&tape, 3, 4, 1, false, &mut rng());
    let message = panic_message(|| lstm.run(x, Some(State { h, c: None })));
    assert!(message.starts_with("Lstm: got shapes [1, 2, 4], expected an initial state (h, c)"), "{message}");
    // a state that fits runs, and matches the state it returns
    let (_, last) = lstm.run(x, Some(State { h, c: Some(h) }));
    assert_eq!(last.c.expect("an LSTM's state").shape().as_slice(), &[1, 2, 4]);
}

#[test]
fn wrong_widths_name_the_layer_not_an_op_inside_it() {
    let tape = Tape::<f64>::new();
    let lstm = Lstm::new(&tape, 3, 4, 1, false, &mut rng());
    let message = panic_message(|| lstm.run(tape.constant(zeros(&[2, 5, 7])), None));
    assert_eq!(message, "Lstm: got shapes [2, 5, 7], expected a batch-first sequence [N, T, D] with D = 3");
    let h = tape.constant(zeros(&[1, 2, 5]));
    let message = panic_message(|| lstm.run(tape.constant(zeros(&[2, 5, 3])), Some(State { h, c: Some(h) })));
    assert!(message.starts_with("Lstm: got shapes [1, 2, 5] and [1, 2, 5]"), "{message}");
    let cell = LstmCell::new(&tape, 3, 4, &mut rng());
    let message = panic_message(|| cell.step(tape.constant(zeros(&[2, 7])), None));
    assert_eq!(message, "LstmCell: got shapes [2, 7], expected an input [N, D] with D = 3");

    let linear = Linear::new(&tape, 3, 2, Init::Xavier, &mut rng());
    let message = panic_message(|| linear.forward(tape.constant(zeros(&[4, 5]))));
    assert_eq!(message, "Linear: got shapes [4, 5], expected an input [..., inputs] with inputs = 3");
    let conv = Conv2d::new(&tape, 3, 8, (3, 3), ConvOptions::default(), Init::He, &mut rng());
    let message = panic_message(|| conv.forward(tape.constant(zeros(&[1, 4, 8, 8]))));
    assert_eq!(message, "Conv2d: got shapes [1, 4, 8, 8], expected an input [N, C, H, W] with C = 3");
    let table = Embedding::new(&tape, 10, 4, &mut rng());
    let message = panic_message(|| table.forward(tape.constant(ArrayD::from_elem(IxDyn(&[2]), 10.0))));
    assert!(message.starts_with("Embedding: id 10 is out of range for a table of 10 rows"), "{message}");
}

#[test]
fn a_recurrent_layer_of_no_layers_or_an_empty_sequence_is_refused() {
    let tape = Tape::<f64>::new();
    let message = panic_message(|| Lstm::new(&tape, 3, 4, 0, false, &mut rng()));
    assert_eq!(message, "Lstm: 0 layers; expected at least 1");
    let gru = Gru::new(&tape, 3, 4, 1, false, &mut rng());
    let message = panic_message(|| gru.run(tape.constant(zeros(&[2, 0, 3])), None));
    assert_eq!(
        message,
        "Gru: a sequence of length T = 0 (input shape [2, 0, 3]); expected at least one step"
    );
}

/// A hidden size of 0 is a valid (empty) layer in PyTorch: outputs `[N, T, 0]` and zero
/// gradients for the input.
#[test]
fn a_hidden_size_of_zero_gives_empty_outputs_and_zero_gradients() {
    let tape = Tape::<f64>::new();
    let lstm = Lstm::new(&tape, 3, 0, 2, true, &mut rng());
    let x = tape.var(ArrayD::from_elem(IxDyn(&[2, 5, 3]), 0.5));
    let (y, state) = lstm.run(x, None);
    assert_eq!(y.shape().as_slice(), &[2, 5, 0]);
    assert_eq!(state.h.shape().as_slice(), &[4, 2, 0]);
    let grads = (y.sum() + state.c.expect("an LSTM's state").sum()).backward();
    assert_eq!(grads[x].to_array(), zeros(&[2, 5, 3]));
    for (name, p) in lstm.parameters() {
        assert_eq!(grads[p].shape(), tape.get(p).shape().as_slice(), "{name}");
    }
    // an empty batch runs too
    let (y, _) = lstm.run(tape.constant(zeros(&[0, 5, 3])), None);
    assert_eq!(y.shape().as_slice(), &[0, 5, 0]);
}
