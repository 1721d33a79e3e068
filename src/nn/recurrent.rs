//! Recurrent layers with PyTorch's gate order, parameter names and layouts, batch-first:
//! [`RnnCell`], [`LstmCell`], [`GruCell`] take one step; [`Rnn`], [`Lstm`], [`Gru`] run a
//! sequence `[N, T, D]` through one or more layers, in one or both directions, from an initial
//! state, returning the outputs `[N, T, directions·H]` and the final state.
//!
//! Each step is composed from ops (`matmul`, `sigmoid`, `tanh`, `narrow`, …), so the layers
//! have every derivative order. The input's share of all gates is one matrix product over the
//! whole sequence; each step adds one product with the hidden state for all gates.
//!
//! Gate order (rows of the weights, `H` each): LSTM `i, f, g, o` with `c' = f·c + i·g`,
//! `h' = o·tanh(c')`; GRU `r, z, n` with `n = tanh(W_in·x + b_in + r·(W_hn·h + b_hn))` and
//! `h' = (1 − z)·n + z·h`; the plain RNN `h' = tanh(W_ih·x + b_ih + W_hh·h + b_hh)`.

use std::marker::PhantomData;

use rand::Rng;

use super::layers::{rename, same_tape};
use super::{Dropout, Init, Module};
use crate::error::{Error, Result, or_panic};
use crate::float::Float;
use crate::ops::linalg::MatMul;
use crate::ops::shape::{concat, stack};
use crate::ops::{apply, check_size};
use crate::tape::{Param, Tape, Var};

/// The plain RNN cell's kind (`tanh`), for [`Cell`] and [`Recurrent`].
pub const RNN: u8 = 0;
/// The LSTM's kind.
pub const LSTM: u8 = 1;
/// The GRU's kind.
pub const GRU: u8 = 2;

/// The state between steps: `h`, and for an LSTM the cell state `c`.
#[derive(Debug, Clone, Copy)]
pub struct State<'t, F: Float> {
    /// The hidden state.
    pub h: Var<'t, F>,
    /// The LSTM's cell state; `None` for the RNN and the GRU.
    pub c: Option<Var<'t, F>>,
}

/// One recurrent cell: weights `weight_ih` `[G·H, D]`, `weight_hh` `[G·H, H]` and biases
/// `bias_ih`, `bias_hh` `[G·H]` (`G` = 1, 4 or 3 gates), as in PyTorch. Use it as
/// [`RnnCell`], [`LstmCell`] or [`GruCell`].
#[derive(Debug, Clone, Copy)]
pub struct Cell<F, const KIND: u8> {
    /// The input's weights, `[G·H, D]`.
    pub weight_ih: Param,
    /// The hidden state's weights, `[G·H, H]`.
    pub weight_hh: Param,
    /// The input side's bias, `[G·H]`.
    pub bias_ih: Param,
    /// The hidden side's bias, `[G·H]`.
    pub bias_hh: Param,
    inputs: usize,
    hidden: usize,
    tape: u64,
    element: PhantomData<fn() -> F>,
}

/// A plain RNN cell, `h' = tanh(W_ih·x + b_ih + W_hh·h + b_hh)` (PyTorch's `nn.RNNCell`).
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::RnnCell;
/// let tape = tapegrad::Tape::<f64>::new();
/// let cell = RnnCell::new(&tape, 3, 4, &mut rand::rngs::StdRng::seed_from_u64(0));
/// let x = tape.constant(ndarray::Array2::<f64>::ones((2, 3)));
/// let state = cell.step(x, None);
/// assert_eq!(state.h.shape().as_slice(), &[2, 4]);
/// assert!(state.h.to_array().iter().all(|v| v.abs() < 1.0));
/// ```
pub type RnnCell<F> = Cell<F, RNN>;

/// An LSTM cell with PyTorch's gate order `i, f, g, o` (PyTorch's `nn.LSTMCell`).
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::LstmCell;
/// let tape = tapegrad::Tape::<f64>::new();
/// let cell = LstmCell::new(&tape, 3, 4, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(tape.get(cell.weight_ih).shape().as_slice(), &[16, 3]);
/// let x = tape.constant(ndarray::Array2::<f64>::ones((2, 3)));
/// let first = cell.step(x, None);
/// let second = cell.step(x, Some(first));
/// assert_eq!(second.c.unwrap().shape().as_slice(), &[2, 4]);
/// ```
pub type LstmCell<F> = Cell<F, LSTM>;

