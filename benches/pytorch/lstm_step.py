"""Times one training step of the word-level LSTM language model in PyTorch, float32, on the CPU.

Run from the repository root:

    python benches/pytorch/lstm_step.py [--steps 100] [--warmup 10]

The model of example `lstm_lm` and `benches/lstm_step.rs` (the course's Rnnlm), vocabulary
10,000, 20 streams of 35 steps, input [20, 35] random ids:

    nn.Embedding(10000, 100) -> nn.LSTM(100, 100, batch_first=True) -> nn.Linear(100, 10000)

One step is zero_grad, forward from the previous chunk's final state (detached, as truncated
backpropagation through time carries it), mean cross-entropy over the 700 positions, backward,
clip_grad_norm_(0.25), SGD(lr=20).step(), and reading the loss.

Besides the step it times the "matmul floor": the step's matrix products alone, the same list as
the Rust bench's (the read-out's forward, input-gradient and weight-gradient products, the LSTM
input's share of the gates and its two gradients over the chunk, and per time step the recurrent
product and its input gradient, with the recurrent weights' gradient as one product).

Prints, for 1 and then 2 threads, lines like
    threads=1 step median 143.00 ms min 140.00 ms
    threads=1 matmul floor median 60.00 ms min 58.00 ms
after a line with the torch version and the CPU model.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import header, matmul_floor, report, time_ms

VOCAB = 10_000
DIM = 100
BATCH = 20
STEPS = 35
ROWS = BATCH * STEPS
GATES = 4 * DIM


class Rnnlm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.lstm = nn.LSTM(DIM, DIM, batch_first=True)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, ids, state):
        out, state = self.lstm(self.embed(ids), state)
        return self.head(out.reshape(ROWS, DIM)), state


# (m, k, n) of every product in one step
GEMMS = (
    [(ROWS, DIM, GATES)]  # the input's share of the gates
    + [(BATCH, DIM, GATES)] * STEPS  # the recurrent product, per step
    + [(ROWS, DIM, VOCAB), (ROWS, VOCAB, DIM), (DIM, ROWS, VOCAB)]  # read-out: y, dh, dW
    + [(BATCH, GATES, DIM)] * STEPS  # the state's gradient, per step
    + [(GATES, ROWS, DIM), (ROWS, GATES, DIM), (GATES, ROWS, DIM)]  # dW_hh, dx, dW_ih
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (BATCH, STEPS + 1))
    inputs, targets = ids[:, :STEPS].contiguous(), ids[:, 1:].reshape(-1).contiguous()
    model = Rnnlm()
    opt = torch.optim.SGD(model.parameters(), lr=20.0)
    carried = [None]

    def step():
        opt.zero_grad()
        logits, (h, c) = model(inputs, carried[0])
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        carried[0] = (h.detach(), c.detach())
        return loss.item()  # reads the loss, as the Rust bench does

    gemms = matmul_floor(GEMMS)
    header()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        report("step", threads, *time_ms(step, args.warmup, args.steps))
        report("matmul floor", threads, *time_ms(gemms, args.warmup, args.steps))


if __name__ == "__main__":
    main()
