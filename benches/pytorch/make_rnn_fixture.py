"""Reference fixtures for the recurrent layers: RNN, LSTM and GRU, and their cells, in PyTorch.

Run from the repository root, with a Python that has torch, safetensors and numpy
(see benches/pytorch/README.md):

    python benches/pytorch/make_rnn_fixture.py

Written with torch 2.15.0 (CPU). Everything is computed and stored in float64, so the Rust side
can compare at tight tolerances (1e-10 relative is comfortable). The output is deterministic:
each file has its own seed (SEEDS below), so the files do not depend on one another or on the
order they are written in; on another torch version or machine the values may differ in the
last bits.

It writes nine files into tests/fixtures/rnn/:

    rnn_l2_bi   lstm_l2_bi   gru_l2_bi    num_layers=2, bidirectional=True
    rnn_l1      lstm_l1      gru_l1       num_layers=1, bidirectional=False
    rnn_cell    lstm_cell    gru_cell     one step of nn.RNNCell / nn.LSTMCell / nn.GRUCell

(each with the extension .safetensors). All layers: input size D=4, hidden size H=5, batch
N=2, bias=True; the sequence layers also batch_first=True, dropout=0.0, sequence length T=3;
nn.RNN uses nonlinearity="tanh". Parameters are PyTorch's default initialization
(uniform in [-1/sqrt(H), 1/sqrt(H)]), made float64 with .double().

The equations (PyTorch's documentation; W x means x times W transposed, x a row of the batch):

    RNN:   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)

    LSTM:  gates stacked in the order i, f, g, o (input, forget, cell candidate, output)
           i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
           f = sigmoid(W_if x + b_if + W_hf h + b_hf)
           g = tanh   (W_ig x + b_ig + W_hg h + b_hg)
           o = sigmoid(W_io x + b_io + W_ho h + b_ho)
           c' = f * c + i * g
           h' = o * tanh(c')

    GRU:   gates stacked in the order r, z, n (reset, update, new)
           r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
           z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
           n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
           h' = (1 - z) * n + z * h
           r multiplies the whole hidden-side term, b_hn included, so b_in and b_hn cannot be
           merged into one bias (for r and z, and in RNN and LSTM, the two biases just add).

Parameter layouts (PyTorch's, unchanged): with G the number of gates (RNN 1, LSTM 4, GRU 3),
the gates' weights are stacked along the first axis, gate k in rows k*H .. (k+1)*H:

    weight_ih_l{k}[_reverse]  [G*H, I]   I = D for layer 0, I = num_directions*H for layer k > 0
    weight_hh_l{k}[_reverse]  [G*H, H]
    bias_ih_l{k}[_reverse]    [G*H]
    bias_hh_l{k}[_reverse]    [G*H]

"_reverse" marks the backward direction of a bidirectional layer. The cells' parameters are
weight_ih [G*H, D], weight_hh [G*H, H], bias_ih [G*H], bias_hh [G*H].

Sequence layers: batch_first applies to input and output only; the states are never batch-first.

    input [N, T, D]    output [N, T, num_directions*H]
    h0, h_n, c0, c_n [num_layers*num_directions, N, H], row 2*k + d for layer k, direction d
    (d = 0 forward, 1 backward), i.e. [layer0_fwd, layer0_bwd, layer1_fwd, layer1_bwd].

A bidirectional layer runs its forward direction over t = 0 .. T-1 from h0[2k] and its backward
direction over t = T-1 .. 0 from h0[2k+1], with separate parameters; its output at step t is
the concatenation [forward state after step t, backward state after step t] along the last
axis. That output, [N, T, 2H], is the next layer's input. So the forward direction's h_n is its
state at t = T-1 and the backward direction's h_n is its state at t = 0:
h_n[-2] == output[:, T-1, :H] and h_n[-1] == output[:, 0, H:] (checked below).

Keys of a sequence-layer file (<kind>_<variant>.safetensors), all float64:

    param.<name>       every parameter, under PyTorch's state_dict name (above)
    input              [N, T, D]                  seeded randn
    h0                 [L*dirs, N, H]             seeded randn
    c0                 [L*dirs, N, H]             (LSTM only) seeded randn
    R                  [N, T, dirs*H]             seeded randn, weights of the loss
    S                  [L*dirs, N, H]             seeded randn, weights of the loss
    Q                  [L*dirs, N, H]             (LSTM only) seeded randn, weights of the loss
    output             [N, T, dirs*H]             the forward's output
    h_n                [L*dirs, N, H]             the final hidden states
    c_n                [L*dirs, N, H]             (LSTM only) the final cell states
    grad.<name>        as param.<name>            dL/d parameter
    grad.input         [N, T, D]                  dL/d input
    grad.h0            [L*dirs, N, H]             dL/d h0
    grad.c0            [L*dirs, N, H]             (LSTM only) dL/d c0

with the scalar loss L = sum(output * R) + sum(h_n * S) (+ sum(c_n * Q) for LSTM), from one
forward and one backward. Here L*dirs is 4 for the l2_bi files and 1 for the l1 files.

Keys of a cell file (<kind>_cell.safetensors), all float64:

    param.weight_ih [G*H, D], param.weight_hh [G*H, H], param.bias_ih [G*H], param.bias_hh [G*H]
    input [N, D], h0 [N, H], c0 [N, H] (LSTM only)     seeded randn
    h1 [N, H], c1 [N, H] (LSTM only)                   one step of the cell
    R [N, H], Q [N, H] (LSTM only)                     seeded randn, weights of the loss
    grad.weight_ih, grad.weight_hh, grad.bias_ih, grad.bias_hh, grad.input, grad.h0,
    grad.c0 (LSTM only)                                the gradients of L

with L = sum(h1 * R) (+ sum(c1 * Q) for LSTM).

The script also recomputes every forward from the equations above, by hand, and checks it
against PyTorch's, so the description here is the one the fixtures follow.
"""