/// A GRU cell with PyTorch's gate order `r, z, n` (PyTorch's `nn.GRUCell`).
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::GruCell;
/// let tape = tapegrad::Tape::<f64>::new();
/// let cell = GruCell::new(&tape, 3, 4, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(tape.get(cell.weight_hh).shape().as_slice(), &[12, 4]);
/// let state = cell.step(tape.constant(ndarray::Array2::<f64>::ones((2, 3))), None);
/// assert!(state.c.is_none());
/// ```
pub type GruCell<F> = Cell<F, GRU>;

impl<F: Float, const KIND: u8> Cell<F, KIND> {
    /// A cell from `inputs` features to a state of `hidden`, every weight and bias drawn
    /// uniformly from `±1/√hidden`, as PyTorch does.
    ///
    /// Panics, at the caller's line, with the error of [`try_new`](Self::try_new).
    #[track_caller]
    pub fn new(tape: &Tape<F>, inputs: usize, hidden: usize, rng: &mut impl Rng) -> Self {
        or_panic(Self::try_new(tape, inputs, hidden, rng))
    }

    /// [`new`](Self::new), or an error naming the cell when its weights `[G·H, D]` and
    /// `[G·H, H]` are too large to hold (their sizes overflow, or the memory is not there).
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::nn::LstmCell;
    /// let tape = tapegrad::Tape::<f32>::new();
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// assert!(LstmCell::try_new(&tape, 3, 4, &mut rng).is_ok());
    /// let err = LstmCell::try_new(&tape, 3, 1 << 62, &mut rng).unwrap_err().to_string();
    /// assert!(err.starts_with("LstmCell: "), "{err}");
    /// ```
    pub fn try_new(tape: &Tape<F>, inputs: usize, hidden: usize, rng: &mut impl Rng) -> Result<Self> {
        let name = cell_name(KIND);
        let Some(rows) = gates(KIND).checked_mul(hidden) else {
            let message = format!("hidden size {hidden}: {} gates of it overflow usize", gates(KIND));
            return Err(Error::argument(name, message));
        };
        let init = Init::Uniform(1.0 / (hidden.max(1) as f64).sqrt());
        let mut sample = |shape: &[usize]| -> Result<Param> {
            check_size::<F>(name, shape)?;
            Ok(tape.param(init.sample::<F>(shape, rng)))
        };
        Ok(Cell {
            weight_ih: sample(&[rows, inputs])?,
            weight_hh: sample(&[rows, hidden])?,
            bias_ih: sample(&[rows])?,
            bias_hh: sample(&[rows])?,
            inputs,
            hidden,
            tape: tape.id(),
            element: PhantomData,
        })
    }

    /// Checks a state against the shape `expected` (written `layout` in errors: `[N, H]` for a
    /// cell): an error naming `layer` when a shape differs, or `c` is missing from an LSTM's
    /// state or given to another kind's.
    fn check_state(
        &self,
        layer: &'static str,
        state: &State<'_, F>,
        layout: &str,
        expected: &[usize],
    ) -> Result<()> {
        let mut shapes = vec![state.h.shape()];
        shapes.extend(state.c.map(|c| c.shape()));
        let fits = shapes.iter().all(|s| s.as_slice() == expected);
        let shapes: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        let shape = format!("{layout} = {expected:?}");
        let expected = match (KIND == LSTM, state.c.is_some()) {
            (true, false) => format!("an initial state (h, c), each of shape {shape}; an LSTM's state has c"),
            (false, true) => {
                format!("an initial state h of shape {shape} and no c; only an LSTM's state has c")
            }
            (true, true) if !fits => format!("an initial state (h, c), each of shape {shape}"),
            (false, false) if !fits => format!("an initial state h of shape {shape}"),
            _ => return Ok(()),
        };
        Err(Error::shape(layer, &shapes, expected))
    }

