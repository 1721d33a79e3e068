"""Times one training step of word2vec's CBOW with negative sampling in PyTorch, float32, CPU.

Run from the repository root:

    python benches/pytorch/cbow_step.py [--steps 200] [--warmup 20]

The step of `benches/cbow_step.rs`: a vocabulary of 10,000 words of dimension 100, a batch of
100 windows of 10 context words, each scored against its middle word and 5 negatives:

    h = W_in(contexts).mean(1)                       # nn.Embedding(10000, 100): [100, 100]
    scores = bmm(W_out(words), h.unsqueeze(2))       # nn.Embedding(10000, 100): [100, 6, 1]
    loss = binary_cross_entropy_with_logits(scores, labels)   # middle word 1, negatives 0

One step is zero_grad, forward, backward, SGD(lr=1).step(). The tables are plain
`nn.Embedding`s, so their gradients are dense: each step writes and updates all 10,000 rows of
both tables. (The ids are uniform random and fixed, made before timing, as in the Rust bench.)

Besides the step it times the "matmul floor": the step's batched products alone, as the Rust
bench's floor does them (scores [6, 100] x [100, 1], the gradient of h [100, 6] x [6, 1] and that
of the scored rows [6, 1] x [1, 100], per window), into preallocated outputs.

Prints, for 1 and then 2 threads, lines like
    threads=1 step median 1.39 ms min 0.79 ms
    threads=1 matmul floor median 0.14 ms min 0.14 ms
after a line with the torch version and the CPU model.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import header, report, time_ms

VOCAB = 10_000
DIM = 100
CONTEXT = 10
BATCH = 100
NEGATIVES = 5
SCORED = 1 + NEGATIVES


class Cbow(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Embedding(VOCAB, DIM)
        self.output = nn.Embedding(VOCAB, DIM)

    def forward(self, contexts, words):
        h = self.input(contexts).mean(1)
        return torch.bmm(self.output(words), h.unsqueeze(2))


def batched_floor():
    """The step's three batched products, into preallocated outputs."""
    g = torch.Generator().manual_seed(0)
    rows = torch.rand(BATCH, SCORED, DIM, generator=g)
    h = torch.rand(BATCH, DIM, 1, generator=g)
    grad_scores = torch.rand(BATCH, SCORED, 1, generator=g)
    scores = torch.empty(BATCH, SCORED, 1)
    grad_h = torch.empty(BATCH, DIM, 1)
    grad_rows = torch.empty(BATCH, SCORED, DIM)

    def run():
        torch.bmm(rows, h, out=scores)
        torch.bmm(rows.transpose(1, 2), grad_scores, out=grad_h)
        torch.bmm(grad_scores, h.transpose(1, 2), out=grad_rows)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    contexts = torch.randint(0, VOCAB, (BATCH, CONTEXT))
    words = torch.randint(0, VOCAB, (BATCH, SCORED))
    labels = torch.zeros(BATCH, SCORED, 1)
    labels[:, 0] = 1.0
    model = Cbow()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)

    def step():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(contexts, words), labels)
        loss.backward()
        opt.step()
        return loss.item()  # reads the loss, as the Rust bench does

    floor = batched_floor()
    header()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        report("step", threads, *time_ms(step, args.warmup, args.steps))
        report("matmul floor", threads, *time_ms(floor, args.warmup, args.steps))


if __name__ == "__main__":
    main()