import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

FIXTURES = Path("tests/fixtures/rnn")

D, H, N, T = 4, 5, 2, 3

KINDS = {"rnn": (nn.RNN, nn.RNNCell), "lstm": (nn.LSTM, nn.LSTMCell), "gru": (nn.GRU, nn.GRUCell)}
VARIANTS = {"l2_bi": (2, True), "l1": (1, False)}

SEEDS = {
    "rnn_l2_bi": 101, "rnn_l1": 102, "rnn_cell": 103,
    "lstm_l2_bi": 201, "lstm_l1": 202, "lstm_cell": 203,
    "gru_l2_bi": 301, "gru_l1": 302, "gru_cell": 303,
}


# ---- the equations of the docstring, by hand, to check PyTorch against them ----

def step(kind, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of a cell; x [N, I], h and c [N, H]. Returns (h', c') (c' None except LSTM)."""
    gi = x @ w_ih.t() + b_ih
    gh = h @ w_hh.t() + b_hh
    if kind == "rnn":
        return torch.tanh(gi + gh), None
    if kind == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h, None


def run_stack(kind, params, x, h0, c0, num_layers, dirs):
    """The layered, optionally bidirectional, batch-first recurrence, by hand."""
    layer_in = x
    h_n, c_n = [], []
    for k in range(num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"l{k}" + ("_reverse" if d == 1 else "")
            w = [params[f"{p}_{sfx}"] for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            row = k * dirs + d
            h = h0[row]
            c = c0[row] if c0 is not None else None
            steps = range(T) if d == 0 else range(T - 1, -1, -1)
            hs = [None] * T
            for t in steps:
                h, c = step(kind, layer_in[:, t], h, c, *w)
                hs[t] = h
            outs.append(torch.stack(hs, dim=1))
            h_n.append(h)
            c_n.append(c)
        layer_in = torch.cat(outs, dim=2)
    return layer_in, torch.stack(h_n), (torch.stack(c_n) if c0 is not None else None)


# ---- the fixtures ----

def save(name, tensors):
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    assert all(t.dtype == torch.float64 for t in tensors.values())
    path = FIXTURES / f"{name}.safetensors"
    save_file(tensors, str(path))
    os.chmod(path, 0o644)
    print(f"{path}:")
    for key, t in tensors.items():
        print(f"  {key:26} {list(t.shape)}")


def make_sequence(kind, variant):
    name = f"{kind}_{variant}"
    torch.manual_seed(SEEDS[name])
    num_layers, bidirectional = VARIANTS[variant]
    dirs = 2 if bidirectional else 1
    layer_cls = KINDS[kind][0]
    extra = {"nonlinearity": "tanh"} if kind == "rnn" else {}
    module = layer_cls(D, H, num_layers=num_layers, bias=True, batch_first=True, dropout=0.0,
                       bidirectional=bidirectional, **extra).double()
    lstm = kind == "lstm"

    f64 = {"dtype": torch.float64}
    x = torch.randn(N, T, D, **f64).requires_grad_(True)
    h0 = torch.randn(num_layers * dirs, N, H, **f64).requires_grad_(True)
    c0 = torch.randn(num_layers * dirs, N, H, **f64).requires_grad_(True) if lstm else None
    R = torch.randn(N, T, dirs * H, **f64)
    S = torch.randn(num_layers * dirs, N, H, **f64)
    Q = torch.randn(num_layers * dirs, N, H, **f64) if lstm else None

    if lstm:
        output, (h_n, c_n) = module(x, (h0, c0))
    else:
        output, h_n = module(x, h0)
        c_n = None
    loss = (output * R).sum() + (h_n * S).sum()
    if lstm:
        loss = loss + (c_n * Q).sum()
    loss.backward()

    # The layouts and equations of the docstring.
    params = dict(module.named_parameters())
    with torch.no_grad():
        ref_out, ref_h, ref_c = run_stack(kind, params, x, h0, c0, num_layers, dirs)
        assert torch.allclose(ref_out, output, rtol=0, atol=1e-12)
        assert torch.allclose(ref_h, h_n, rtol=0, atol=1e-12)
        if lstm:
            assert torch.allclose(ref_c, c_n, rtol=0, atol=1e-12)
        assert torch.equal(h_n[dirs * (num_layers - 1)], output[:, T - 1, :H])
        if bidirectional:
            assert torch.equal(h_n[-1], output[:, 0, H:])
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
        assert list(params["weight_ih_l0"].shape) == [gates * H, D]
        assert list(params["weight_hh_l0"].shape) == [gates * H, H]
        if num_layers > 1:
            assert list(params["weight_ih_l1"].shape) == [gates * H, dirs * H]

    tensors = {f"param.{k}": v for k, v in module.state_dict().items()}
    tensors["input"] = x
    tensors["h0"] = h0
    if lstm:
        tensors["c0"] = c0
    tensors["R"] = R
    tensors["S"] = S
    if lstm:
        tensors["Q"] = Q
    tensors["output"] = output
    tensors["h_n"] = h_n
    if lstm:
        tensors["c_n"] = c_n
    tensors.update(gradients(module, x, h0, c0))
    print(f"{name}: loss {loss.item():.12f}")
    save(name, tensors)


def gradients(module, x, h0, c0):
    """The loss's gradients: every parameter (`grad.<name>`), the input and the initial state."""
    grads = {f"grad.{k}": p.grad for k, p in module.named_parameters()}
    grads["grad.input"] = x.grad
    grads["grad.h0"] = h0.grad
    if c0 is not None:
        grads["grad.c0"] = c0.grad
    return grads


def make_cell(kind):
    name = f"{kind}_cell"
    torch.manual_seed(SEEDS[name])
    cell_cls = KINDS[kind][1]
    extra = {"nonlinearity": "tanh"} if kind == "rnn" else {}
    cell = cell_cls(D, H, bias=True, **extra).double()
    lstm = kind == "lstm"

    f64 = {"dtype": torch.float64}
    x = torch.randn(N, D, **f64).requires_grad_(True)
    h0 = torch.randn(N, H, **f64).requires_grad_(True)
    c0 = torch.randn(N, H, **f64).requires_grad_(True) if lstm else None
    R = torch.randn(N, H, **f64)
    Q = torch.randn(N, H, **f64) if lstm else None

    if lstm:
        h1, c1 = cell(x, (h0, c0))
    else:
        h1, c1 = cell(x, h0), None
    loss = (h1 * R).sum()
    if lstm:
        loss = loss + (c1 * Q).sum()
    loss.backward()

    with torch.no_grad():
        ref_h, ref_c = step(kind, x, h0, c0, cell.weight_ih, cell.weight_hh,
                            cell.bias_ih, cell.bias_hh)
        assert torch.allclose(ref_h, h1, rtol=0, atol=1e-12)
        if lstm:
            assert torch.allclose(ref_c, c1, rtol=0, atol=1e-12)

    tensors = {f"param.{k}": v for k, v in cell.state_dict().items()}
    tensors["input"] = x
    tensors["h0"] = h0
    if lstm:
        tensors["c0"] = c0
    tensors["h1"] = h1
    if lstm:
        tensors["c1"] = c1
    tensors["R"] = R
    if lstm:
        tensors["Q"] = Q
    tensors.update(gradients(cell, x, h0, c0))
    print(f"{name}: loss {loss.item():.12f}")
    save(name, tensors)


def main():
    torch.set_num_threads(1)  # one thread: reductions always summed in the same order
    print(f"torch {torch.__version__}")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        for variant in VARIANTS:
            make_sequence(kind, variant)
        make_cell(kind)


if __name__ == "__main__":
    main()