    /// The input's share of every gate, `x·W_ihᵀ + b_ih`, for a batch `[N, D]`: `[N, G·H]`.
    fn input_gates<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        let tape = x.tape();
        apply(MatMul { ta: false, tb: true }, [x, tape.get(self.weight_ih)]) + tape.get(self.bias_ih)
    }

    /// One step from the input's share of the gates `[N, G·H]` and the state (zeros when
    /// `None`).
    fn advance<'t>(&self, input_gates: Var<'t, F>, state: Option<State<'t, F>>) -> State<'t, F> {
        let tape = input_gates.tape();
        let (n, h) = (input_gates.shape()[0], self.hidden);
        let zeros = || tape.constant(ndarray::Array2::<F>::zeros((n, h)));
        let state = state.unwrap_or_else(|| State { h: zeros(), c: (KIND == LSTM).then(zeros) });
        let hidden_gates = apply(MatMul { ta: false, tb: true }, [state.h, tape.get(self.weight_hh)])
            + tape.get(self.bias_hh);
        let gate = |v: Var<'t, F>, k: usize| v.narrow(1, k * h, h);
        match KIND {
            RNN => State { h: (input_gates + hidden_gates).tanh(), c: None },
            LSTM => {
                let z = input_gates + hidden_gates;
                let (i, f) = (gate(z, 0).sigmoid(), gate(z, 1).sigmoid());
                let (g, o) = (gate(z, 2).tanh(), gate(z, 3).sigmoid());
                let c = f * state.c.expect("an LSTM state has c") + i * g;
                State { h: o * c.tanh(), c: Some(c) }
            }
            _ => {
                let r = (gate(input_gates, 0) + gate(hidden_gates, 0)).sigmoid();
                let z = (gate(input_gates, 1) + gate(hidden_gates, 1)).sigmoid();
                let new = (gate(input_gates, 2) + r * gate(hidden_gates, 2)).tanh();
                State { h: new + z * (state.h - new), c: None }
            }
        }
    }

    /// One step: the input `[N, D]` and the previous state (zeros when `None`) give the next
    /// state.
    ///
    /// Panics, at the caller's line, with the error of [`try_step`](Self::try_step).
    #[track_caller]
    pub fn step<'t>(&self, x: Var<'t, F>, state: Option<State<'t, F>>) -> State<'t, F> {
        or_panic(self.try_step(x, state))
    }

    /// [`step`](Self::step), or an error naming the cell when `x` is on another tape than the
    /// cell or is not `[N, D]`, or the state is not `[N, H]` (with `c` for an LSTM and only
    /// for an LSTM).
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::nn::{GruCell, State};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let cell = GruCell::new(&tape, 3, 4, &mut rand::rngs::StdRng::seed_from_u64(0));
    /// let x = tape.constant(ndarray::Array2::<f64>::ones((2, 3)));
    /// let h = tape.constant(ndarray::Array2::<f64>::zeros((1, 4)));
    /// let err = cell.try_step(x, Some(State { h, c: None })).unwrap_err().to_string();
    /// assert_eq!(err, "GruCell: got shapes [1, 4], expected an initial state h of shape [N, H] = [2, 4]");
    /// ```
    pub fn try_step<'t>(&self, x: Var<'t, F>, state: Option<State<'t, F>>) -> Result<State<'t, F>> {
        let name = cell_name(KIND);
        same_tape(name, self.tape, x)?;
        let shape = x.shape();
        if shape.len() != 2 || shape[1] != self.inputs {
            let expected = format!("an input [N, D] with D = {}", self.inputs);
            return Err(Error::shape(name, &[&shape], expected));
        }
        if let Some(state) = &state {
            self.check_state(name, state, "[N, H]", &[shape[0], self.hidden])?;
        }
        Ok(self.advance(self.input_gates(x), state))
    }

    /// The four parameters under PyTorch's names, each followed by `suffix` (`"_l0"`, …).
    fn named(&self, suffix: &str) -> Vec<(String, Param)> {
        vec![
            (format!("weight_ih{suffix}"), self.weight_ih),
            (format!("weight_hh{suffix}"), self.weight_hh),
            (format!("bias_ih{suffix}"), self.bias_ih),
            (format!("bias_hh{suffix}"), self.bias_hh),
        ]
    }
}

impl<F: Float, const KIND: u8> Module<F> for Cell<F, KIND> {
    /// One step from a zero state; the output is the new `h`.
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        self.step(x, None).h
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        self.named("")
    }
}

/// Gates per kind.
fn gates(kind: u8) -> usize {
    match kind {
        RNN => 1,
        LSTM => 4,
        _ => 3,
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        RNN => "Rnn",
        LSTM => "Lstm",
        _ => "Gru",
    }
}

fn cell_name(kind: u8) -> &'static str {
    match kind {
        RNN => "RnnCell",
        LSTM => "LstmCell",
        _ => "GruCell",
    }
}

