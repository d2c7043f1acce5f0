"""Cost of basin mapping (attraction-diffusion) against the number of minima.

Run: ``.venv/bin/python benchmarks/map_cost.py [--device cuda] [--threads N] [--quick]``.
Prints a markdown table and writes ``benchmarks/map-cost-<device>.json``.

**The energy.** ``N`` Gaussian wells in ``D`` dimensions (default 12, within the 8-20-D
latent spaces that the ADELM maps cover)::

    U(x) = -sum_k A_k exp(-||x - c_k||^2 / (2 s^2)),    s = 1,  A_k ~ Uniform[1, 1.25]

The centres are laid down one by one, uniformly in a cube, each at least 3.2 s from all
earlier ones (random sequential addition); the cube's volume grows in proportion to ``N``,
so every size has about the same density of wells (median nearest-neighbour distance 3.5-3.8 s
at every size): only the number of minima changes. Checked at every size before timing:
the quench (:func:`~landscape.mapping.minima.quench`, float64) of every centre converges within
0.06 s of it, at a point whose exact Hessian is positive definite; the ``N`` minima are
pairwise more than 3.1 s apart; and the lowest straight-line barrier between a minimum
and its 10 nearest (an upper bound on the saddle, above the higher minimum) is about 0.4,
the median 0.85. So there are exactly ``N`` distinct true minima, known in advance: the
search phase is skipped, the :class:`~landscape.mapping.minima.Minima` are the quenched centres,
and the benchmark times :func:`~landscape.mapping.ad.assign_basins` alone. The energy has a
hand-written input gradient (two matrix products per call), like the library's own
networks. A network's cost per evaluation does not depend on how many minima its
landscape has; so that this one's does not either, every size evaluates the same number
of well slots (``--slots``, default the largest size), the slots beyond ``N`` holding
wells of depth 0, which add exactly nothing.

**The AD settings** (:class:`~landscape.mapping.ad.ADConfig`). ``T = 0.03``: the lowest barriers
between neighbours are 13-16 ``T``, resolvable, and deep enough that the wells stay
metastable against the entropy of 12 dimensions. ``alpha = 3``: the pull over the 1.6 s
from a minimum to the saddle, about 5 ``U/T``, is well below those barriers, so at the
base pull no chain leaves its well and all ``N`` minima found their own basin (at N = 400,
alpha = 6 merges 8 pairs; at alpha = 3 a pair or two of the ~10^4 neighbour pairs of
N = 1600-3200 can still merge). That is the most expensive case for the assignment:
every trial runs until its patience ends. (Barriers between the minima come from the
string method in the mapper, not from attraction-diffusion: they are not part of this
cost.) ``eps`` puts the descent part of a step,
``eps^2/(2T) * curvature``, at 0.25 for the stiffest well (``eps`` ~ 0.11). ``delta`` is a
quarter of the median spacing of neighbouring minima (the mapper's automatic choice;
~0.9). ``max_steps = 1500``, ``patience = 40`` (the ADELM reference code stops a trial
after 40 steps without getting closer; a failed trial here runs ~75 steps),
``attempts = 3`` and ``neighbours = 10`` (as in the ADELM code).

Two ways to run the same trials:

- batched (``round_size = 64`` by default here, as in the tables of docs/benchmarks.md;
  the library's default is now 256; ``batch_size = 4096``; another
  round size with ``--round-size``): all the trials of a round of minima step together;
- one at a time (``round_size = 1``, ``batch_size = 1``): each chain is stepped alone,
  one energy call per step, as the public ADELM code does per trial. It is slow, so it
  runs for the small sizes only (``--single-sizes``); the table reports what was
  measured and leaves the other sizes blank (nothing is extrapolated).

Reported per size: minima, basins found, AD trials (chains, each attempt and direction),
chain steps (their sum), batched calls (energy-and-gradient passes), wall time, and the
speed-up of batched over one-at-a-time where both ran; then the log-log slope of wall
time against ``N``. Timings are single runs after a warm-up (the runs are long; the
counters, not the timings, are exactly reproducible for a given seed and device).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape import Energy
from landscape.mapping.ad import ADConfig, assign_basins
from landscape.mapping.minima import Minima, quench

WIDTH = 1.0  # s
DEPTH = (1.0, 1.25)  # A_k range
MIN_SEPARATION = 3.2  # in units of s
# Cube side for 100 wells in 12 dimensions; scaled by (N / 100)^(1/D) (and for other D
# chosen to keep the same nearest-neighbour spacing, see _side).
TEMPERATURE = 0.03
ALPHA = 3.0
MAX_STEPS = 1500
PATIENCE = 40
ATTEMPTS = 3
NEIGHBOURS = 10


class GaussianWells(nn.Module):
    """``U(x) = -sum_k A_k exp(-||x - c_k||^2 / (2 s^2))`` with a hand-written gradient."""

    def __init__(self, centres: torch.Tensor, depths: torch.Tensor, width: float = WIDTH) -> None:
        super().__init__()
        self.register_buffer("centres", centres)
        self.register_buffer("depths", depths)
        self.register_buffer("c2", (centres * centres).sum(1))
        self.inv_var = 1.0 / (width * width)

    def _weights(self, x: torch.Tensor) -> torch.Tensor:
        # ||x - c||^2 by expansion: one matrix product instead of a [B, N, D] tensor.
        d2 = (x * x).sum(1, keepdim=True) - 2.0 * (x @ self.centres.T) + self.c2
        return self.depths * torch.exp(-0.5 * self.inv_var * d2.clamp_min(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self._weights(x).sum(1)

    def value_and_grad_fn(self):
        def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                w = self._weights(x)
                u = -w.sum(1)
                g = self.inv_var * (w.sum(1, keepdim=True) * x - w @ self.centres)
            return u, g

        return value_and_grad

    def hessian(self, x: torch.Tensor) -> torch.Tensor:
        """Exact Hessians at the points ``x`` [B, D] -> [B, D, D]."""
        w = self._weights(x)  # [B, N]
        diff = x[:, None, :] - self.centres[None]  # [B, N, D]
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        outer = torch.einsum("bn,bni,bnj->bij", w, diff, diff) * self.inv_var**2
        return self.inv_var * w.sum(1)[:, None, None] * eye - outer


def _side(n: int, dim: int) -> float:
    """Cube side for ``n`` wells in ``dim`` dimensions.

    Chosen so the typical nearest-neighbour distance is about 3.4 s (just above the
    3 s minimum) for every ``n`` and ``dim``: volume per well ``(3.4 s)^D / v_D`` times a
    packing factor (``v_D`` the unit ball's volume).
    """
    v_d = math.pi ** (dim / 2) / math.gamma(dim / 2 + 1)
    per_well = (3.0 * WIDTH) ** dim * v_d  # a ball of radius 3 s per well
    return (n * per_well) ** (1.0 / dim)


def make_centres(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` centres at least MIN_SEPARATION apart (random sequential addition) and depths."""
    gen = torch.Generator().manual_seed(seed)
    side = _side(n, dim)
    kept = torch.empty((0, dim), dtype=torch.float64)
    tries = 0
    while kept.shape[0] < n:
        cand = (torch.rand((4 * n, dim), generator=gen, dtype=torch.float64) - 0.5) * side
        for c in cand:
            if kept.shape[0] == 0 or bool(torch.cdist(c[None], kept).min() >= MIN_SEPARATION):
                kept = torch.cat([kept, c[None]])
                if kept.shape[0] == n:
                    break
        tries += 1
        if tries > 50:
            raise RuntimeError(f"could not place {n} wells {MIN_SEPARATION} apart in a cube of side {side:.2f}")
    depths = DEPTH[0] + (DEPTH[1] - DEPTH[0]) * torch.rand(n, generator=gen, dtype=torch.float64)
    return kept, depths


def build(n: int, dim: int, device: torch.device, seed: int, slots: int | None = None) -> tuple[Energy, Minima, dict]:
    """The energy (float32 on ``device``) and its ``n`` minima, verified distinct and true.

    The timed energy evaluates ``slots`` (>= n) wells, the ones beyond ``n`` of depth 0
    (they add exactly nothing), so that one evaluation costs the same at every ``n``.
    """
    slots = max(slots or n, n)
    centres, depths = make_centres(n, dim, seed)
    # Quench in float64 for exact minima, then check them.
    exact = GaussianWells(centres, depths).to(device)
    e64 = Energy(exact, (dim,), device=device, dtype=torch.float64, name="gaussian wells")
    q = quench(e64, centres.to(device), max_steps=5000, grad_tol=1e-6)
    moved = torch.linalg.vector_norm(q.x - centres.to(device), dim=1)
    eig_min = torch.linalg.eigvalsh(exact.hessian(q.x)).min(1).values
    d = torch.cdist(q.x, q.x)
    d.fill_diagonal_(math.inf)
    nn_dist = d.min(1).values
    # Lowest straight-line barrier between neighbours: the highest U on the segment
    # between two minima, above the higher of the two (an upper bound on their saddle).
    k = min(NEIGHBOURS, n - 1)
    near = d.topk(k, largest=False).indices  # [n, k]
    t = torch.linspace(0.0, 1.0, 33, dtype=torch.float64, device=device)
    a, b = q.x[:, None, None, :], q.x[near][:, :, None, :]
    seg = (a + t[None, None, :, None] * (b - a)).reshape(-1, dim)
    with torch.no_grad():
        u_seg = torch.cat([exact(part) for part in seg.split(8192)])
    peak = u_seg.reshape(n, k, -1).max(2).values
    line_barrier = peak - torch.maximum(q.energy[:, None], q.energy[near])
    check = {
        "min_line_barrier": float(line_barrier.min()),
        "median_line_barrier": float(line_barrier.median()),
        "converged": int(q.converged.sum()),
        "max_moved": float(moved.max()),
        "min_hessian_eigenvalue": float(eig_min.min()),
        "min_pair_distance": float(nn_dist.min()),
        "median_nn_distance": float(nn_dist.median()),
    }
    if not (check["converged"] == n and check["max_moved"] < 0.5 * WIDTH and check["min_hessian_eigenvalue"] > 0
            and check["min_pair_distance"] > 2.5 * WIDTH):
        raise RuntimeError(f"the {n} well centres do not quench to {n} distinct minima: {check}")
    order = torch.argsort(q.energy, stable=True)
    pad = slots - n
    model = GaussianWells(
        torch.cat([centres, centres.new_zeros(pad, dim)]).float(), torch.cat([depths, depths.new_zeros(pad)]).float()
    ).to(device)
    energy = Energy(model, (dim,), device=device, dtype=torch.float32, name=f"{n} gaussian wells in {dim}-D")
    minima = Minima(
        x=q.x[order].float(),
        energy=q.energy[order],
        hits=torch.ones(n, dtype=torch.int64, device=device),
        grad_norm=q.grad_norm[order],
    )
    # the stiffest well sets eps; the spacing sets delta
    check["max_curvature"] = float(torch.linalg.eigvalsh(exact.hessian(q.x)).max())
    return energy, minima, check


def ad_config(check: dict, one_at_a_time: bool, round_size: int = 64) -> ADConfig:
    eps = math.sqrt(2.0 * 0.25 * TEMPERATURE / check["max_curvature"])
    sizes = {"round_size": 1, "batch_size": 1} if one_at_a_time else {"round_size": round_size}
    return ADConfig(
        temperature=TEMPERATURE,
        alpha=ALPHA,
        eps=eps,
        max_steps=MAX_STEPS,
        patience=PATIENCE,
        delta=0.25 * check["median_nn_distance"],
        attempts=ATTEMPTS,
        neighbours=NEIGHBOURS,
        **sizes,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(energy: Energy, minima: Minima, config: ADConfig, seed: int) -> dict:
    device = energy.device
    gen = torch.Generator(device=device).manual_seed(seed)
    _sync(device)
    t0 = time.perf_counter()
    basins, records = assign_basins(energy, minima, config, gen)
    _sync(device)
    seconds = time.perf_counter() - t0
    finite = np.isfinite(records.barrier)
    return {
        "basins": basins.n_basins,
        "trials": basins.attrs["trials"],
        "chain_steps": basins.attrs["chain_steps"],
        "batches": basins.attrs["batches"],
        "seconds": seconds,
        "ms_per_call": 1e3 * seconds / max(basins.attrs["batches"], 1),
        "pairs": len(records),
        "pairs_connected": int(finite.sum()),
        "median_pair_alpha": float(np.median(records.alpha[finite])) if finite.any() else math.nan,
    }


def loglog_slope(ns: list[int], ts: list[float]) -> float:
    if len(ns) < 2:
        return math.nan
    lx = [math.log(n) for n in ns]
    ly = [math.log(t) for t in ts]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--sizes", type=_ints, default=None, help="numbers of minima, batched (default 50,100,200,400)")
    parser.add_argument("--single-sizes", type=_ints, default=None,
                        help="numbers of minima also run one chain at a time (default 50,100; empty: none)")
    parser.add_argument("--dim", type=int, default=12, help="dimension of the space (default 12)")
    parser.add_argument("--slots", type=int, default=None,
                        help="wells the energy evaluates at every size, the unused of depth 0 (default: the largest size)")
    parser.add_argument("--round-size", type=int, default=64,
                        help="ADConfig.round_size of the batched runs (default 64, the library's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="sizes 10,25 and one-at-a-time 10 (a smoke test)")
    parser.add_argument("--out", default=None, help="json results (default benchmarks/map-cost-<device>.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = args.sizes or ([10, 25] if args.quick else [50, 100, 200, 400])
    singles = args.single_sizes if args.single_sizes is not None else ([10] if args.quick else [50, 100])
    sizes = sorted(set(sizes) | set(singles))
    slots = max([args.slots or 0, *sizes])
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    print(f"# attraction-diffusion cost on {machine['device']} ({machine['threads']} threads, torch {machine['torch']})\n")
    print(f"{args.dim}-D, every energy evaluation over {slots} well slots, batched round_size {args.round_size}\n")

    # Warm-up (allocator, kernels, thread pool): a small map, not timed.
    energy, minima, check = build(12, args.dim, device, args.seed + 1000, slots)
    run_one(energy, minima, ad_config(check, False, args.round_size), args.seed)

    rows = []
    for n in sizes:
        energy, minima, check = build(n, args.dim, device, args.seed + n, slots)
        config = ad_config(check, False, args.round_size)
        row = {"n": n, "dim": args.dim, "slots": slots, "check": check, "config": config.__dict__}
        row["batched"] = run_one(energy, minima, config, args.seed)
        if n in singles:
            row["single"] = run_one(energy, minima, ad_config(check, True), args.seed)
        rows.append(row)
        b, s = row["batched"], row.get("single")
        print(f"N={n}: batched {b['seconds']:.1f} s, {b['basins']} basins"
              + (f"; one at a time {s['seconds']:.1f} s, {s['basins']} basins" if s else ""), file=sys.stderr, flush=True)

    print("| N minima | mode | basins found | AD trials | chain steps | batched calls | wall (s) | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for mode in ("batched", "single"):
            r = row.get(mode)
            if r is None:
                continue
            speed = ""
            if mode == "batched" and "single" in row:
                speed = f"{row['single']['seconds'] / r['seconds']:.1f}x"
            label = "batched" if mode == "batched" else "one at a time"
            print(f"| {row['n']} | {label} | {r['basins']} | {r['trials']:,} | {r['chain_steps']:,} | "
                  f"{r['batches']:,} | {r['seconds']:.1f} | {speed} |")
    slopes = {}
    for mode in ("batched", "single"):
        have = [row for row in rows if mode in row]
        ns = [row["n"] for row in have]
        slopes[mode] = {
            "seconds": loglog_slope(ns, [row[mode]["seconds"] for row in have]),
            "trials": loglog_slope(ns, [row[mode]["trials"] for row in have]),
            "chain_steps": loglog_slope(ns, [row[mode]["chain_steps"] for row in have]),
            "batches": loglog_slope(ns, [row[mode]["batches"] for row in have]),
            "sizes": ns,
        }
    print()
    for mode, label in (("batched", "batched"), ("single", "one at a time")):
        s = slopes[mode]
        if len(s["sizes"]) >= 2:
            print(f"log-log slope vs N, {label} (N = {', '.join(map(str, s['sizes']))}): wall time "
                  f"{s['seconds']:.2f}, trials {s['trials']:.2f}, chain steps {s['chain_steps']:.2f}, "
                  f"batched calls {s['batches']:.2f}")
    results = {"machine": machine, "command": " ".join(sys.argv[1:]), "rows": rows, "slopes": slopes}
    out = Path(args.out) if args.out else ROOT / "benchmarks" / f"map-cost-{device.type}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
