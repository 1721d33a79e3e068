"""Reference fixture for the convolutional layers: a small network and its results in PyTorch.

Run from the repository root, with a Python that has torch, safetensors and numpy
(see benches/pytorch/README.md):

    python benches/pytorch/make_conv_fixture.py

Written with torch 2.15.0 (CPU). The output is deterministic (torch.manual_seed(0)); on
another torch version or machine the values may differ in the last bits, which is within
any sensible test tolerance.

It writes two files:

- tests/fixtures/conv_net.safetensors: the model's state_dict (parameters and BatchNorm
  running statistics), in float32, under PyTorch's names (``conv1.weight``, ``bn1.running_mean``...),
  with the Linear weight transposed to tapegrad's (inputs, outputs) layout.
- tests/fixtures/conv_net_io.safetensors: an input, labels, and what PyTorch computes from them:
    input                      [2, 3, 12, 12]  the network's input
    labels                     [2]             class indices, stored as float32
    logits_eval                [2, 5]          output in eval mode (BatchNorm uses running stats)
    logits_train               [2, 5]          output in train mode (BatchNorm uses batch stats)
    after.bn1.running_mean     [8]             running stats after that one train forward
    after.bn1.running_var      [8]             (momentum 0.1, unbiased variance)
    grad.<parameter name>      as the param    d cross_entropy(logits_train, labels) / d param
    grad.input                 [2, 3, 12, 12]  the same loss's gradient w.r.t. the input

The gradients come from the same train-mode forward as logits_train: one forward, one backward.
In train mode BatchNorm subtracts the batch mean, which cancels conv1's bias exactly, so
grad.conv1.bias is rounding noise (about 1e-9): compare it with an absolute tolerance.
Loading conv_net.safetensors and running the same input must reproduce all of the above.
"""

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

FIXTURES = Path("tests/fixtures")


class ConvFixtureNet(nn.Module):
    """Exercises every conv-family layer once, with shapes that catch off-by-one errors."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)                     # 12 -> 12
        self.bn1 = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(2)                                    # 12 -> 6
        self.conv2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)  # 6 -> 6
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)  # 6 -> 12
        self.pool2 = nn.AvgPool2d(3, stride=2, padding=1)   # 12 -> 6, count_include_pad default True
        self.gap = nn.AdaptiveAvgPool2d((4, 4))             # 6 -> 4, overlapping bins
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.up(x))
        x = self.gap(self.pool2(x))
        return self.fc(torch.flatten(x, 1))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread: reductions always summed in the same order
    model = ConvFixtureNet().float()

    # Make eval mode a real test: with a fresh BatchNorm (mean 0, var 1, weight 1, bias 0)
    # eval mode is nearly the identity. Train-mode passes on random data, scaled and shifted
    # per channel so the batch statistics are far from 0 and 1, give non-trivial running
    # statistics (each pass moves them 10% of the way), and random affine parameters
    # replace the ones and zeros.
    model.train()
    shift = torch.tensor([2.0, -1.5, 1.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        for _ in range(10):
            model(torch.randn(4, 3, 12, 12) * 3.0 + shift)
        model.bn1.weight.copy_(torch.rand(8) + 0.5)   # in [0.5, 1.5)
        model.bn1.bias.copy_(torch.randn(8) * 0.5)

    # The model file. bn1.num_batches_tracked is an int64 counter that only matters for
    # momentum=None (cumulative averaging); the Rust side keeps float buffers only, so the
    # key is left out rather than stored in a dtype it would not read.
    state = {
        name: tensor.detach().clone().contiguous()
        for name, tensor in model.state_dict().items()
        if name != "bn1.num_batches_tracked"
    }
    # tapegrad's Linear keeps the course's layout, y = x·W + b with W of shape (inputs, outputs),
    # which is the transpose of PyTorch's (outputs, inputs): store Linear weights transposed.
    # Convolution weights need nothing: both use [O, C/groups, KH, KW] (and [C, O/groups, KH, KW]
    # for the transposed convolution).
    state["fc.weight"] = state["fc.weight"].t().contiguous()
    assert all(t.dtype == torch.float32 for t in state.values())
    FIXTURES.mkdir(parents=True, exist_ok=True)
    save_file(state, str(FIXTURES / "conv_net.safetensors"))

    # The input and labels.
    x = torch.randn(2, 3, 12, 12)
    labels = torch.tensor([1.0, 3.0])
    io = {"input": x.clone(), "labels": labels.clone()}

    # Eval mode: BatchNorm normalizes with the running statistics and does not update them.
    model.eval()
    with torch.no_grad():
        io["logits_eval"] = model(x)

    # Train mode: BatchNorm normalizes with the batch's statistics (biased variance) and
    # updates its running statistics once: running = 0.9 * running + 0.1 * batch, with the
    # batch's unbiased variance for running_var. The same forward feeds the backward.
    model.train()
    x_leaf = x.clone().requires_grad_(True)
    logits = model(x_leaf)
    io["logits_train"] = logits.detach().clone()
    io["after.bn1.running_mean"] = model.bn1.running_mean.detach().clone()
    io["after.bn1.running_var"] = model.bn1.running_var.detach().clone()

    # Mean softmax cross-entropy over the batch, backward once.
    loss = F.cross_entropy(logits, labels.long())
    loss.backward()
    for name, p in model.named_parameters():
        io[f"grad.{name}"] = p.grad.detach().clone()
    io["grad.fc.weight"] = io["grad.fc.weight"].t()  # the Linear layout, as above
    io["grad.input"] = x_leaf.grad.detach().clone()

    io = {k: v.contiguous() for k, v in io.items()}
    assert all(t.dtype == torch.float32 for t in io.values())
    save_file(io, str(FIXTURES / "conv_net_io.safetensors"))

    print(f"torch {torch.__version__}")
    print(f"loss (train mode) {loss.item():.6f}")
    for file, tensors in [("conv_net.safetensors", state), ("conv_net_io.safetensors", io)]:
        print(f"{FIXTURES / file}:")
        for name, t in tensors.items():
            print(f"  {name:28} {list(t.shape)}")


if __name__ == "__main__":
    main()
