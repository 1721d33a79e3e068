"""Times one MLP training step in PyTorch, float32, on the CPU: the two networks that
benches/train_step.rs times for tapegrad and for hand-written ndarray backprop.

Run from the repository root:

    python benches/pytorch/mlp_step.py [--steps 200] [--warmup 20]

As in benches/train_step.rs:
- two_layer: 784-50-10, sigmoid, batch 100, SGD lr 0.1;
- relu_mlp: 784-256-256-10, ReLU, batch 128, SGD lr 0.01;
- the activation between layers only (the last layer gives logits), weights Xavier-normal
  (std sqrt(2 / (fan_in + fan_out))), biases zero;
- input uniform in [0, 1), labels i % 10 for row i;
- the loss is the batch's mean softmax cross-entropy; one step is forward, loss, backward,
  SGD update, and reading the loss's value (plus zero_grad, which the tape does not need).

Also times each network's "matmul floor": the forward, weight-gradient and input-gradient
products of every layer (the first layer's input gradient is left out, as the hand-written
backprop does), with no allocation.

Prints, for 1 and then 2 threads, lines like
    threads=1 two_layer step median 0.40 ms min 0.35 ms
    threads=1 two_layer matmul floor median 0.20 ms min 0.18 ms
after a line with the torch version and the CPU model.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import header, matmul_floor, report, time_ms

SETUPS = [
    # name, sizes, activation, batch, lr
    ("two_layer", [784, 50, 10], torch.sigmoid, 100, 0.1),
    ("relu_mlp", [784, 256, 256, 10], torch.relu, 128, 0.01),
]


class Mlp(nn.Module):
    def __init__(self, sizes, activation):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.activation = activation
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def gemm_shapes(sizes, batch):
    """(m, k, n) of each product of one step: per layer forward x @ w, weight gradient
    x.T @ dy, and (past the first layer) input gradient dy @ w.T."""
    shapes = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        shapes += [(batch, a, b), (a, batch, b)]
        if i > 0:
            shapes.append((batch, b, a))
    return shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    header()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, sizes, activation, batch, lr in SETUPS:
            torch.manual_seed(0)
            x = torch.rand(batch, sizes[0])
            labels = torch.arange(batch) % sizes[-1]
            model = Mlp(sizes, activation)
            opt = torch.optim.SGD(model.parameters(), lr=lr)

            def step():
                opt.zero_grad()
                loss = F.cross_entropy(model(x), labels)
                loss.backward()
                opt.step()
                return loss.item()

            report(f"{name} step", threads, *time_ms(step, args.warmup, args.steps))
            gemms = matmul_floor(gemm_shapes(sizes, batch))
            report(f"{name} matmul floor", threads, *time_ms(gemms, args.warmup, args.steps))


if __name__ == "__main__":
    main()
