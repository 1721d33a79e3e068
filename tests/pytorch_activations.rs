//! `erf`, `gelu`, `gelu_tanh` and `silu` against PyTorch's values and first, second and third
//! derivatives in float64 (`tests/fixtures/activations.safetensors`, made by
//! `benches/pytorch/make_activation_fixture.py`): every derivative order tapegrad takes goes
//! through the ops' own backward rules, recorded with `create_graph`.

use ndarray::Array1;
use safetensors::SafeTensors;
use tapegrad::{GradOptions, Tape, Var};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/activations.safetensors");

/// The f64 vector stored under `name`.
fn vector(tensors: &SafeTensors, name: &str) -> Array1<f64> {
    let view = tensors.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
}

/// The largest difference relative to max(|expected|, 1), with the point where it occurs.
fn worst(got: &Array1<f64>, expected: &Array1<f64>, x: &Array1<f64>) -> (f64, f64) {
    assert_eq!(got.len(), expected.len());
    got.iter()
        .zip(expected)
        .zip(x)
        .map(|((g, e), x)| ((g - e).abs() / e.abs().max(1.0), *x))
        .fold((0.0, f64::NAN), |a, b| if b.0 > a.0 { b } else { a })
}

fn check(name: &str, op: for<'t> fn(Var<'t, f64>) -> Var<'t, f64>) {
    let bytes = std::fs::read(FIXTURE).expect("the fixture file");
    let tensors = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let x = vector(&tensors, "x");
    let tape = Tape::<f64>::new();
    let xv = tape.var(x.clone());
    let options = GradOptions { create_graph: true };
    let y = op(xv);
    let [d1] = tape.grad(y.sum(), [xv], options);
    let [d2] = tape.grad(d1.sum(), [xv], options);
    let [d3] = tape.grad(d2.sum(), [xv], options);
    for (key, got) in [("y", y), ("d1", d1), ("d2", d2), ("d3", d3)] {
        let got = got.to_array().into_dimensionality().unwrap();
        let (error, at) = worst(&got, &vector(&tensors, &format!("{name}.{key}")), &x);
        assert!(error <= 1e-13, "{name}.{key}: off by {error:e} (relative to max(|PyTorch|, 1)) at x = {at}");
    }
}

#[test]
fn erf_and_its_derivatives_match_pytorch() {
    check("erf", |x| x.erf());
}

#[test]
fn gelu_and_its_derivatives_match_pytorch() {
    check("gelu", |x| x.gelu());
}

#[test]
fn gelu_tanh_and_its_derivatives_match_pytorch() {
    check("gelu_tanh", |x| x.gelu_tanh());
}

#[test]
fn silu_and_its_derivatives_match_pytorch() {
    check("silu", |x| x.silu());
}
