"""Training throughput of nasforge's trainer against minimal hand-written PyTorch loops (target >= 0.95).

Same model weights, data, batch size, optimiser and memory format; runs alternate A/B in one process
so machine noise hits both alike; each measurement is a sustained window (one epoch of 20k images).

    .venv/bin/python benchmarks/throughput.py            # writes benchmarks/results/throughput.json
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from _common import write_result
from torch import nn

from nasforge.data import load_dataset
from nasforge.evaluate.trainer import Recipe, train
from nasforge.final.references import baseline_model
from nasforge.space.chain import ChainSpace, chain_sample


def bare_tensor_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int, lr: float) -> None:
    """The fastest loop a PyTorch user would write: in-memory tensors, index slicing, Adam."""
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    perm = torch.randperm(len(x))
    for i in range(0, len(x), bs):
        idx = perm[i:i + bs]
        xb = x[idx].contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bare_dataloader_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int, lr: float) -> None:
    """The textbook loop: TensorDataset + DataLoader(shuffle=True)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=bs, shuffle=True)
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="training images per measurement")
    ap.add_argument("--reps", type=int, default=4)
    args = ap.parse_args()
    data = load_dataset("fashion_mnist")
    x, y = data.x_train[: args.n].contiguous(), data.y_train[: args.n].contiguous()
    space = ChainSpace(max_blocks=6, widths=(32, 64))
    conv = {"type": "conv", "kernel": 3, "stride": 1, "padding": "same", "act": "relu", "bn": True}
    searched_like = chain_sample(space, [{**conv, "width": 32}, {"type": "pool", "pool": "max", "pool_size": 2},
                                         {**conv, "width": 64}, {"type": "pool", "pool": "max", "pool_size": 2},
                                         {**conv, "width": 64}], head="gap")
    models = {"baseline_2conv": lambda: baseline_model((1, 28, 28), 10),
              "conv_bn_3x": lambda: space.build(searched_like, (1, 28, 28), 10)}
    recipe = Recipe(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cosine", batch_size=128)
    results = {}
    for name, make in models.items():
        torch.manual_seed(0)
        init = make()
        runners = {
            "nasforge": lambda m: train(m, x, y, epochs=1, recipe=recipe, seed=0),
            "bare_tensor": lambda m: bare_tensor_loop(m, x, y, 128, 1e-3),
            "bare_dataloader": lambda m: bare_dataloader_loop(m, x, y, 128, 1e-3),
        }
        times: dict[str, list[float]] = {k: [] for k in runners}
        for rep in range(args.reps + 1):  # the first round warms up and is dropped
            order = list(runners) if rep % 2 == 0 else list(reversed(runners))
            for k in order:
                m = copy.deepcopy(init)
                t0 = time.perf_counter()
                runners[k](m)
                if rep > 0:
                    times[k].append(time.perf_counter() - t0)
        ips = {k: args.n / statistics.median(v) for k, v in times.items()}
        results[name] = {
            "images_per_second": {k: round(v, 1) for k, v in ips.items()},
            "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "ratio_vs_bare_tensor": round(ips["nasforge"] / ips["bare_tensor"], 4),
            "ratio_vs_bare_dataloader": round(ips["nasforge"] / ips["bare_dataloader"], 4),
        }
        print(name, results[name]["images_per_second"], "ratio", results[name]["ratio_vs_bare_tensor"], flush=True)
    out = write_result("throughput", "trainer throughput vs bare PyTorch loops (target ratio >= 0.95)",
                       "python benchmarks/throughput.py", {"n_images": args.n, "reps": args.reps, "models": results})
    print("wrote", out)


if __name__ == "__main__":
    main()
