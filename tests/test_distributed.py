"""Maps spread over processes with torchrun (gloo on the CPU): the energy's evaluations are
split over two real ranks, and the map equals the one-process map of the same seed; rank 0
alone writes, and a refusal on rank 0 stops every rank with the same one-line error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from faults import MAP, h5_digest, prepare, run

torch_dist = pytest.importorskip("torch.distributed")
if not torch_dist.is_available():  # pragma: no cover - every supported torch build has it
    pytest.skip("torch.distributed is not available", allow_module_level=True)

#: Run ``landscape`` under torchrun with two CPU ranks on this machine.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

SPLIT_CHECK = """
import torch, torch.distributed as dist
from landscape import Energy
from landscape.distributed import SplitEnergy, agree, current, from_main, join, leave, on_every_rank, split_energy
from landscape.errors import LandscapeError

group = join("cpu")
assert group.active and current() is not None and current().rank == group.rank
def bowl(x):
    return (torch.arange(1, x.shape[1] + 1, dtype=x.dtype) * x ** 3).sum(1)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))
for fn, dtype in ((bowl, torch.float64), (net, torch.float32)):
    whole = Energy(fn, (5,), data_range=(-1, 1), dtype=dtype)
    split = SplitEnergy(whole, current())
    for n in (0, 1, 2, 3, 5, 64):
        x = torch.linspace(-1, 1, n * 5, dtype=dtype).reshape(n, 5)
        u, g = split.value_and_grad_fn()(x)
        u0, g0 = whole.value_and_grad_fn()(x)
        assert u.shape == u0.shape and g.shape == g0.shape, (n, u.shape, g.shape)
        exact = fn is bowl
        assert torch.equal(u, u0) if exact else torch.allclose(u, u0, atol=1e-6), (n, fn)
        assert torch.equal(g, g0) if exact else torch.allclose(g, g0, atol=1e-6), (n, fn)
        assert torch.equal(split(x), whole(x)) if exact else torch.allclose(split(x), whole(x), atol=1e-6)
# from the calibrated size on, batches are split; below it every rank evaluates all rows
tuned = split_energy(Energy(bowl, (5,), data_range=(-1, 1), dtype=torch.float64))
assert isinstance(tuned, SplitEnergy) and tuned.min_rows >= 2
x = torch.linspace(-1, 1, 300 * 5, dtype=torch.float64).reshape(300, 5)
assert torch.equal(tuned.value_and_grad_fn()(x)[1], tuned.inner.value_and_grad_fn()(x)[1])
assert from_main(lambda: dist.get_rank() + 41) == 41
try:
    from_main(lambda: (_ for _ in ()).throw(LandscapeError("refused on rank 0")))
except LandscapeError as err:
    assert str(err) == "refused on rank 0"
else:
    raise AssertionError("no error on rank %d" % dist.get_rank())
# a file one rank lacks: the error on every rank, naming it (rank 0 waited at its next collective)
try:
    on_every_rank(lambda: (_ for _ in ()).throw(LandscapeError("dc1.pt: no such file")) if dist.get_rank() == 1 else 5)
except LandscapeError as err:
    assert str(err) == "rank 1 of this torchrun job: dc1.pt: no such file", str(err)
else:
    raise AssertionError("no error on rank %d" % dist.get_rank())
assert on_every_rank(lambda: 7) == 7
try:  # (another model at the same path on each node: a collective mismatch deep in the map)
    agree(f"sha{dist.get_rank()}", "models")
except LandscapeError as err:
    assert str(err).startswith("the ranks of this torchrun job loaded different models: rank 0 sha0, rank 1 sha1")
else:
    raise AssertionError("no error on rank %d" % dist.get_rank())
agree("same", "models")
leave()
open(f"ok{group.rank}", "w").write(f"split ok {tuned.min_rows}")  # (the ranks' prints would interleave)
"""


def torchrun(folder: Path, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *args], cwd=folder, capture_output=True, text=True, timeout=timeout)


def test_split_energy_gathers_every_row_on_every_rank(tmp_path):
    (tmp_path / "check.py").write_text(SPLIT_CHECK)
    done = torchrun(tmp_path, ["check.py"])
    assert done.returncode == 0, done.stderr[-3000:]
    said = [(tmp_path / f"ok{rank}").read_text() for rank in (0, 1)]
    assert said[0].startswith("split ok ") and said[1] == said[0]  # both ranks adopted rank 0's size


def test_two_rank_map_equals_one_process_map_and_rank0_alone_writes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    prepare(one, "map")
    prepare(two, "map")
    single = run(one, MAP)
    assert single.returncode == 0, single.stderr
    spread = torchrun(two, ["-m", "landscape.cli.main", *MAP])
    assert spread.returncode == 0, spread.stderr[-3000:]
    assert h5_digest(two / "w.h5") == h5_digest(one / "w.h5")
    assert sorted(p.name for p in two.iterdir() if p.name != "__pycache__") == ["pot.py", "w.h5"]

    # rank 0 refuses to replace the map: every rank stops with its message, nothing hangs
    again = torchrun(two, ["-m", "landscape.cli.main", *MAP], timeout=120)
    assert again.returncode != 0
    assert "w.h5 exists: pass --force to overwrite it" in again.stderr
    assert again.stderr.count("error: ") >= 2  # both ranks said so, neither waited for the other
    assert h5_digest(two / "w.h5") == h5_digest(one / "w.h5")


def test_a_file_one_rank_cannot_load_stops_every_rank_in_one_line(tmp_path):
    # (a checkpoint missing on the node that became rank 1: rank 1 said so and left, rank 0
    # waited with no word for the process group's 30 minutes, deaf to SIGTERM)
    (tmp_path / "pot.py").write_text("import os\nimport torch\n"
                                     "if os.environ.get('RANK') == '1':\n    raise ImportError('not on this node')\n"
                                     "def wells(x):\n    return ((x ** 2 - 1) ** 2).sum(1)\n")
    args = ["-m", "landscape.cli.main", "map", "--energy", "pot.py:wells", "--shape", "2", "--box", "-2", "2",
            "--chains", "16", "--out", "w.h5", "--quiet"]
    failed = torchrun(tmp_path, args, timeout=120)
    assert failed.returncode != 0
    said = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert len(said) == 2 and all(line.startswith("error: rank 1 of this torchrun job: ") for line in said), \
        failed.stderr[-2000:]
    assert "not on this node" in said[0] and not (tmp_path / "w.h5").exists()


def test_a_map_under_torchrun_says_whether_its_ranks_share_the_work(tmp_path):
    # (a small energy is never split: every rank repeated the whole map, with no word)
    args = ["-m", "landscape.cli.main", "map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2",
            "--box", "-1.5", "2", "--float64", "--chains", "16", "--ladder", "1", "--ladder-extend", "0",
            "--no-refine", "--out", "mb.h5"]
    done = torchrun(tmp_path, args, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line for line in (done.stdout + done.stderr).splitlines() if "2 ranks: " in line]
    assert len(said) == 1, said  # (rank 0 alone reports)
    assert ("did not pay to split at any batch size tried" in said[0]
            or re.search(r"batches of [\d,]+ rows or more are split over them", said[0])), said
