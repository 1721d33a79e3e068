//! Recurrent layers against PyTorch: with PyTorch's weights (`tests/fixtures/rnn/`, made by
//! `benches/pytorch/make_rnn_fixture.py` in float64), `Rnn`, `Lstm` and `Gru` (one layer, and
//! two bidirectional layers) and their cells must reproduce PyTorch's outputs, final states and
//! the gradients of a weighted sum of them with respect to every parameter, the input and the
//! initial state.

use ndarray::{ArrayD, IxDyn};
use safetensors::SafeTensors;
use tapegrad::nn::{Cell, GRU, LSTM, Module, RNN, Recurrent, State};
use tapegrad::{Param, Tape, Var};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rnn");

/// The float64 tensors of one fixture file, by name.
struct Fixture(Vec<(String, ArrayD<f64>)>);

impl Fixture {
    fn read(file: &str) -> Self {
        let bytes = std::fs::read(format!("{FIXTURES}/{file}.safetensors")).expect("the committed fixture");
        let tensors = SafeTensors::deserialize(&bytes).expect("a safetensors file");
        let named = tensors
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let values =
                    view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
                (name, ArrayD::from_shape_vec(IxDyn(view.shape()), values).unwrap())
            })
            .collect();
        Fixture(named)
    }

    fn get(&self, name: &str) -> &ArrayD<f64> {
        &self.0.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in the fixture")).1
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Sets every parameter to the fixture's `param.<name>`.
    fn load(&self, tape: &Tape<f64>, parameters: &[(String, Param)]) {
        for (name, p) in parameters {
            tape.get(*p).set_value(self.get(&format!("param.{name}")).clone());
        }
    }
}

/// Asserts `ours` is PyTorch's `name` to 1e-10 relative to its largest entry.
fn close(fixture: &Fixture, name: &str, ours: &ArrayD<f64>) {
    let theirs = fixture.get(name);
    assert_eq!(ours.shape(), theirs.shape(), "{name}");
    let scale = theirs.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    let error = ours.iter().zip(theirs).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(error <= 1e-10 * scale, "{name} differs by {error} (largest {scale})");
}

/// `Σ y·W` for the fixture's weights `W` named `weight`.
fn weighted<'t>(fixture: &Fixture, tape: &'t Tape<f64>, y: Var<'t, f64>, weight: &str) -> Var<'t, f64> {
    (y * tape.constant(fixture.get(weight).clone())).sum()
}

/// Backward from `loss`: the gradient of every parameter, the input and the initial state
/// against the fixture's `grad.*`.
fn check_gradients(
    fixture: &Fixture,
    loss: Var<'_, f64>,
    parameters: &[(String, Param)],
    x: Var<'_, f64>,
    initial: State<'_, f64>,
) {
    let grads = loss.backward();
    for (name, p) in parameters {
        close(fixture, &format!("grad.{name}"), &grads[*p].to_array());
    }
    close(fixture, "grad.input", &grads[x].to_array());
    close(fixture, "grad.h0", &grads[initial.h].to_array());
    if let Some(c0) = initial.c {
        close(fixture, "grad.c0", &grads[c0].to_array());
    }
}

fn check_layer<const KIND: u8>(file: &str, layers: usize, bidirectional: bool) {
    let fixture = Fixture::read(file);
    let tape = Tape::<f64>::new();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let layer = Recurrent::<f64, KIND>::new(&tape, 4, 5, layers, bidirectional, &mut rng);
    let parameters = layer.parameters();
    fixture.load(&tape, &parameters);
    let x = tape.var(fixture.get("input").clone());
    let h0 = tape.var(fixture.get("h0").clone());
    let c0 = fixture.has("c0").then(|| tape.var(fixture.get("c0").clone()));
    let (y, state) = layer.run(x, Some(State { h: h0, c: c0 }));
    close(&fixture, "output", &y.to_array());
    close(&fixture, "h_n", &state.h.to_array());
    let mut loss = weighted(&fixture, &tape, y, "R") + weighted(&fixture, &tape, state.h, "S");
    if let Some(c) = state.c {
        close(&fixture, "c_n", &c.to_array());
        loss += weighted(&fixture, &tape, c, "Q");
    }
    check_gradients(&fixture, loss, &parameters, x, State { h: h0, c: c0 });
}

fn check_cell<const KIND: u8>(file: &str) {
    let fixture = Fixture::read(file);
    let tape = Tape::<f64>::new();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let cell = Cell::<f64, KIND>::new(&tape, 4, 5, &mut rng);
    let parameters = cell.parameters();
    fixture.load(&tape, &parameters);
    let x = tape.var(fixture.get("input").clone());
    let h0 = tape.var(fixture.get("h0").clone());
    let c0 = fixture.has("c0").then(|| tape.var(fixture.get("c0").clone()));
    let next = cell.step(x, Some(State { h: h0, c: c0 }));
    close(&fixture, "h1", &next.h.to_array());
    let mut loss = weighted(&fixture, &tape, next.h, "R");
    if let Some(c) = next.c {
        close(&fixture, "c1", &c.to_array());
        loss += weighted(&fixture, &tape, c, "Q");
    }
    check_gradients(&fixture, loss, &parameters, x, State { h: h0, c: c0 });
}

#[test]
fn rnn_matches_pytorch() {
    check_cell::<RNN>("rnn_cell");
    check_layer::<RNN>("rnn_l1", 1, false);
    check_layer::<RNN>("rnn_l2_bi", 2, true);
}

#[test]
fn lstm_matches_pytorch() {
    check_cell::<LSTM>("lstm_cell");
    check_layer::<LSTM>("lstm_l1", 1, false);
    check_layer::<LSTM>("lstm_l2_bi", 2, true);
}

#[test]
fn gru_matches_pytorch() {
    check_cell::<GRU>("gru_cell");
    check_layer::<GRU>("gru_l1", 1, false);
    check_layer::<GRU>("gru_l2_bi", 2, true);
}
