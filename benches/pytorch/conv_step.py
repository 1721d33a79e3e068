"""Times one training step of SimpleConvNet in PyTorch, float32, on the CPU.

Run from the repository root:

    python benches/pytorch/conv_step.py [--steps 200] [--warmup 20]

The network (the textbook's SimpleConvNet), batch 100, input [100, 1, 28, 28]:

    Conv2d(1, 30, 5) (stride 1, no padding) -> ReLU -> MaxPool2d(2, 2)
    -> flatten (30 * 12 * 12 = 4320) -> Linear(4320, 100) -> ReLU -> Linear(100, 10)

One step is zero_grad, forward, mean softmax cross-entropy, backward, SGD(lr=0.1).step().

Besides the step it times the "matmul floor": the step's matrix products alone, as an im2col
formulation would do them (the convolution as [57600, 25] x [25, 30], the weight-gradient and
input-gradient products, and the fully connected layers' forward, weight-gradient and
input-gradient products), with no allocation, so the rest of the step is overhead beyond GEMM.

Prints, for 1 and then 2 threads, lines like
    threads=1 step median 51.20 ms min 49.00 ms
    threads=1 matmul floor median 20.10 ms min 19.80 ms
after a line with the torch version and the CPU model.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import header, matmul_floor, report, time_ms

BATCH = 100


class SimpleConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 30, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(30 * 12 * 12, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


# (m, k, n) of every product in one step, for an im2col convolution: forward a @ w,
# weight gradient a.T @ dy, input gradient dy @ w.T.
ROWS = BATCH * 24 * 24  # one im2col row per output pixel: 57600
GEMMS = [
    # conv1 (5x5x1 = 25 patch entries, 30 channels)
    (ROWS, 25, 30), (25, ROWS, 30), (ROWS, 30, 25),
    # fc1
    (BATCH, 4320, 100), (4320, BATCH, 100), (BATCH, 100, 4320),
    # fc2
    (BATCH, 100, 10), (100, BATCH, 10), (BATCH, 10, 100),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.rand(BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (BATCH,))
    model = SimpleConvNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        return loss.item()  # reads the loss, as the Rust bench does

    gemms = matmul_floor(GEMMS)
    header()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        report("step", threads, *time_ms(step, args.warmup, args.steps))
        report("matmul floor", threads, *time_ms(gemms, args.warmup, args.steps))


if __name__ == "__main__":
    main()
