"""Kill -9 at random points, then resume: shared by ``tests/test_faults.py`` (a few points)
and ``benchmarks/kill_resume.py`` (many).

Each scenario runs a real ``landscape`` command in a subprocess, kills it with SIGKILL at a
random moment, reruns it with ``--resume`` until it finishes, and compares a digest of the
result (every dataset's bytes and the attributes that are not clocks) with that of an
uninterrupted run of the same command.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

#: A tilted 2-D double well per coordinate: four minima.
WELLS = """
import torch

def wells(x):
    return ((x ** 2 - 1) ** 2 + torch.tensor([0.25, 0.5], dtype=x.dtype) * x).sum(1)
"""

MAP = ["map", "--energy", "pot.py:wells", "--shape", "2", "--box", "-1.6", "1.6", "--float64", "--temperature",
       "0.05", "--chains", "64", "--steps", "100", "--rounds", "3", "--max-steps", "300", "--patience", "50",
       "--attempts", "1", "--neighbours", "3", "--out", "w.h5", "--quiet"]
FUNNEL = ["funnel", "w.h5", "--energy", "pot.py:wells", "--chains", "200", "--steps", "300",
          "--noise", "0,1,2,4,8,16", "--quiet"]
TRAIN = ["train", "--preset", "toy-convergent", "--out", "t.pt", "--steps", "24", "--quiet",
         "--set", "train.ckpt_every=3", "--set", "train.plot_every=1000", "--set", "train.eval_every=1000"]
TRAIN_RESUME = ["train", "--out", "t.pt", "--resume", "--quiet"]

#: Attributes that record when or how fast, not what.
CLOCKS = ("created", "updated", "seconds", "saved")


def landscape() -> list[str]:
    """The command line that runs ``landscape`` with this interpreter."""
    return [sys.executable, "-c", "import sys; from landscape.cli.main import main; sys.exit(main())"]


def h5_digest(path: Path, groups: tuple[str, ...] | None = None) -> str:
    """sha256 over every dataset (name, dtype, shape, bytes) and every attribute but the
    clocks, optionally only under ``groups``."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        items: list[tuple[str, object]] = [("/", f)]
        f.visititems(lambda name, item: items.append((name, item)))
        for name, item in sorted(items, key=lambda t: t[0]):
            if groups is not None and name != "/" and not name.startswith(groups):
                continue
            h.update(name.encode())
            for key in sorted(item.attrs):
                if key not in CLOCKS:
                    h.update(key.encode() + repr(item.attrs[key]).encode())
            if isinstance(item, h5py.Dataset):
                data = np.ascontiguousarray(item[()])
                h.update(f"{data.dtype}{data.shape}".encode() + data.tobytes())
    return h.hexdigest()


def checkpoint_digest(path: Path) -> str:
    """sha256 over a checkpoint's step and weights."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256(str(ckpt["step"]).encode())
    for key, value in sorted(ckpt["state_dict"].items()):
        h.update(key.encode() + value.detach().cpu().numpy().tobytes())
    return h.hexdigest()


@dataclass
class Scenario:
    name: str
    first: list[str]  # the command
    again: list[str]  # the command that continues it
    output: str
    digest: object  # Path -> str

    def result(self, folder: Path) -> str:
        return self.digest(folder / self.output)  # type: ignore[operator]


SCENARIOS = {
    "train": Scenario("train", TRAIN, TRAIN_RESUME, "t.pt", checkpoint_digest),
    "map": Scenario("map", MAP, [*MAP, "--resume"], "w.h5", h5_digest),
    "funnel": Scenario("funnel", FUNNEL, [*FUNNEL, "--resume"], "w.h5",
                       lambda p: h5_digest(p, ("funnel", "minima", "basins", "levels", "tree", "barriers"))),
}


def prepare(folder: Path, name: str, base: Path | None = None) -> None:
    """A folder for one run of scenario ``name``: the potential, and for the funnel the
    map it probes (copied from ``base``, the folder of a finished map run)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pot.py").write_text(WELLS)
    if name == "funnel":
        assert base is not None
        shutil.copy(base / "w.h5", folder / "w.h5")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run(folder: Path, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*landscape(), *args], cwd=folder, capture_output=True, text=True, timeout=timeout,
                          env=_env())


def uninterrupted(folder: Path, name: str) -> tuple[str, float]:
    """The digest of an uninterrupted run in ``folder`` (already prepared) and its wall time."""
    t0 = time.perf_counter()
    done = run(folder, SCENARIOS[name].first)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr.strip()}")
    return SCENARIOS[name].result(folder), time.perf_counter() - t0


def killed_then_resumed(folder: Path, name: str, at: float) -> tuple[str, bool, str]:
    """Run scenario ``name`` in ``folder``, SIGKILL it after ``at`` seconds (if it is still
    running), then continue it until it finishes. Returns (digest, whether it was killed,
    what the kill left: lock, progress and temporary files, and the output if it existed)."""
    s = SCENARIOS[name]
    before = (folder / s.output).exists()
    proc = subprocess.Popen([*landscape(), *s.first], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env())
    killed = False
    try:
        proc.wait(timeout=at)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = True
    left = sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "partial" in p.name)
    if not before and (folder / s.output).exists():
        left.append(s.output)
    for _ in range(3):
        again = s.again if name != "train" or (folder / s.output).exists() else s.first
        done = run(folder, again)
        if done.returncode == 0:
            return s.result(folder), killed, ", ".join(left)
    raise RuntimeError(f"{name} killed at {at:.2f} s did not resume: {done.stderr.strip()}")