/// A recurrent layer over sequences `[N, T, D]` (batch first): `layers` stacked cells, each
/// direction with its own, dropout between layers while training. Use it as [`Rnn`],
/// [`Lstm`] or [`Gru`].
#[derive(Debug)]
pub struct Recurrent<F, const KIND: u8> {
    cells: Vec<Cell<F, KIND>>,
    layers: usize,
    directions: usize,
    dropout: Option<Dropout>,
}

/// A plain (tanh) RNN over sequences, PyTorch's `nn.RNN(batch_first=True)`.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{Module, Rnn};
/// let tape = tapegrad::Tape::<f64>::new();
/// let rnn = Rnn::new(&tape, 3, 4, 1, false, &mut rand::rngs::StdRng::seed_from_u64(0));
/// let x = tape.constant(ndarray::Array3::<f64>::ones((2, 5, 3)));
/// assert_eq!(rnn.forward(x).shape().as_slice(), &[2, 5, 4]);
/// ```
pub type Rnn<F> = Recurrent<F, RNN>;

/// An LSTM over sequences, PyTorch's `nn.LSTM(batch_first=True)`: parameters
/// `weight_ih_l0` `[4H, D]`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, then `_reverse` for the
/// backward direction and `_l1`, … for further layers.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{Lstm, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let lstm = Lstm::new(&tape, 3, 4, 2, true, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(lstm.parameters()[4].0, "weight_ih_l0_reverse");
/// let x = tape.constant(ndarray::Array3::<f64>::ones((2, 5, 3)));
/// let (y, state) = lstm.run(x, None);
/// assert_eq!(y.shape().as_slice(), &[2, 5, 8]);
/// assert_eq!(state.h.shape().as_slice(), &[4, 2, 4]); // [layers·directions, N, H]
/// ```
pub type Lstm<F> = Recurrent<F, LSTM>;

/// A GRU over sequences, PyTorch's `nn.GRU(batch_first=True)`.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::nn::{Gru, Module};
/// let tape = tapegrad::Tape::<f64>::new();
/// let gru = Gru::new(&tape, 3, 4, 1, true, &mut rand::rngs::StdRng::seed_from_u64(0));
/// let x = tape.constant(ndarray::Array3::<f64>::ones((2, 5, 3)));
/// assert_eq!(gru.forward(x).shape().as_slice(), &[2, 5, 8]);
/// ```
pub type Gru<F> = Recurrent<F, GRU>;

impl<F: Float, const KIND: u8> Recurrent<F, KIND> {
    /// `layers` layers of `hidden` units over `inputs` features, in both directions when
    /// `bidirectional`; weights drawn as PyTorch does.
    ///
    /// Panics, at the caller's line, with the error of [`try_new`](Self::try_new).
    #[track_caller]
    pub fn new(
        tape: &Tape<F>,
        inputs: usize,
        hidden: usize,
        layers: usize,
        bidirectional: bool,
        rng: &mut impl Rng,
    ) -> Self {
        or_panic(Self::try_new(tape, inputs, hidden, layers, bidirectional, rng))
    }

    /// [`new`](Self::new), or an error naming the layer when `layers` is 0 or the weights are
    /// too large to hold (see [`parameter_count`](Self::parameter_count)).
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::nn::Lstm;
    /// let tape = tapegrad::Tape::<f32>::new();
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let err = Lstm::try_new(&tape, 3, 4, 0, false, &mut rng).unwrap_err().to_string();
    /// assert_eq!(err, "Lstm: 0 layers; expected at least 1");
    /// assert!(Lstm::try_new(&tape, 3, 1 << 40, 1, false, &mut rng).is_err());
    /// ```
    pub fn try_new(
        tape: &Tape<F>,
        inputs: usize,
        hidden: usize,
        layers: usize,
        bidirectional: bool,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Self::parameter_count(inputs, hidden, layers, bidirectional)?;
        let directions = if bidirectional { 2 } else { 1 };
        let mut cells = Vec::new();
        let count = layers.checked_mul(directions);
        if count.is_none_or(|count| cells.try_reserve_exact(count).is_err()) {
            let message =
                format!("{layers} layers of {directions} direction(s) are more cells than memory holds");
            return Err(Error::argument(kind_name(KIND), message));
        }
        for layer in 0..layers {
            let width = if layer == 0 { inputs } else { hidden * directions };
            for _ in 0..directions {
                cells.push(Cell::try_new(tape, width, hidden, rng).map_err(|e| rename(e, kind_name(KIND)))?);
            }
        }
        Ok(Recurrent { cells, layers, directions, dropout: None })
    }

