"""Timing helpers shared by conv_step.py, mlp_step.py, cbow_step.py and lstm_step.py."""

import statistics
import subprocess
import time

import torch


def cpu_model():
    """The CPU's model name as lscpu reports it (or 'unknown')."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def time_ms(fn, warmup=20, steps=200):
    """Runs `fn` `warmup` times untimed, then `steps` times timed one by one.

    Returns (median, min) in milliseconds.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def matmul_floor(shapes):
    """A function doing the products `a @ b` for each (m, k, n) in `shapes`, into
    preallocated outputs, so that timing it gives the GEMM time alone."""
    g = torch.Generator().manual_seed(0)
    operands = [
        (torch.rand(m, k, generator=g), torch.rand(k, n, generator=g), torch.empty(m, n))
        for m, k, n in shapes
    ]

    def run():
        for a, b, out in operands:
            torch.mm(a, b, out=out)

    return run


def report(label, threads, median, minimum):
    print(f"threads={threads} {label} median {median:.2f} ms min {minimum:.2f} ms", flush=True)


def header():
    print(f"torch {torch.__version__}, CPU: {cpu_model()}")
