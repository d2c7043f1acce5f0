"""Speed benchmarks: Langevin sampler overhead per network, and training time per update.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/run.py [--device cuda] [--quick]``).
Prints a markdown table and writes ``benchmarks/results-<device>.json``.

1. Langevin steps per second at batch 100 for each network, against a bare
   forward + input-gradient of the same network (autograd, parameters frozen), and
   against one call of the energy-and-gradient function the sampler uses (the
   hand-written path for toy and digits). Overhead = ``sampler time per step / that
   time - 1``. Against the bare autograd call it is negative for toy and digits: the
   sampler is faster than plain autograd.
2. Training time per update of the rings convergent preset (ToyNet, batch 100, L = 500),
   against a straightforward autograd loop with the same dynamics written the way
   research EBM code usually is (1x1 Conv2d ToyNet, ``torch.autograd.grad`` per Langevin
   step with parameters requiring grad, in-place ``.data`` updates).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape import Energy, sample  # noqa: E402
from landscape.train.config import get_preset, lr_at  # noqa: E402
from landscape.train.nets import build_model  # noqa: E402

NETWORKS = {
    "toy": {"shape": (2,), "kwargs": {}},
    "digits": {"shape": (1, 8, 8), "kwargs": {}},
    "vanilla": {"shape": (3, 32, 32), "kwargs": {}},
    "nonlocal": {"shape": (3, 32, 32), "kwargs": {}},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, repeats: int, device: torch.device, warmup: int = 3) -> float:
    """Median seconds per call over ``repeats`` timed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def bench_sampler(arch: str, device: torch.device, batch: int, steps: int, repeats: int) -> dict:
    spec = NETWORKS[arch]
    torch.manual_seed(0)
    model = build_model(arch, dict(spec["kwargs"])).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand((batch, *spec["shape"]), device=device) * 2 - 1

    def bare() -> None:
        xr = x.detach().requires_grad_(True)
        model(xr).sum().backward()

    def bare_many() -> None:
        for _ in range(steps):
            bare()

    energy = Energy(model, spec["shape"], data_range=(-1, 1), device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    vg = energy.value_and_grad_fn()  # what the sampler calls: the hand-written path if any

    def calls_many() -> None:
        for _ in range(steps):
            vg(x)

    def chains() -> None:
        sample(energy, x, steps, eps=0.01, tau=1.0, generator=gen)

    t_bare = _time(bare_many, repeats, device) / steps
    t_call = _time(calls_many, repeats, device) / steps
    # sample() evaluates steps + 1 gradients (the start too): per-step cost counts them all
    t_sampler = _time(chains, repeats, device) / (steps + 1)
    return {
        "arch": arch,
        "batch": batch,
        "bare_fwd_bwd_ms": 1e3 * t_bare,
        "energy_grad_call_ms": 1e3 * t_call,
        "sampler_step_ms": 1e3 * t_sampler,
        "sampler_steps_per_s": 1.0 / t_sampler,
        "overhead_vs_bare": t_sampler / t_bare - 1.0,
        "overhead_vs_call": t_sampler / t_call - 1.0,
    }


class ConvToyNet(nn.Module):
    """ToyNet as 1x1 convolutions on [B, 2, 1, 1], the usual research-code layout."""

    def __init__(self, n_f: int = 32, leak: float = 0.05) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(2, n_f, 1), nn.LeakyReLU(leak),
            nn.Conv2d(n_f, 2 * n_f, 1), nn.LeakyReLU(leak),
            nn.Conv2d(2 * n_f, 2 * n_f, 1), nn.LeakyReLU(leak),
            nn.Conv2d(2 * n_f, 2 * n_f, 1), nn.LeakyReLU(leak),
            nn.Conv2d(2 * n_f, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x).squeeze()


def bench_training(device: torch.device, updates: int, baseline_updates: int) -> dict:
    """Seconds per update: our loop's update vs a plain autograd loop, same dynamics."""
    from landscape import data as datasets

    cfg = get_preset("toy-convergent")
    eps, L, batch = cfg.sampler.epsilon, cfg.sampler.steps, cfg.train.batch_size
    ds = datasets.load("rings")
    gen = torch.Generator().manual_seed(0)

    # ours: the library's update (fast input gradient, frozen parameters)
    torch.manual_seed(0)
    model = build_model("toy", {"energy_scale": cfg.energy_scale()}).to(device)
    energy = Energy(model, (2,), data_range=ds.range, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=lr_at(cfg, 0))
    bank = (2 * torch.rand(10000, 2) - 1).to(device)  # the preset's bank: uniform in [-1, 1]^2
    dgen = torch.Generator(device=device).manual_seed(1)

    def ours() -> None:
        x_pos = ds.sample(batch, gen).to(device)
        idx = torch.randperm(bank.shape[0], generator=dgen, device=device)[:batch]
        res = sample(energy, bank[idx], L, eps, 1.0, generator=dgen)
        bank[idx] = res.x
        u = model(torch.cat([x_pos, res.x]))
        loss = u[:batch].mean() - u[batch:].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # baseline: network output f = U * eps^2 / 2, update x += -grad f + eps z, loss * 2/eps^2
    torch.manual_seed(0)
    net = ConvToyNet().to(device)
    opt_b = torch.optim.SGD(net.parameters(), lr=lr_at(cfg, 0))
    bank_b = (2 * torch.rand(10000, 2, 1, 1) - 1).to(device)

    def baseline() -> None:
        x_pos = ds.sample(batch, gen).reshape(batch, 2, 1, 1).to(device)
        idx = torch.randperm(bank_b.shape[0])[:batch]
        x = torch.autograd.Variable(bank_b[idx].clone(), requires_grad=True)
        r = torch.zeros(1, device=device)
        for _ in range(L):
            g = torch.autograd.grad(net(x).sum(), [x])[0]
            x.data += -g + eps * torch.randn_like(x)
            r += g.view(batch, -1).norm(dim=1).mean()
        bank_b[idx] = x.detach()
        loss = (net(x_pos).mean() - net(x.detach()).mean()) * 2 / eps**2
        opt_b.zero_grad()
        loss.backward()
        opt_b.step()

    t_ours = _time(ours, updates, device, warmup=2)
    t_base = _time(baseline, baseline_updates, device, warmup=1)
    return {
        "preset": "toy-convergent",
        "batch": batch,
        "L": L,
        "ours_s_per_update": t_ours,
        "baseline_s_per_update": t_base,
        "speedup": t_base / t_ours,
        "hours_for_200k_updates_ours": t_ours * 200000 / 3600,
        "hours_for_200k_updates_baseline": t_base * 200000 / 3600,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test, noisy numbers)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--only", choices=["sampler", "training"], default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    results: dict = {"machine": machine, "sampler": [], "training": None}
    print(f"# ebm-landscape benchmarks on {machine['device']} ({machine['threads']} threads, torch {machine['torch']})\n")
    if args.only in (None, "sampler"):
        print("| network | batch | bare fwd+bwd (ms) | energy+grad call (ms) | sampler step (ms) | steps/s "
              "| vs bare fwd+bwd | vs energy+grad call |")
        print("|---|---|---|---|---|---|---|---|")
        for arch in NETWORKS:
            heavy = arch in ("vanilla", "nonlocal") and device.type == "cpu"
            steps = 5 if heavy else 100
            repeats = (2 if heavy else 5) if args.quick else (3 if heavy else 15)
            r = bench_sampler(arch, device, 100, steps, repeats)
            results["sampler"].append(r)
            print(
                f"| {arch} | {r['batch']} | {r['bare_fwd_bwd_ms']:.3f} | {r['energy_grad_call_ms']:.3f} | "
                f"{r['sampler_step_ms']:.3f} | {r['sampler_steps_per_s']:.0f} | {100 * r['overhead_vs_bare']:+.1f}% | "
                f"{100 * r['overhead_vs_call']:+.1f}% |",
                flush=True,
            )
    if args.only in (None, "training"):
        r = bench_training(device, updates=3 if args.quick else 10, baseline_updates=1 if args.quick else 3)
        results["training"] = r
        print(
            f"\nrings convergent preset (ToyNet, batch {r['batch']}, L = {r['L']}): "
            f"{r['ours_s_per_update'] * 1e3:.1f} ms/update vs {r['baseline_s_per_update'] * 1e3:.1f} ms/update "
            f"for the plain autograd loop: {r['speedup']:.1f}x faster; 200k updates take "
            f"{r['hours_for_200k_updates_ours']:.1f} h instead of {r['hours_for_200k_updates_baseline']:.1f} h"
        )
    out = ROOT / "benchmarks" / f"results-{device.type}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