    /// The number of weights and biases of `layers` layers of `hidden` units over `inputs`
    /// features (both directions when `bidirectional`), as PyTorch's `sum(p.numel())`, computed
    /// without overflow and without making them: an error naming the layer when `layers` is 0,
    /// or a count or a weight's size overflows or is more than memory can hold.
    ///
    /// ```
    /// use tapegrad::nn::Lstm;
    /// // per layer and direction: 4H·D + 4H·H + 2·4H
    /// assert_eq!(Lstm::<f32>::parameter_count(3, 4, 1, false).unwrap(), 16 * 3 + 16 * 4 + 32);
    /// assert!(Lstm::<f32>::parameter_count(3, 1 << 40, 1, false).is_err());
    /// ```
    pub fn parameter_count(
        inputs: usize,
        hidden: usize,
        layers: usize,
        bidirectional: bool,
    ) -> Result<usize> {
        let name = kind_name(KIND);
        if layers == 0 {
            return Err(Error::argument(name, "0 layers; expected at least 1"));
        }
        let directions = if bidirectional { 2 } else { 1 };
        let overflow = || {
            let message = format!(
                "{layers} layers of hidden size {hidden} over {inputs} inputs{}: the number of weights \
                 overflows usize",
                if bidirectional { ", both directions" } else { "" }
            );
            Error::argument(name, message)
        };
        let rows = gates(KIND).checked_mul(hidden).ok_or_else(overflow)?;
        let wide = directions * hidden; // the later layers' inputs: at most 2·hidden
        let first = inputs.checked_add(hidden).and_then(|n| n.checked_add(2)).ok_or_else(overflow)?;
        let later = hidden.checked_mul(directions + 1).and_then(|n| n.checked_add(2)).ok_or_else(overflow)?;
        let weights = [[rows, inputs], [rows, hidden], [rows, wide]];
        for shape in &weights[..if layers > 1 { 3 } else { 2 }] {
            crate::ops::check_shape::<F>(name, shape)?;
        }
        let per_direction = |width: usize| rows.checked_mul(width);
        let first = per_direction(first).ok_or_else(overflow)?;
        let later = per_direction(later).and_then(|n| n.checked_mul(layers - 1)).ok_or_else(overflow)?;
        let total = first.checked_add(later).and_then(|n| n.checked_mul(directions)).ok_or_else(overflow)?;
        crate::ops::check_shape::<F>(name, &[total])
    }

    /// Drops outputs of every layer but the last with probability `p` while training (PyTorch's
    /// `dropout` argument), masks drawn from `seed`.
    pub fn with_dropout(mut self, p: f64, seed: u64) -> Self {
        self.dropout = Some(Dropout::new(p, seed));
        self
    }

