//! The forward pass of a fixed three-layer network: the textbook's `init_network` and
//! `forward`, with the weights written out by hand and the layers taken from `tapegrad::nn`.
//!
//! Each layer computes `a = x·W + b` (a [`Linear`] layer) and then `z = h(a)`, where `h` is the
//! sigmoid in the two hidden layers and the identity at the output. The example prints `a` and
//! `z` of every layer and ends with `y = [0.31682708, 0.69627909]`.
//!
//! Run with `cargo run --release --example 03_three_layer_forward`.

use std::fmt;

use ndarray::array;
use tapegrad::Tape;
use tapegrad::nn::{Activation, Linear, Module};

/// The values of one forward pass, layer by layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// The input `x`.
    pub input: Vec<f64>,
    /// Each layer's weighted sum `a = x·W + b`.
    pub sums: Vec<Vec<f64>>,
    /// Each layer's output `z = h(a)`; the last one is the network's output `y`.
    pub outputs: Vec<Vec<f64>>,
}

impl Forward {
    /// The network's output `y`.
    pub fn y(&self) -> &[f64] {
        self.outputs.last().expect("at least one layer")
    }
}

/// The textbook's network: 2 inputs, hidden layers of 3 and 2 sigmoid units, 2 identity outputs.
fn init_network(tape: &Tape<f64>) -> Vec<(Linear<f64>, Activation)> {
    let w1 = array![[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]];
    let b1 = array![0.1, 0.2, 0.3];
    let w2 = array![[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]];
    let b2 = array![0.1, 0.2];
    let w3 = array![[0.1, 0.3], [0.2, 0.4]];
    let b3 = array![0.1, 0.2];
    vec![
        (Linear::from_arrays(tape, w1, b1), Activation::Sigmoid),
        (Linear::from_arrays(tape, w2, b2), Activation::Sigmoid),
        (Linear::from_arrays(tape, w3, b3), Activation::Identity),
    ]
}

/// Runs the network on `x = [1.0, 0.5]`.
pub fn report() -> Forward {
    let tape = Tape::<f64>::new();
    let network = init_network(&tape);
    let input = array![1.0, 0.5];
    let mut forward = Forward { input: input.to_vec(), sums: Vec::new(), outputs: Vec::new() };
    let mut x = tape.constant(input);
    for (linear, activation) in &network {
        let a = linear.forward(x);
        x = activation.apply(a);
        forward.sums.push(a.to_array().into_iter().collect());
        forward.outputs.push(x.to_array().into_iter().collect());
    }
    forward
}

/// `[0.31682708, 0.69627909]`: eight decimals, as the textbook prints.
fn show(v: &[f64]) -> String {
    let v: Vec<String> = v.iter().map(|x| format!("{x:.8}")).collect();
    format!("[{}]", v.join(", "))
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "x  = {}", show(&self.input))?;
        let last = self.sums.len() - 1;
        for (i, (a, z)) in self.sums.iter().zip(&self.outputs).enumerate() {
            writeln!(f, "a{} = {}", i + 1, show(a))?;
            let name = if i == last { "y ".to_string() } else { format!("z{}", i + 1) };
            writeln!(f, "{name} = {}", show(z))?;
        }
        Ok(())
    }
}

#[allow(dead_code)]
fn main() {
    print!("{}", report());
}
