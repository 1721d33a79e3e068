"""Reference fixture for the elementwise activations of the attention chapter: PyTorch's values
and first, second and third derivatives of erf, gelu (exact and tanh) and silu, in float64.

Run from the repository root, with a Python that has torch and safetensors
(see benches/pytorch/README.md):

    python benches/pytorch/make_activation_fixture.py

Written with torch 2.15.0 (CPU). It writes tests/fixtures/activations.safetensors, float64:

    x                 [N]  the points: a grid on [-6, 6] and a few far ones (±10, ±30)
    <op>.y            [N]  op(x)
    <op>.d1           [N]  op'(x), from autograd (d sum(op(x)) / dx)
    <op>.d2           [N]  op''(x), autograd through the first derivative (create_graph)
    <op>.d3           [N]  op'''(x), once more

for <op> in erf, gelu, gelu_tanh (torch.nn.functional.gelu with approximate='tanh'), silu.
tests/pytorch_activations.rs computes the same with tapegrad's Var::erf, gelu, gelu_tanh and
silu and their gradients taken with create_graph.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OPS = {
    "erf": torch.erf,
    "gelu": lambda x: F.gelu(x),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


def main():
    grid = torch.linspace(-6.0, 6.0, 97, dtype=torch.float64)
    far = torch.tensor([-30.0, -10.0, 10.0, 30.0], dtype=torch.float64)
    x = torch.cat([grid, far])
    tensors = {"x": x.clone()}
    for name, op in OPS.items():
        xv = x.clone().requires_grad_(True)
        y = op(xv)
        (d1,) = torch.autograd.grad(y.sum(), xv, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), xv, create_graph=True)
        (d3,) = torch.autograd.grad(d2.sum(), xv)
        for key, value in [("y", y), ("d1", d1), ("d2", d2), ("d3", d3)]:
            tensors[f"{name}.{key}"] = value.detach().contiguous()
    out = Path("tests/fixtures/activations.safetensors")
    save_file(tensors, str(out))
    print(f"wrote {out} ({len(tensors)} tensors of {len(x)} points)")


if __name__ == "__main__":
    main()
