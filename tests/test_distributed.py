"""Maps spread over processes with torchrun (gloo on the CPU): the energy's evaluations are
split over two real ranks, and the map equals the one-process map of the same seed; rank 0
alone writes, and a refusal on rank 0 stops every rank with the same one-line error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import torchrun_env
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


def torchrun(folder: Path, args: list[str], timeout: float = 300, ranks: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN[:-1], str(ranks), *args], cwd=folder, capture_output=True, text=True,
                          timeout=timeout, env=torchrun_env(folder))



def test_split_energy_gathers_every_row_on_every_rank(tmp_path):
    (tmp_path / "check.py").write_text(SPLIT_CHECK)
    done = torchrun(tmp_path, ["check.py"])
    assert done.returncode == 0, done.stderr[-3000:]
    said = [(tmp_path / f"ok{rank}").read_text() for rank in (0, 1)]
    assert said[0].startswith("split ok ") and said[1] == said[0]  # both ranks adopted rank 0's size


#: Root attributes that say how many ranks made a map and how they shared its work: the
#: rest of a map made on two ranks is the one-process map's.
SHARING = ("ranks", "work_split")


LEFT_AT_EXIT = """
import atexit, os, torch, torch.distributed as dist
from landscape.distributed import join
# (atexit runs its handlers last registered first: this one after the one join registers)
atexit.register(lambda: open("left" + os.environ["RANK"], "w").write(str(dist.is_initialized())))
group = join("cpu")
x = torch.ones(3)
dist.all_reduce(x)
assert x.tolist() == [2.0, 2.0, 2.0]
# (ends without leave(): as a script using the Python API, or a command after an error)
"""


def test_a_process_that_ends_without_leaving_has_its_group_destroyed_before_the_interpreter_stops(tmp_path):
    # (a gloo group alive at the interpreter's shutdown aborts the process now and then)
    (tmp_path / "left.py").write_text(LEFT_AT_EXIT)
    done = torchrun(tmp_path, ["left.py"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(tmp_path / f"left{rank}").read_text() for rank in (0, 1)] == ["False", "False"]


ENDS_WITHOUT_TEARDOWN = """
import atexit, os, sys
from landscape.cli.main import main

class Torn:  # (its __del__ runs only in the interpreter's teardown, with what it holds)
    def __del__(self, open=open, name="torn" + os.environ["RANK"]):
        open(name, "w").write("teardown ran")

