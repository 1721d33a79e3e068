//! Perceptrons: the AND, NAND and OR gates with the textbook's hand-picked weights, XOR built
//! from two layers of them, and then a small network that learns XOR by backpropagation.
//!
//! A perceptron outputs 1 when `w·x + b > 0` and 0 otherwise: a [`Linear`] layer followed by
//! [`Activation::Step`]. No single perceptron computes XOR (no straight line separates its
//! ones from its zeros), but two layers do: `XOR(x) = AND(NAND(x), OR(x))`. The step's gradient
//! is zero everywhere, so backpropagation cannot tune those weights; the learned XOR swaps in
//! the sigmoid and finds its own weights from the four rows of the truth table.
//!
//! Run with `cargo run --release --example 02_perceptron`.

use std::fmt;

use ndarray::{Array1, Array2, array};
use rand::SeedableRng;
use tapegrad::Tape;
use tapegrad::nn::{self, Activation, Init, Linear, Mlp, Module, Sequential};
use tapegrad::optim::{Optimizer, Sgd};

/// A perceptron with two inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// `w`.
    pub weights: [f64; 2],
    /// `b`.
    pub bias: f64,
}

/// The textbook's AND: fires only when both inputs are on (0.5 + 0.5 − 0.7 > 0).
pub const AND: Gate = Gate { weights: [0.5, 0.5], bias: -0.7 };
/// NAND: AND with every sign flipped.
pub const NAND: Gate = Gate { weights: [-0.5, -0.5], bias: 0.7 };
/// OR: AND with a lower threshold, so one input is enough (0.5 − 0.2 > 0).
pub const OR: Gate = Gate { weights: [0.5, 0.5], bias: -0.2 };

/// The rows of a two-input truth table, in the textbook's order.
pub const INPUTS: [[f64; 2]; 4] = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];

/// Steps of gradient descent for the learned XOR.
pub const STEPS: usize = 1000;
/// The learning rate of the learned XOR (large: four samples, one full batch).
pub const LEARNING_RATE: f64 = 2.0;

/// Perceptrons side by side, one per gate: gate `j` is column `j` of the weights and entry `j`
/// of the bias.
fn layer(tape: &Tape<f64>, gates: &[Gate]) -> Sequential<f64> {
    let weights = Array2::from_shape_fn((2, gates.len()), |(i, j)| gates[j].weights[i]);
    let bias: Array1<f64> = gates.iter().map(|g| g.bias).collect();
    Sequential::new().add("linear", Linear::from_arrays(tape, weights, bias)).add("step", Activation::Step)
}

/// The four rows of the truth table as one batch of shape `(4, 2)`.
fn inputs() -> Array2<f64> {
    Array2::from_shape_fn((4, 2), |(i, j)| INPUTS[i][j])
}

/// The model's output on each row of the truth table.
/// Evaluated in a scope, which frees the nodes it made.
fn truth_table(tape: &Tape<f64>, model: &impl Module<f64>) -> [f64; 4] {
    let y = tape.scope(|| model.forward(tape.constant(inputs())).to_array());
    std::array::from_fn(|i| y[[i, 0]])
}

/// What the example prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The outputs of AND, NAND, OR and the two-layer XOR on [`INPUTS`].
    pub gates: Vec<(&'static str, [f64; 4])>,
    /// The learned XOR's loss (binary cross-entropy) before training and every 200 steps.
    pub losses: Vec<(usize, f64)>,
    /// The learned XOR's output probabilities on [`INPUTS`].
    pub learned: [f64; 4],
}

/// Evaluates the fixed gates, then trains a 2-4-1 sigmoid network on XOR.
pub fn report() -> Report {
    let tape = Tape::<f64>::new();
    let xor = Sequential::new().add("nand_or", layer(&tape, &[NAND, OR])).add("and", layer(&tape, &[AND]));
    let gates = vec![
        ("AND", truth_table(&tape, &layer(&tape, &[AND]))),
        ("NAND", truth_table(&tape, &layer(&tape, &[NAND]))),
        ("OR", truth_table(&tape, &layer(&tape, &[OR]))),
        ("XOR", truth_table(&tape, &xor)),
    ];

    let tape = Tape::<f64>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let model = Mlp::new(&tape, &[2, 4, 1], Activation::Sigmoid, Init::Xavier, &mut rng);
    let mut optimizer = Sgd::new(nn::params(&model), LEARNING_RATE);
    let targets = array![[0.0], [1.0], [1.0], [0.0]]; // XOR of each row of INPUTS
    let mut losses = Vec::new();
    for step in 0..=STEPS {
        let logits = model.forward(tape.constant(inputs()));
        let loss = nn::binary_cross_entropy_with_logits(logits, tape.constant(targets.clone()));
        if step % 200 == 0 {
            losses.push((step, loss.scalar()));
        }
        if step < STEPS {
            optimizer.step(&tape, &loss.backward());
        }
        tape.reset();
    }
    let learned =
        truth_table(&tape, &Sequential::new().add("mlp", model).add("sigmoid", Activation::Sigmoid));
    Report { gates, losses, learned }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "x1 x2 |")?;
        for (name, _) in &self.gates {
            write!(f, " {name:>4}")?;
        }
        writeln!(f)?;
        for (row, [x1, x2]) in INPUTS.iter().enumerate() {
            write!(f, " {x1}  {x2} |")?;
            for (_, outputs) in &self.gates {
                write!(f, " {:>4}", outputs[row])?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "\nlearning XOR: a 2-4-1 sigmoid network, binary cross-entropy, gradient descent (lr {LEARNING_RATE}):"
        )?;
        for (step, loss) in &self.losses {
            writeln!(f, "step {step:>4}  loss {loss:.4}")?;
        }
        writeln!(f, "x1 x2 | learned XOR")?;
        for ([x1, x2], y) in INPUTS.iter().zip(self.learned) {
            writeln!(f, " {x1}  {x2} | {y:.4}")?;
        }
        Ok(())
    }
}

#[allow(dead_code)]
fn main() {
    print!("{}", report());
}