    /// Runs the sequence `x` `[N, T, D]` from `state` (`h`, and `c` for an LSTM, each
    /// `[layers·directions, N, H]`; zeros when `None`). Returns the last layer's outputs
    /// `[N, T, directions·H]` (the directions side by side) and the final state, rows ordered
    /// `[layer 0 forward, layer 0 backward, layer 1 forward, …]` as in PyTorch. For truncated
    /// backpropagation through time, carry the final state's values (`state.h.value()`) to the
    /// next chunk and pass them in as constants: that cuts the history there, and `reset` can
    /// free the chunk's graph in between (example `sine_lstm`).
    ///
    /// Panics, at the caller's line, with the error of [`try_run`](Self::try_run).
    #[track_caller]
    pub fn run<'t>(&self, x: Var<'t, F>, state: Option<State<'t, F>>) -> (Var<'t, F>, State<'t, F>) {
        or_panic(self.try_run(x, state))
    }

    /// [`run`](Self::run), or an error naming the layer, as PyTorch raises one, when `x` is on
    /// another tape or is not `[N, T, D]` with `T ≥ 1` and the layer's `D`, or the state is not
    /// `[layers·directions, N, H]` (with `c` for an LSTM, and only for an LSTM).
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::nn::{Lstm, State};
    /// let tape = tapegrad::Tape::<f64>::new();
    /// let lstm = Lstm::new(&tape, 3, 4, 2, false, &mut rand::rngs::StdRng::seed_from_u64(0));
    /// let x = tape.constant(ndarray::Array3::<f64>::ones((3, 5, 3)));
    /// // a state for a batch of 1 is not broadcast over a batch of 3
    /// let h = tape.constant(ndarray::Array3::<f64>::zeros((2, 1, 4)));
    /// let err = lstm.try_run(x, Some(State { h, c: Some(h) })).unwrap_err().to_string();
    /// assert_eq!(err, "Lstm: got shapes [2, 1, 4] and [2, 1, 4], expected an initial state (h, c), each of shape \
    ///                  [layers·directions, N, H] = [2, 3, 4]");
    /// let empty = tape.constant(ndarray::Array3::<f64>::ones((3, 0, 3)));
    /// assert!(lstm.try_run(empty, None).unwrap_err().to_string().contains("length T = 0"));
    /// ```
    pub fn try_run<'t>(
        &self,
        x: Var<'t, F>,
        state: Option<State<'t, F>>,
    ) -> Result<(Var<'t, F>, State<'t, F>)> {
        let name = kind_name(KIND);
        same_tape(name, self.cells[0].tape, x)?;
        let shape = x.shape();
        let inputs = self.cells[0].inputs;
        if shape.len() != 3 || shape[2] != inputs {
            let expected = format!("a batch-first sequence [N, T, D] with D = {inputs}");
            return Err(Error::shape(name, &[&shape], expected));
        }
        let (n, t) = (shape[0], shape[1]);
        if t == 0 {
            let message =
                format!("a sequence of length T = 0 (input shape {shape:?}); expected at least one step");
            return Err(Error::argument(name, message));
        }
        if let Some(state) = &state {
            let expected = [self.layers * self.directions, n, self.cells[0].hidden];
            self.cells[0].check_state(name, state, "[layers·directions, N, H]", &expected)?;
        }
        let mut input = x;
        let (mut final_h, mut final_c) = (Vec::new(), Vec::new());
        for layer in 0..self.layers {
            let mut outputs = Vec::with_capacity(self.directions);
            for direction in 0..self.directions {
                let row = layer * self.directions + direction;
                let cell = &self.cells[row];
                let initial = match state {
                    None => None,
                    Some(s) => Some(State {
                        h: s.h.try_narrow(0, row, 1)?.try_squeeze(0)?,
                        c: s.c.map(|c| c.try_narrow(0, row, 1)?.try_squeeze(0)).transpose()?,
                    }),
                };
                // the input's share of the gates at every step, in one product
                let width = input.shape()[2];
                let all_gates = cell.input_gates(input.reshape(&[n * t, width])).reshape(&[
                    n,
                    t,
                    gates(KIND) * cell.hidden,
                ]);
                let mut current = initial;
                let mut steps = vec![None; t];
                let order: Vec<usize> =
                    if direction == 0 { (0..t).collect() } else { (0..t).rev().collect() };
                for &s in &order {
                    let next = cell.advance(all_gates.narrow(1, s, 1).squeeze(1), current);
                    steps[s] = Some(next.h);
                    current = Some(next);
                }
                let last = current.expect("at least one step");
                final_h.push(last.h);
                final_c.extend(last.c);
                let steps: Vec<Var<'t, F>> = steps.into_iter().map(|h| h.expect("every step ran")).collect();
                outputs.push(stack(&steps, 1));
            }
            input = if outputs.len() == 1 { outputs[0] } else { concat(&outputs, 2) };
            if let (Some(dropout), true) = (&self.dropout, layer + 1 < self.layers) {
                input = Module::<F>::forward(dropout, input);
            }
        }
        let h = stack(&final_h, 0);
        let c = (KIND == LSTM).then(|| stack(&final_c, 0));
        Ok((input, State { h, c }))
    }
}

impl<F: Float, const KIND: u8> Module<F> for Recurrent<F, KIND> {
    /// The outputs `[N, T, directions·H]` from a zero state.
    fn forward<'t>(&self, x: Var<'t, F>) -> Var<'t, F> {
        self.run(x, None).0
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        let mut named = Vec::new();
        for (row, cell) in self.cells.iter().enumerate() {
            let (layer, direction) = (row / self.directions, row % self.directions);
            let suffix = format!("_l{layer}{}", if direction == 1 { "_reverse" } else { "" });
            named.extend(cell.named(&suffix));
        }
        named
    }
    fn set_training(&mut self, training: bool) {
        if let Some(dropout) = &mut self.dropout {
            dropout.set_training(training);
        }
    }
}