kept = Torn()
atexit.register(lambda: open("atexit" + os.environ["RANK"], "w").write("ran"))
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def two_rank_training(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A training run of :data:`TRAIN_TWO` on two ranks, by a script that marks its atexit
    handlers and its interpreter's teardown: its folder, and how it ended."""
    folder = tmp_path_factory.mktemp("two-rank-training")
    (folder / "ends.py").write_text(ENDS_WITHOUT_TEARDOWN)
    return folder, torchrun(folder, ["ends.py", *TRAIN_TWO[2:]])


def test_a_command_on_ranks_ends_after_its_atexit_handlers_without_the_interpreters_teardown(two_rank_training):
    # (the teardown met gloo's worker threads freeing a barrier's work and aborted the rank
    # now and then, SIGABRT after the checkpoint was written)
    folder, done = two_rank_training
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("done: 4 updates -> d.pt")  # (flushed before the process ended)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(("atexit", "torn"))) == ["atexit0", "atexit1"]


def test_two_rank_map_equals_one_process_map_and_rank0_alone_writes(tmp_path, monkeypatch):
    import faults

    one, two = tmp_path / "one", tmp_path / "two"
    prepare(one, "map")
    prepare(two, "map")
    single = run(one, MAP)
    assert single.returncode == 0, single.stderr
    spread = torchrun(two, ["-m", "landscape.cli.main", *MAP])
    assert spread.returncode == 0, spread.stderr[-3000:]
    assert _root_record(one / "w.h5")[0] == 1 and _root_record(two / "w.h5")[0] == 2
    monkeypatch.setattr(faults, "CLOCKS", faults.CLOCKS + SHARING)  # (h5_digest leaves them out)
    assert h5_digest(two / "w.h5") == h5_digest(one / "w.h5")
    assert sorted(p.name for p in two.iterdir() if p.name != "__pycache__") == ["pot.py", "w.h5"]

    # rank 0 refuses to replace the map: every rank stops with its message, nothing hangs
    again = torchrun(two, ["-m", "landscape.cli.main", *MAP], timeout=120)
    assert again.returncode != 0
    assert "w.h5 exists: pass --force to overwrite it" in again.stderr
    assert again.stderr.count("error: ") >= 2  # both ranks said so, neither waited for the other
    assert h5_digest(two / "w.h5") == h5_digest(one / "w.h5")


SLOW_RANK0 = """
import os, sys, time
from landscape.cli.main import main
if os.environ["RANK"] == "0":
    time.sleep(3)  # (rank 0 comes to its error last)
main(sys.argv[1:])
"""


def test_a_rank_that_fails_waits_for_a_slower_one_to_say_why(tmp_path):
    # (torchrun stops every rank once one has failed: rank 1, refusing at once, ended the
    # job while rank 0, the rank that says why, was still on its way, and nothing was said)
    (tmp_path / "slow.py").write_text(SLOW_RANK0)
    refused = torchrun(tmp_path, ["slow.py", "info", "nothing.pt"], timeout=120)
    assert refused.returncode != 0
    said = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert said == ["error: landscape info runs as one process: run it without torchrun (only map and train spread "
                    "over its ranks)"], refused.stderr[-2000:]


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
    # the map records what the note said
    ranks, work = _root_record(tmp_path / "mb.h5")
    split = re.search(r"batches of ([\d,]+) rows", said[0])
    assert ranks == 2 and work["split_from"] == (int(split.group(1).replace(",", "")) if split else None)
    assert all(entry["ranks"] == [2] for entry in work["stages"].values())
    if split is None:  # (every rank evaluated every row)
        assert all(entry["rows_split"] == 0 and entry["rows_whole"] > 0 for key, entry in work["stages"].items()
                   if key != "refine"), work


# ------------------------------------------------------------- what a map records of its ranks

RECORD_CHECK = """
import torch
from landscape import Energy, build_map
from landscape.distributed import SplitEnergy, join, leave
from landscape.mapping.settings import MapConfig
from landscape.potentials import mueller_brown

group = join("cpu")
# (not calibrated: every batch of two rows or more is split, whatever the timings say)
energy = SplitEnergy(Energy(mueller_brown, (2,), data_range=(-1.5, 2.0), dtype=torch.float64), group)
result = build_map(energy, MapConfig(chains=16, ladder=(1.0,), ladder_extend=0, refine=False))
if group.main:
    result.write("split.h5")
leave()
"""


def _root_record(path: Path) -> tuple[int, dict]:
    import json

    import h5py

    with h5py.File(path, "r") as f:
        return int(f.attrs["ranks"]), json.loads(f.attrs["work_split"])


def test_a_map_records_how_many_ranks_made_it_and_how_they_split_the_work(tmp_path, capsys):
    # (a map made under torchrun said neither how many ranks made it nor how they shared the work)
    import json

    import torch

    from conftest import run as cli

    from landscape import Energy, build_map
    from landscape.mapping.settings import MapConfig
    from landscape.potentials import mueller_brown

    (tmp_path / "record.py").write_text(RECORD_CHECK)
    done = torchrun(tmp_path, ["record.py"])
    assert done.returncode == 0, done.stderr[-3000:]
    ranks, work = _root_record(tmp_path / "split.h5")
    assert ranks == 2 and work["split_from"] == 2
    stages = work["stages"]
    assert set(stages) == {"minima", "neighbours", "basins", "refine"}
    assert all(entry["ranks"] == [2] for entry in stages.values())
    assert stages["minima"]["rows_split"] > 0 and stages["basins"]["rows_split"] > 0
    # (a batch of one row, below the two ranks, is evaluated whole on both)
    assert all(entry["rows_whole"] >= 0 for entry in stages.values())

    code, out, err = cli(capsys, "info", tmp_path / "split.h5")
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("ranks ")]
    assert len(rows) == 1 and "2 (torchrun): batches of 2 rows or more split, one slice of rows per rank" in rows[0]
    assert re.search(r"rows: minima (\d+%|>99%) split, neighbours .*, basins .* split", rows[0]), rows[0]
    code, out, err = cli(capsys, "info", tmp_path / "split.h5", "--json")
    assert code == 0, err
    said = json.loads(out)
    assert said["ranks"] == 2 and said["work_split"] == work
    # tree prints the map's header as info does, the ranks row too
    code, out, err = cli(capsys, "tree", tmp_path / "split.h5")
    assert code == 0 and [line for line in out.splitlines() if line.startswith("ranks ")] == rows, err
    code, out, err = cli(capsys, "tree", tmp_path / "split.h5", "--json")
    assert code == 0 and (json.loads(out)["ranks"], json.loads(out)["work_split"]) == (2, work), err

    # one process: 1 rank, and nothing split
    energy = Energy(mueller_brown, (2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    result = build_map(energy, MapConfig(chains=16, ladder=(1.0,), ladder_extend=0, refine=False))
    result.write(tmp_path / "one.h5")
    ranks, work = _root_record(tmp_path / "one.h5")
    assert ranks == 1 and work["split_from"] is None
    assert work["stages"] and all(entry == {"ranks": [1], "rows_split": None, "rows_whole": None}
                                  for entry in work["stages"].values())
    code, out, err = cli(capsys, "info", tmp_path / "one.h5")
    assert code == 0 and "ranks     1 (one process)" in out.splitlines(), err


# ---------------------------------------------------------- a resume on another number of ranks

#: Two ranks' training, stopped after 4 updates with its checkpoint (as a stopped run keeps
#: it): a persistent bank of 600 chains (it splits over 2 and 3 ranks), a batch of 100 (not over 3).
TRAIN_TWO = ["-m", "landscape.cli.main", "train", "--preset", "digits-convergent", "--out", "d.pt", "--steps", "4",
             "--set", "sampler.steps=5", "--set", "sampler.bank_size=600", "--set", "train.plot_every=1000", "--quiet"]


def test_a_training_resume_on_ranks_its_batch_does_not_split_over_is_refused_before_its_note(tmp_path,
                                                                                             two_rank_training):
    # (resumed on 3 ranks, a run of 2 said its random streams were reseeded, then was refused:
    # "train.batch_size 100 does not split evenly over 3 ranks")
    import shutil

    first, done = two_rank_training
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.copy(first / "d.pt", tmp_path)
    shutil.copytree(first / "d.run", tmp_path / "d.run")
    kept = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    refused = torchrun(tmp_path, ["-m", "landscape.cli.main", "train", "--out", "d.pt", "--resume", "--quiet"], ranks=3)
    assert refused.returncode != 0
    said = [line for line in refused.stderr.splitlines() if line.startswith(("error: ", "note: "))]
    assert len(said) == 3 and len(set(said)) == 1, refused.stderr[-3000:]  # (one line a rank, no note)
    assert said[0] == ("error: d.pt: cannot resume on 3 ranks: its train.batch_size 100 does not split evenly over 3; "
                       "resume on 1, 2, 4, 5, 10, 20, 25, 50 or 100 ranks, the counts that divide both, or give "
                       "--batch-size a multiple of 3")
    assert {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == kept

    # where its batch and bank split over 3, it resumes on 3 (reseeded, and says so)
    resumed = torchrun(tmp_path, ["-m", "landscape.cli.main", "train", "--out", "d.pt", "--resume", "--quiet",
                                  "--batch-size", "99", "--steps", "6"], ranks=3)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("note: resuming on 3 ranks a run of 2: its random streams are reseeded") == 1
    import torch

    ckpt = torch.load(tmp_path / "d.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["resume"]["world_size"] == 3 and ckpt["resume"]["bank"].shape[0] == 600


def test_the_resume_check_names_the_rank_counts_that_work():
    import torch

    from landscape.errors import LandscapeError
    from landscape.train.config import apply_overrides, get_preset
    from landscape.train.loop import check_resume_ranks

    config = get_preset("digits-convergent")  # (a batch of 100, a bank of 2,000)
    state = {"resume": {"bank": torch.zeros(2000, 1, 8, 8)}}
    for world in (1, 2, 4, 5, 10):
        check_resume_ranks(state, config, world, "d.pt")
    with pytest.raises(LandscapeError, match=r"^d\.pt: cannot resume on 3 ranks: its train\.batch_size 100 and its "
                                             r"persistent bank of 2,000 chains do not split evenly over 3 \(the bank "
                                             r"is the checkpoint's own: its size cannot change\); resume on 1, 2, 4, "
                                             r"5, 10, 20, 25, 50 or 100 ranks, the counts that divide both$"):
        check_resume_ranks(state, config, 3, "d.pt")
    with pytest.raises(LandscapeError, match="sampler.bank_size cannot change to 1,998"):
        check_resume_ranks(state, apply_overrides(config, ["sampler.bank_size=1998"]), 2, "d.pt")


# ------------------------------------------------------------ a join the other ranks never come to

#: A map that would take seconds, run with a stray torchrun environment.
MB_MAP = ["-m", "landscape.cli.main", "map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2",
          "--box", "-1.5", "2", "--chains", "16", "--out", "mb.h5", "--quiet"]


def _stray(port: int, seconds: str) -> dict[str, str]:
    """The environment of a shell a cluster script left WORLD_SIZE=2 in, with no other rank to come."""
    import os

    return {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "LANDSCAPE_JOIN_TIMEOUT": seconds, "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("rank, joined", [("0", r" \(1 of 2 ranks had joined\)"), ("1", "")])
def test_a_stray_world_size_ends_in_one_line_once_the_join_times_out(tmp_path, rank, joined):
    # (the map waited in torch's rendezvous for its 30 minutes, deaf to Ctrl-C and SIGTERM;
    # rank 1, which tries to reach rank 0's store, then printed torch's C++ retries and a
    # stack trace, 39 lines, before the one line)
    import time

    from conftest import assert_one_line_error

    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, *MB_MAP], cwd=tmp_path, env={**_stray(_free_port(), "2"), "RANK": rank},
                          capture_output=True, text=True, timeout=120)
    assert_one_line_error(done.returncode, done.stderr,
                          rf"^error: WORLD_SIZE=2, RANK={rank}: the other ranks never came to MASTER_ADDR:MASTER_PORT "
                          rf"127\.0\.0\.1:\d+ within 2 s{joined}: outside torchrun unset "
                          r"WORLD_SIZE .*LANDSCAPE_JOIN_TIMEOUT=SECONDS$")
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "mb.h5").exists()


def test_ctrl_c_stops_a_join_the_other_ranks_never_come_to(tmp_path):
    import signal
    import socket
    import time

    port = _free_port()
    # (SIGINT at its default in the child, as a shell starts a command in the foreground)
    proc = subprocess.Popen([sys.executable, *MB_MAP], cwd=tmp_path, env=_stray(port, "300"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while True:  # (rank 0's store listens once the command waits in the join)
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and time.monotonic() - t0 < 10, err
    finally:
        proc.kill()
        proc.wait()


def test_the_join_timeout_comes_from_the_environment(monkeypatch):
    from landscape.distributed import JOIN_TIMEOUT_S, join_timeout
    from landscape.errors import LandscapeError

    monkeypatch.delenv("LANDSCAPE_JOIN_TIMEOUT", raising=False)
    assert join_timeout() == JOIN_TIMEOUT_S == 300
    monkeypatch.setenv("LANDSCAPE_JOIN_TIMEOUT", "1800")
    assert join_timeout() == 1800
    for bad in ("0", "-5", "soon", "inf", "nan"):
        monkeypatch.setenv("LANDSCAPE_JOIN_TIMEOUT", bad)
        with pytest.raises(LandscapeError, match=r"^LANDSCAPE_JOIN_TIMEOUT='.*': give the seconds to wait"):
            join_timeout()
