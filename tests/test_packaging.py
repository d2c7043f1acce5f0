"""What a user installs and runs: the wheel has one import name, ``landscape``, with the
repository's train/, data/ and cli/ under it; and a user's own ``data.py``, ``train.py``,
``cli.py`` beside their energy file are theirs, not shadowed by (nor shadowing) ours."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# What the repository's folders install as (pyproject.toml, [tool.setuptools.package-dir]).
FOLDERS = {"landscape": "landscape", "train": "landscape/train", "data": "landscape/data", "cli": "landscape/cli"}
# Never copied into the build: local state that is not source (a stale build/lib would even
# put deleted modules into the wheel).
IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                 ".ruff_cache", ".benchmarks", "demo_out", "*.h5", "*.pt")


def landscape_command() -> list[str]:
    """The installed ``landscape`` script next to this Python, else the same entry point."""
    script = Path(sys.executable).with_name("landscape")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from landscape.cli.main import main; main()"]


@pytest.mark.slow  # maps (in a fresh process)
def test_a_users_own_data_train_and_cli_modules_beside_the_energy_are_theirs(tmp_path):
    (tmp_path / "data.py").write_text("SCALE = 2.0\n")
    (tmp_path / "train.py").write_text("OFFSET = -3.0\n")
    (tmp_path / "cli.py").write_text("POWER = 2\n")
    (tmp_path / "energy.py").write_text(
        "from cli import POWER\n"
        "from data import SCALE\n"
        "from train import OFFSET\n"
        "\n"
        "def U(x):\n"
        "    return OFFSET + SCALE * ((x ** POWER - 1.0) ** 2).sum(dim=-1)\n"
    )
    # The user's folder on the path as well: had the tool any top-level module of these
    # names, the user's would shadow it (and ours theirs, the energy file's imports).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    args = ["map", "--energy", "energy.py:U", "--shape", "2", "--box", "-2", "2", "--chains", "16", "--rounds", "1",
            "--ladder", "1", "--ladder-extend", "0", "--max-steps", "300", "--patience", "50", "--attempts", "1",
            "--quiet", "--out", "m.h5"]
    proc = subprocess.run([*landscape_command(), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    with h5py.File(tmp_path / "m.h5", "r") as f:
        energy = f["minima/energy"][()]
        x = f["minima/x"][()]
    # the four wells at (+-1, +-1), at the user's offset: their SCALE, OFFSET and POWER
    assert len(energy) == 4
    np.testing.assert_allclose(energy, -3.0, atol=1e-3)
    np.testing.assert_allclose(np.abs(x), 1.0, atol=0.02)


def _build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a clean copy of the repository (no build isolation: the test
    environment's setuptools builds it, nothing is downloaded)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("ebm_landscape-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


def test_the_wheel_has_one_import_name_with_train_data_and_cli_under_it(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top_level = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        declared = {line.strip() for n in top_level for line in z.read(n).decode().splitlines() if line.strip()}
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    modules = [n for n in names if n.endswith(".py")]
    assert {n.split("/")[0] for n in modules} == {"landscape"}
    assert declared <= {"landscape"}
    # every module of the repository's four folders, at its installed place
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            installed = f"{package}/{path.relative_to(ROOT / folder).as_posix()}"
            assert installed in names, installed
    for package in ("landscape/train", "landscape/data", "landscape/cli"):
        assert f"{package}/__init__.py" in names, package
    assert "landscape/py.typed" in names
    # nothing else at the top: no stray packages, no tests
    dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    assert len(dist_info) == 1 and {n.split("/")[0] for n in names} == {"landscape", *dist_info}
    # the metadata: a torch range (a GPU user's own build is kept), the licence, the links
    lines = metadata.splitlines()
    torch_req = [line for line in lines if line.startswith("Requires-Dist: torch")]
    assert torch_req and "==" not in torch_req[0] and ">=" in torch_req[0], torch_req
    assert any(line.startswith("License-Expression: MIT") or line == "License: MIT" for line in lines), metadata[:800]
    assert any(line.startswith("License-File: LICENSE") for line in lines) or any(
        n.endswith("licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    urls = {line.split(": ", 1)[1].split(",")[0] for line in lines if line.startswith("Project-URL: ")}
    assert {"Homepage", "Documentation", "Issues"} <= urls, urls


# ------------------------------------------------------------------ the version outputs carry

STAMP = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("stamped", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(module.tool_version())
"""


def test_outputs_are_stamped_with_the_commit_of_the_checkout_they_run_from(tmp_path):
    # (maps made by different code all said 0.1.0)
    import landscape

    def stamp(init: Path) -> str:
        done = subprocess.run([sys.executable, "-c", STAMP, str(init)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path / "repo",
                              capture_output=True, text=True, check=True).stdout.strip()

    if shutil.which("git") is None:
        pytest.skip("needs git")
    (tmp_path / "repo" / "landscape").mkdir(parents=True)
    init = tmp_path / "repo" / "landscape" / "__init__.py"
    shutil.copy(ROOT / "landscape" / "__init__.py", init)
    assert stamp(init) == landscape.__version__  # not in a checkout: an installed package
    git("init", "-q")
    assert stamp(init) == landscape.__version__  # in one, but not tracked by it (a venv inside a clone)
    git("add", "landscape/__init__.py")
    git("commit", "-qm", "first")
    commit = git("rev-parse", "--short=12", "HEAD")
    assert stamp(init) == f"{landscape.__version__}+g{commit}"
    init.write_text(init.read_text() + "\n# changed\n")
    assert stamp(init) == f"{landscape.__version__}+g{commit}.dirty"
    (tmp_path / "repo" / "untracked.txt").write_text("a file git does not track changes nothing\n")
    git("checkout", "-q", "landscape/__init__.py")
    assert stamp(init) == f"{landscape.__version__}+g{commit}"


def test_a_map_and_the_version_option_carry_the_same_stamp(tmp_path):
    import torch

    import landscape
    from landscape import Energy, MapConfig, build_map, read_map
    from landscape.potentials import mueller_brown

    energy = Energy(mueller_brown, (2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    path = build_map(energy, MapConfig(chains=8, ladder=(1.0,), ladder_extend=0, refine=False)).write(tmp_path / "m.h5")
    assert read_map(path).meta.tool_version == landscape.tool_version()
    assert landscape.tool_version().startswith(landscape.__version__)
    done = subprocess.run([*landscape_command(), "--version"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"ebm-landscape, version {landscape.tool_version()}", done.stderr
