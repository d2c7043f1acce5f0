"""The library from Python, as the README shows it: a map built in memory reads as the same
map from its file, writes the file `landscape map` writes, and is probed and diagnosed
with the commands' settings policies."""

from __future__ import annotations

import json
import contextlib
import inspect
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, Notes, run

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> tuple[str, list[str]]:
    """The code of the README's "From Python" section and the lines it says it prints."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### From Python"):]
    blocks, block = [], []
    for line in section.splitlines()[1:]:
        if line.startswith("### "):
            break
        if line.startswith("    ") or (block and not line.strip()):
            block.append(line[4:])
        elif block:
            blocks.append("\n".join(block).strip("\n"))
            block = []
    return blocks[0], blocks[1].splitlines()


@pytest.mark.slow
def test_the_readme_example_prints_what_the_readme_says(tmp_path, monkeypatch, capsys):
    code, printed = readme_example()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 -- our own README's example
    lines = out.getvalue().splitlines()
    # the minima, their energies and barriers (exact answers, rounded as printed)
    assert lines[:2] == printed[:2]
    # the ladder: every minimum its own basin at the weakest pull, one basin at the strongest
    assert len(lines) == len(printed) and lines[2] == printed[2] and lines[-1] == printed[-1]
    assert (tmp_path / "wells.h5").is_file()
    assert (tmp_path / "wells_tree.png").stat().st_size > 0 and (tmp_path / "wells_map.png").stat().st_size > 0

    # the file is the map in memory, with the record `landscape map` writes
    from landscape import read_map

    result, energy = namespace["result"], namespace["energy"]
    read = read_map(tmp_path / "wells.h5")
    assert read.settings() == result.content.settings()
    assert read.settings()["alpha_unit"] == result.settings["alpha_unit"]
    np.testing.assert_array_equal(read.minima_energy, result.content.minima_energy)
    assert read.meta.source == {"kind": "model", "spec": "wells", "shape": [2], "box": [-3.0, 3.0], "dtype": "float32"}
    assert set(read.meta.extra["seconds"]) == set(result.seconds)
    code_, out_, _ = run(capsys, "info", tmp_path / "wells.h5")
    assert code_ == 0 and "model wells" in out_ and "3 minima" in out_
    # the command takes the network's code again from the user, never from the record
    code_, _, err = run(capsys, "diagnose", tmp_path / "wells.h5", "--dataset", "rings")
    assert code_ == 1 and "never runs code" in err and "--model FILE.py:FACTORY" in err

    # the map in memory is probed and diagnosed with the commands' policies
    from landscape import diagnose_map, funnel_config, funnel_probe

    m = result.content
    config = funnel_config(m, chains=8)
    assert config.eps == pytest.approx(result.settings["eps"])
    assert config.noise[1] == pytest.approx(np.sqrt(result.settings["ad_temperature"]))  # explored at T = 0
    probe = funnel_probe(energy, m, config)
    assert probe.funnel.occupancy.shape[0] == len(config.noise)
    centres = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]])
    data = (centres + 0.05 * torch.randn(60, 3, 2, generator=torch.Generator().manual_seed(0))).reshape(-1, 2)
    assert not diagnose_map(energy, m, data).spurious.any()  # every minimum where the data lie


def test_the_funnel_command_s_defaults_are_the_library_s():
    from landscape.cli.funnel_cmd import funnel_cmd
    from landscape.mapping.funnel import DEFAULT_NOISE, funnel_config

    params = {p.name: p for p in funnel_cmd.params}
    assert tuple(float(v) for v in params["noise"].default.split(",")) == DEFAULT_NOISE
    assert params["chains"].default == inspect.signature(funnel_config).parameters["chains"].default


def test_a_map_in_memory_records_what_its_file_would(tmp_path):
    from landscape import Energy, LandscapeError, MapConfig, build_map

    def bowl(x):
        return ((x - 0.25) ** 2).sum(1)

    config = MapConfig(chains=16, rounds=1, ladder=(1.0,), ladder_extend=0, ladder_refine=0, max_steps=50)
    result = build_map(Energy(bowl, shape=(3,), data_range=(-1, 1), dtype=torch.float64, name="bowl"), config)
    meta = result.content.meta
    assert meta.config == config.to_dict() and meta.extra["settings"] == result.settings
    assert meta.source == {"kind": "function", "spec": "bowl", "shape": [3], "box": [-1.0, 1.0], "dtype": "float64"}
    assert result.content.settings()["eps"] == result.settings["eps"]
    with pytest.raises(LandscapeError, match=f"cannot write {tmp_path}: it is a folder"):
        result.write(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
    assert result.write(tmp_path / "new" / "bowl.h5").is_file()  # its folder made


def test_an_energy_without_a_box_says_how_to_give_one():
    from landscape import Energy, LandscapeError, build_map

    with pytest.raises(LandscapeError, match=r"no data range: give one \(Energy\(\.\.\., data_range="):
        build_map(Energy(lambda x: (x ** 2).sum(1), shape=(2,), name="bowl"))


def test_the_diagnosis_and_check_commands_defaults_are_the_library_s():
    import dataclasses

    from landscape.cli.check_cmd import check_cmd
    from landscape.cli.diagnose_cmd import diagnose_cmd
    from landscape.diagnosis.spurious import DiagnosisRule
    from landscape.train.check import DEFAULT_MULTIPLES, Thresholds, convergence_check

    params = {p.name: p for p in diagnose_cmd.params}
    for f in dataclasses.fields(DiagnosisRule):
        assert params[f.name].default == f.default, f.name
    params = {p.name: p for p in check_cmd.params}
    for f in dataclasses.fields(Thresholds):
        assert params[f.name].default == f.default, f.name
    from landscape.train.check import DEFAULT_EXTEND

    assert params["extend"].default == DEFAULT_EXTEND
    assert tuple(float(v) for v in params["multiples"].default.split(",")) == tuple(DEFAULT_MULTIPLES)
    assert params["chains"].default == inspect.signature(convergence_check).parameters["n_chains"].default


def test_training_examples_from_python_are_checked_and_numpy_s_are_taken():
    from landscape import Energy, LandscapeError, MapConfig, build_map, diagnose_map

    def bowls(x):  # two wells, at -0.5 and 0.5 on the first axis
        return torch.minimum(((x - torch.tensor([0.5, 0.0], dtype=x.dtype)) ** 2).sum(1),
                             ((x + torch.tensor([0.5, 0.0], dtype=x.dtype)) ** 2).sum(1) + 0.1)

    energy = Energy(bowls, shape=(2,), data_range=(-1, 1), dtype=torch.float64, name="bowls")
    config = MapConfig(chains=16, rounds=1, ladder=(1.0,), ladder_extend=0, ladder_refine=0, max_steps=100)
    data = np.random.default_rng(0).uniform(-1, 1, size=(40, 2))
    from_numpy = build_map(energy, config, data=data)
    from_torch = build_map(energy, config, data=torch.from_numpy(data))
    assert from_numpy.settings["init"] == "both"
    np.testing.assert_array_equal(from_numpy.content.minima_x, from_torch.content.minima_x)
    assert not diagnose_map(energy, from_numpy.content, data).spurious.any()
    for bad, why in ((data[:, :1], r"must be a batch \[M, 2\] for bowls, got an array of shape \[40, 1\]"),
                     (np.where(np.eye(40, 2, dtype=bool), np.nan, data), "not finite"),
                     ("digits", "not an array of numbers"),
                     (data.astype(complex), "complex128, not of real numbers")):
        with pytest.raises(LandscapeError, match=why):
            build_map(energy, config, data=bad)
        with pytest.raises(LandscapeError, match=why.replace("training examples (data)", "data set's examples")):
            diagnose_map(energy, from_numpy.content, bad)


@pytest.mark.slow
def test_a_probe_without_settings_runs_what_the_command_runs():
    import json

    from landscape import Energy, MapConfig, build_map, funnel_config, funnel_probe
    from landscape.potentials import PLANTED_BOX, planted_data, planted_funnel

    energy = Energy(planted_funnel, shape=(2,), data_range=PLANTED_BOX, dtype=torch.float64, name="funnel",
                    sampler={"tau": 0.5})
    data = planted_data(100, seed=0)
    m = build_map(energy, MapConfig(chains=32, rounds=1, ladder=(1.0,), ladder_extend=0, ladder_refine=0,
                                    max_steps=200), data=data).content
    probe = funnel_probe(energy, m, data=data).funnel
    expected = funnel_config(m, sampler={"tau": 0.5}, with_data=True)
    assert json.loads(probe.attrs["config"]) == json.loads(json.dumps(expected.to_dict()))
    assert expected.init == "both" and expected.noise[1] == 0.5  # the sampler's tau is the unit


def test_a_misspelt_sampler_key_is_refused_not_ignored():
    # {"eps": 0.1, "temperature": 1.0} mapped as if no sampler were given.
    from landscape import Energy, LandscapeError

    with pytest.raises(LandscapeError, match=r"sampler has no keys 'eps', 'temperature': it takes epsilon, tau"):
        Energy(lambda x: (x ** 2).sum(1), shape=(2,), data_range=(-1.0, 1.0), sampler={"eps": 0.1, "temperature": 1})
    e = Energy(lambda x: (x ** 2).sum(1), shape=(2,), data_range=(-1.0, 1.0), sampler={"epsilon": 0.1, "tau": 1.0})
    assert e.sampler == {"epsilon": 0.1, "tau": 1.0}


def test_a_network_handed_over_in_training_mode_maps_as_in_eval_mode_and_keeps_its_mode():
    from landscape import Energy, MapConfig, build_map
    from landscape.diagnosis.spurious import diagnose_map

    class Wells(torch.nn.Module):  # a double well seen through dropout and batch statistics
        def __init__(self):
            super().__init__()
            self.norm, self.drop = torch.nn.BatchNorm1d(2), torch.nn.Dropout(0.5)
            self.norm.running_mean.fill_(0.1)

        def forward(self, x):
            y = self.drop(self.norm(x))
            return (y[:, 0] ** 2 - 1) ** 2 + 0.5 * y[:, 1] ** 2

    torch.manual_seed(0)
    net = Wells()
    config = MapConfig(chains=16, rounds=1, seed=1, max_steps=300, patience=50, attempts=1, neighbours=2, refine=False)
    maps = []
    for training in (True, False):
        net.train(training)
        energy = Energy(net, shape=(2,), data_range=(-2.0, 2.0))
        maps.append(build_map(energy, config).content)
        assert net.training == training and all(p.requires_grad for p in net.parameters())
        data = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.9, 0.1]]) + 0.1
        d = diagnose_map(energy, maps[-1], data)
        np.testing.assert_array_equal(d.data_energy, energy(data).numpy() if not training else d.data_energy)
    trained, evaluated = maps
    assert trained.n_minima == evaluated.n_minima == 2
    np.testing.assert_array_equal(trained.minima_x, evaluated.minima_x)
    np.testing.assert_array_equal(trained.tree.heights, evaluated.tree.heights)
    # and the map says so (a model trained and sampled in training mode has another energy)
    assert Energy(net, shape=(2,)).modes_note().startswith(
        "the network's BatchNorm1d, Dropout layers run in eval mode (batch normalisation with its running statistics")
    assert Energy(torch.nn.Linear(2, 1), shape=(2,)).modes_note() is None


def test_a_map_from_python_runs_on_the_commands_thread_count_and_leaves_the_callers(monkeypatch):
    # (build_map of a small energy from Python ran on all of torch's threads, where the
    # command runs it on one: dozens of tiny operations a step, slower split over threads)
    from landscape import Energy, MapConfig, build_map
    from landscape.diagnosis.spurious import diagnose_map

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # (set, it is the user's choice and kept)
    seen = set()

    def wells(x):
        seen.add(torch.get_num_threads())
        return (x[:, 0] ** 2 - 1) ** 2 + x[:, 1] ** 2

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        energy = Energy(wells, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
        m = build_map(energy, MapConfig(chains=8, rounds=1, grid=0, refine=False)).content
        diagnose_map(energy, m, torch.tensor([[1.0, 0.0], [-1.0, 0.1]], dtype=torch.float64))
        assert seen == {1} and torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        seen.clear()
        build_map(energy, MapConfig(chains=8, rounds=1, grid=0, refine=False))
        assert seen == {3} and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_an_energy_that_fails_on_a_small_batch_is_one_line_from_build_map():
    from landscape import Energy, LandscapeError, build_map

    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    with pytest.raises(LandscapeError, match=r"calling it on a batch of shape \[3, 3\] failed: RuntimeError: mat1 "
                                             r"and mat2 shapes cannot be multiplied"):
        build_map(Energy(net, shape=3, data_range=(-1.0, 1.0)))  # (a bare int is a shape too)
    with pytest.raises(LandscapeError, match=r"its parameters are float64, the energy runs in float32: give "
                                             r"Energy\(..., dtype=\) to match"):
        build_map(Energy(net.double(), shape=(2,), data_range=(-1.0, 1.0)))
    assert Energy(net, shape=2).shape == (2,)


def test_training_examples_outside_the_box_are_said_to_be():
    from landscape import Energy, MapConfig, build_map

    energy = Energy(lambda x: ((x ** 2 - 1) ** 2).sum(1), shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
    data = np.array([[1.0, 1.0], [3.0, 0.0], [-1.0, -2.5], [0.5, -1.0]])
    config = MapConfig(chains=8, rounds=1, ladder=(), max_steps=50, patience=10, attempts=1, neighbours=1, refine=False)
    heard = Notes()
    build_map(energy, config, data=data, reporter=heard)
    assert "2 of 4 training examples lie outside the box [-2, 2]: chains from them are kept in the box; widen it " \
           "(--box) to map where they are" in heard.notes
    heard = Notes()
    build_map(energy, config, data=data[[0, 3]], reporter=heard)
    assert not any("outside the box" in n for n in heard.notes)


def test_a_float32_energy_too_large_to_resolve_its_differences_is_said_to_be():
    from landscape import Energy, MapConfig, build_map
    from landscape.potentials import mueller_brown

    config = MapConfig(chains=64, rounds=1, ladder=(), ladder_extend=0, ladder_refine=0, neighbours=2, refine=False)
    for offset, said in ((1e6, True), (0.0, False)):
        heard = Notes()
        build_map(Energy(lambda x, b=offset: mueller_brown(x) + b, shape=2, data_range=(-1.5, 2.0)), config,
                  reporter=heard)
        note = [n for n in heard.notes if "resolve steps of" in n]
        assert bool(note) == said, heard.notes
        if said:
            assert note[0].startswith("the energy's values near 1e+06 resolve steps of 0.062 in float32") and \
                note[0].endswith("map in float64 (--float64) or subtract a constant from the energy")
    # Wells alike by symmetry (minima 0 apart in energy): measured against the energy's rise over the box
    # (an offset of 100 is resolved, and was said not to be; 1e6 is not).
    for offset, said in ((100.0, False), (1e6, True)):
        heard = Notes()
        build_map(Energy(lambda x, b=offset: b + ((x ** 2 - 1) ** 2).sum(1), shape=2, data_range=(-2.0, 2.0)), config,
                  reporter=heard)
        note = [n for n in heard.notes if "resolve steps of" in n]
        assert bool(note) == said, heard.notes


def test_misused_calls_name_the_problem_in_one_line():
    from landscape import Energy, MapConfig, build_map
    from landscape.errors import LandscapeError

    def bowl(x):
        return (x ** 2).sum(1)

    assert Energy(bowl, np.int64(2)).shape == (2,) and Energy(bowl, torch.Size([1, 8, 8])).shape == (1, 8, 8)
    for shape in ("12", 2.0, (), (2, 0), [2.5], True):  # ("12" read as (1, 2) before)
        with pytest.raises(LandscapeError, match="shape"):
            Energy(bowl, shape)
    with pytest.raises(LandscapeError, match="must be torch.float32 or torch.float64"):
        Energy(bowl, 2, dtype=torch.int32)
    with pytest.raises(LandscapeError, match=r"too wide for float32"):  # (uniform starts overflowed to NaN)
        Energy(bowl, 2, data_range=(-1e39, 1e39))
    if not torch.cuda.is_available():
        with pytest.raises(LandscapeError, match="no CUDA device: use cpu"):
            Energy(bowl, 2, device="cuda")
    # settings of the wrong type: the field named (a float count reached torch.rand; a string a comparison)
    for bad, pattern in [({"chains": 2.5}, "chains is 2.5, expected an integer"),
                         ({"chains": "8"}, "chains is '8', expected an integer"),
                         ({"seed": 2 ** 70}, r"seed is \d+, expected an integer in 0 \.\. 4294967295"),
                         ({"ladder": (1, "a")}, "ladder item is 'a', expected a number"),
                         ({"refine": 1}, "refine is 1, expected true or false")]:
        with pytest.raises(LandscapeError, match=pattern):
            MapConfig(**bad)
    config = MapConfig(chains=np.int64(8), ad_temperature=np.float32(0.5), ladder=np.array([1.0, 3.0]))
    assert type(config.chains) is int and type(config.ad_temperature) is float and config.ladder == (1.0, 3.0)
    with pytest.raises(TypeError, match=r"build_map needs an Energy, got function: wrap .* as Energy\("):
        build_map(bowl)
    with pytest.raises(TypeError, match="build_map's config must be a MapConfig, got dict"):
        build_map(Energy(bowl, 2, data_range=(-1, 1)), {"chains": 8})
    energy = Energy(bowl, 2, data_range=(-1, 1))
    with torch.inference_mode(), pytest.raises(LandscapeError, match=r"inside torch.inference_mode\(\)"):
        build_map(energy)  # (it blamed the energy: "no gradient with respect to x")
    for half in (torch.float16, torch.bfloat16):  # (mapped as if float32: 21 and 200 "minima" of 4 wells)
        with pytest.raises(LandscapeError, match="returns (float16|bfloat16) energies: half precision"):
            build_map(Energy(lambda x, h=half: bowl(x).to(h), 2, data_range=(-1, 1)))


def test_new_minima_and_energies_are_checked_against_the_map():
    from landscape import Energy, MapConfig, build_map, diagnose_map, extend_map, funnel_probe
    from landscape.errors import LandscapeError
    from landscape.mapping.minima import Minima

    def tilted(x):
        return (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + x[:, 1] ** 2

    energy = Energy(tilted, 2, data_range=(-2, 2), dtype=torch.float64)
    m = build_map(energy, MapConfig(chains=16, rounds=1, grid=0)).content
    assert m.n_minima == 2

    def minima(x, e):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        return Minima(x, torch.as_tensor(e, dtype=torch.float64), torch.zeros(len(e), dtype=torch.int64),
                      torch.zeros(len(e), dtype=torch.float64))

    saddle = [[0.0, 0.5]]
    for new, pattern in [  # each was taken: a duplicate minimum, a made-up root of the tree
        (minima(m.minima_x[:1], m.minima_energy[:1]), r"new minimum 0 lies 0 from the map's minimum 0, within the map's "
                                                      r"merge radius [\d.]+, with no barrier between: it is that "
                                                      r"minimum"),
        (minima(saddle, [-100.0]), r"new minimum 0: the energy gives 1\.25 there, its record says -100"),
        (minima(saddle * 2, [1.25, 1.25]), "new minima 0 and 1 lie 0 apart"),
    ]:
        with pytest.raises(LandscapeError, match=pattern):
            extend_map(energy, m, new)
    with pytest.raises(TypeError, match="extend_map needs an Energy"):  # (it had lost runs_frozen's checks)
        extend_map(tilted, m, minima(saddle, [1.25]))
    with pytest.raises(LandscapeError, match="the data hold 0 examples"):
        diagnose_map(energy, m, np.zeros((0, 2)))  # (a numpy reshape error)
    other = Energy(lambda x: 2 * tilted(x), 2, data_range=(-2, 2), dtype=torch.float64, name="other")
    for call in (lambda: diagnose_map(other, m, np.random.default_rng(0).normal(size=(10, 2))),
                 lambda: funnel_probe(other, m)):
        with pytest.raises(LandscapeError, match="energy 'other' is not the energy the map was made of"):
            call()


def test_a_new_minimum_closer_than_the_merge_radius_but_behind_a_barrier_is_taken():
    # Two narrow wells 0.053 apart, a ridge between, closer than the merge radius (0.057):
    # the map keeps them apart. A map that found one (its chains started from data there)
    # refused the other when a funnel probe brought it ("within the map's merge radius: it
    # is that minimum"), and `landscape funnel` failed on the demo's rings model.
    from scipy.optimize import minimize

    from landscape import Energy, MapConfig, build_map, extend_map
    from landscape.errors import LandscapeError
    from landscape.mapping.minima import Minima

    def pair(x):
        return (x[:, 0] + 1) ** 2 * (x[:, 0] - 1) ** 2 + x[:, 1] ** 2 + 0.5 * torch.exp(-((x[:, 0] - 1) / 0.01) ** 2)

    energy = Energy(pair, 2, data_range=(-2, 2), dtype=torch.float64)
    data = torch.tensor([[-1.0, 0.0]] * 8 + [[0.9732, 0.0]] * 8, dtype=torch.float64)
    m = build_map(energy, MapConfig(chains=16, rounds=1, grid=0, init="data"), data=data).content
    assert m.n_minima == 2 and m.settings()["merge_radius"] > 0.055

    def minimum(start):
        x = minimize(lambda v: float(pair(torch.tensor(v[None]))), np.array(start), tol=1e-14).x
        x = torch.from_numpy(x)[None]
        return Minima(x, pair(x), torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.float64))

    other = minimum([1.03, 0.0])
    assert 0.05 < float(torch.linalg.vector_norm(other.x[0] - torch.from_numpy(m.minima_x[1]))) < 0.055
    extended = extend_map(energy, m, other)
    assert extended.n_minima == 3 and 0.4 < np.sort(extended.tree.barrier)[0] < 0.6  # (the ridge between them)
    with pytest.raises(LandscapeError, match=r"new minimum 0 lies [\d.e-]+ from the map's minimum 1, within the map's merge "
                                             r"radius 0\.0566, with no barrier between: it is that minimum"):
        extend_map(energy, m, minimum([0.97, 0.0]))


def test_what_earlier_versions_stored_and_numpy_s_values_are_taken():
    from landscape import MapConfig
    from landscape.mapping.funnel import FunnelConfig

    # Stored configs: a count written as a float, a seed outside 0 .. 2^32 - 1 (taken by the
    # version that wrote them; a funnel probe of such a map failed after all its chains).
    old = MapConfig.from_dict({"max_steps": 2000.0, "seed": -1, "chains": 64, "timings": {"x": 1}})
    assert old.max_steps == 2000 and type(old.max_steps) is int and old.seed == 2 ** 32 - 1
    # numpy's bool (named "bool" since numpy 2) is true or false, not a number
    assert MapConfig(refine=np.False_).refine is False
    with pytest.raises(Exception, match="chains is np.True_, expected an integer"):
        MapConfig(chains=np.True_)
    assert FunnelConfig(noise=(0.0, 1.0), eps=0.1, steps=np.int64(5), merge_radius=0.1).steps == 5


def test_a_probe_finer_than_its_map_and_a_constant_energy_are_said_to_be():
    from landscape import Energy, MapConfig, build_map, funnel_config, funnel_probe
    from landscape.errors import LandscapeError
    import dataclasses

    def tilted(x):
        return (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + x[:, 1] ** 2

    energy = Energy(tilted, 2, data_range=(-2, 2), dtype=torch.float64)
    m = build_map(energy, MapConfig(chains=16, rounds=1, grid=0)).content
    finer = dataclasses.replace(funnel_config(m, chains=4), merge_radius=1e-6)
    with pytest.raises(LandscapeError, match=r"the probe's merge_radius 1e-06 is below the map's"):
        funnel_probe(energy, m, finer)  # (refused after its chains, as a duplicate minimum)
    heard = Notes()
    build_map(Energy(lambda x: 0 * x.sum(1) + 5, 2, data_range=(-1, 1)), MapConfig(chains=16, rounds=1, grid=0),
              reporter=heard)
    assert not [n for n in heard.notes if "resolve steps of" in n], heard.notes  # (float64 would not help)


def _wells_map(**kw):
    """A small map of three wells (2-D) and its energy."""
    from landscape import Energy, MapConfig, build_map

    def wells(x):
        centres = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]], dtype=x.dtype)
        d2 = ((x[:, None, :] - centres) ** 2).sum(-1)
        return -0.2 * torch.logsumexp((torch.tensor([1.0, 0.7, 0.4], dtype=x.dtype) - d2) / 0.2, dim=1)

    energy = Energy(wells, shape=(2,), data_range=(-3.0, 3.0), dtype=torch.float64, name="wells")
    return energy, build_map(energy, MapConfig(chains=16, rounds=1, grid=0), **kw)


def test_a_failed_compile_is_a_warning_from_python_and_a_note_on_the_command_line(monkeypatch, tmp_path, capsys):
    # Where compiling failed the steps ran eagerly without a word from Python (only the
    # command printed a note). A warning says it once per energy; the command, which has
    # its note, does not print it twice.
    import warnings

    from landscape import Energy, fused, sample
    from landscape.errors import CompileWarning

    def no_compiler(fn, **kw):  # (a machine without a C++ compiler: the first call raises)
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", no_compiler)
    energy = Energy(lambda x: ((x ** 2 - 1) ** 2).sum(1), 2, data_range=(-2, 2), dtype=torch.float64, compile=True)
    x0 = torch.zeros(32, 2, dtype=torch.float64)
    with pytest.warns(CompileWarning, match=r"^compiling the steps failed, they ran eagerly: RuntimeError: "
                                            r"InvalidCxxCompiler: No working C\+\+ compiler found$"):
        sample(energy, x0, 16, 0.1, generator=torch.Generator().manual_seed(0))
    assert fused.failure(energy) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (once per energy: not again)
        sample(energy, x0, 16, 0.1, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always")
        code, out, err = run(capsys, "map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box",
                             "-1.5", "2", "--float64", "--chains", "32", "--rounds", "1", "--compile",
                             "--out", tmp_path / "mb.h5")
        assert code == 0, err
        assert (out + err).count("compiling the steps failed, they ran eagerly") == 1
        # (sample, check and funnel said nothing: their steps ran eagerly in silence)
        ckpt = tmp_path / "tiny.pt"
        code, _, err = run(capsys, "train", "--preset", "rings-demo", "--set", "model.kwargs.n_f=8", *TINY, "--out", ckpt)
        assert code == 0, err
        for args in (["sample", ckpt, "--chains", "16", "--steps", "20", "--out", tmp_path / "s.png"],
                     ["check", ckpt, "--chains", "16", "--multiples", "4", "--out", tmp_path / "c.png"]):
            code, out, err = run(capsys, *args, "--compile", "--quiet")
            assert code == 0, err
            assert err.count("note: compiling the steps failed, they ran eagerly: RuntimeError: InvalidCxxCompiler") \
                == 1, (args[0], err)
        code, out, err = run(capsys, "check", ckpt, "--chains", "16", "--multiples", "4", "--out", tmp_path / "j.png",
                             "--compile", "--json")
        assert code == 0 and json.loads(out) and "note: compiling the steps failed" in err
    assert not [w for w in heard if issubclass(w.category, CompileWarning)]


def test_every_call_that_runs_chains_refuses_inference_mode_in_one_line():
    # build_map and the like said so in one line; sample, find_minima, quench,
    # attraction_diffusion, assign_basins and value_and_grad_fn raised autograd's own error.
    from landscape import (ADConfig, Energy, LandscapeError, Minima, assign_basins, attraction_diffusion,
                           find_minima, quench, sample)

    energy = Energy(lambda x: ((x ** 2 - 1) ** 2).sum(1), 1, data_range=(-2, 2), dtype=torch.float64)
    x = torch.full((4, 1), 0.3, dtype=torch.float64)
    two = Minima(torch.tensor([[-1.0], [1.0]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                 torch.ones(2, dtype=torch.int64), torch.zeros(2, dtype=torch.float64))
    calls = {
        "sample": lambda: sample(energy, x, 5, 0.1),
        "find_minima": lambda: find_minima(energy, x, eps=0.1, steps=5, merge_radius=0.1),
        "quench": lambda: quench(energy, x),
        "attraction_diffusion": lambda: attraction_diffusion(energy, x[:1] + 0.7, -x[:1] - 0.7, ADConfig(alpha=20.0)),
        "assign_basins": lambda: assign_basins(energy, two, ADConfig(temperature=0.05, eps=0.05)),
        "value_and_grad_fn": lambda: energy.value_and_grad_fn()(x),
    }
    for name, call in calls.items():
        with torch.inference_mode(), pytest.raises(LandscapeError, match=r"cannot run inside torch\.inference_mode\(\)"
                                                                         r": they need dU/dx from autograd") as info:
            call()
        assert "\n" not in str(info.value), name
    with torch.no_grad():  # (fine: gradients are turned on where needed)
        assert sample(energy, x, 5, 0.1).x.shape == (4, 1)


def test_progress_left_after_a_finished_map_or_probe_is_called_finished_and_cleared_from_python(tmp_path):
    # A notebook cell run twice: build_map(progress_file=...) leaves its progress for the
    # caller to clear. The second run was refused with the command's advice ("pass
    # --resume") for an "unfinished" map: the map is finished, resume=True returns it, and
    # clear_progress (the command's --force) starts afresh.
    import landscape
    from landscape import LandscapeError, funnel_config, funnel_probe
    from landscape.io.progress import progress_path

    path = tmp_path / "cell.h5"
    energy, first = _wells_map(progress_file=path)
    with pytest.raises(LandscapeError, match=rf"^a finished map of {path} is kept in cell\.h5\.partial: pass --resume "
                                             rf"\(resume=True\) to get it back without doing the work again, or "
                                             rf"--force \(it deletes cell\.h5\.partial; from Python: "
                                             rf"clear_progress\('{path}'\)\) to start afresh$"):
        _wells_map(progress_file=path)
    # `landscape info` on it said "unfinished map ... continue it"
    from click.testing import CliRunner
    from landscape.cli.main import cli

    said = CliRunner().invoke(cli, ["info", f"{path}.partial"])
    assert said.exit_code == 0 and said.output.startswith(f"finished map {path} (its progress in"), said.output
    assert said.output.rstrip().endswith("get its result: the same `landscape map` command with --resume (the work "
                                         "is not done again)"), said.output
    assert json.loads(CliRunner().invoke(cli, ["info", str(path), "--json"]).output)["status"] == "finished"
    again = _wells_map(progress_file=path, resume=True)[1]  # (the work not done again)
    np.testing.assert_array_equal(again.content.minima_x, first.content.minima_x)
    landscape.clear_progress(path)
    assert not progress_path(path).exists()
    _wells_map(progress_file=path)
    m = first.content
    funnel_probe(energy, m, funnel_config(m, chains=4, steps=20), progress_file=path)
    with pytest.raises(LandscapeError, match=rf"^a finished funnel probe of {path} is kept in "
                                             r"cell\.h5\.funnel\.partial: pass --resume \(resume=True\) to get it back .*"
                                             rf"clear_progress\('{path}', 'funnel'\)\) to start afresh$"):
        funnel_probe(energy, m, funnel_config(m, chains=4, steps=20), progress_file=path)
    landscape.clear_progress(path, "funnel")
    assert not progress_path(path, "funnel").exists()


def test_data_for_a_probe_whose_chains_all_start_from_noise_are_refused_not_ignored():
    from landscape import LandscapeError, funnel_config, funnel_probe

    energy, result = _wells_map()
    m = result.content
    data = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64).repeat(5, 1)
    noise_only = funnel_config(m, chains=4, steps=20)  # (made without with_data: init "noise")
    with pytest.raises(LandscapeError, match=r"the config's chains all start from noise \(init 'noise'\), so the data "
                                             r"given would go unused: .*funnel_config\(map, \.\.\., with_data=True\)"):
        funnel_probe(energy, m, noise_only, data=data)
    probe = funnel_probe(energy, m, funnel_config(m, chains=4, steps=20, with_data=True), data=data).funnel
    assert set(np.unique(probe.chain_start)) == {0, 1}  # chains from data and from noise


def test_a_data_range_is_two_finite_increasing_numbers():
    from landscape import Energy, LandscapeError

    def bowl(x):
        return (x ** 2).sum(1)

    for box in [(3,), 3, "-1,1", (None, 1), (-3, 3, 99), (-1.0, 1.0, -2.0, 2.0), np.array([[-1.0, 1.0]]), (True, 2)]:
        with pytest.raises(LandscapeError, match=r"^data range must be two numbers \(low, high\), got "):
            Energy(bowl, 2, data_range=box)
    for box in [(1, -1), (0, float("nan")), (1, 1)]:
        with pytest.raises(LandscapeError, match="data range must be finite with low < high"):
            Energy(bowl, 2, data_range=box)
    for box in [(-1, 2), [np.float32(-1), np.int64(2)], np.array([-1.0, 2.0]), torch.tensor([-1.0, 2.0])]:
        got = Energy(bowl, 2, data_range=box).data_range
        assert got == (-1.0, 2.0) and all(type(v) is float for v in got)


def test_a_map_written_to_no_file_name_is_one_line(tmp_path, monkeypatch):
    # write("") and write(".") raised pathlib's ValueError
    from landscape import LandscapeError

    _, result = _wells_map()
    monkeypatch.chdir(tmp_path)
    for name in ("", ".", ".."):
        with pytest.raises(LandscapeError, match=rf"^'{re.escape(name)}' names no file to write: give a file name$"):
            result.write(name)
    assert list(tmp_path.iterdir()) == []


def test_writing_a_map_replaces_only_a_map(tmp_path, capsys):
    # A checkpoint, or any file that is not a map, was replaced without a word. A map is
    # replaced (a notebook cell run again), and so is anything with overwrite=True.
    import h5py

    from landscape import LandscapeError, read_map, write_map

    _, result = _wells_map()
    victim = tmp_path / "victim.pt"
    torch.save({"w": torch.zeros(3)}, victim)
    before = victim.read_bytes()
    with pytest.raises(LandscapeError, match=rf"^{victim} is not a map \(a PyTorch file, a checkpoint\?\): pass "
                                             r"overwrite=True to replace it, or delete it$"):
        result.write(victim)
    assert victim.read_bytes() == before
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "someone/else"
    text = tmp_path / "notes.h5"
    text.write_text("not a map")
    for path, what in ((other, "an HDF5 file of another kind, schema 'someone/else'"),
                       (text, "a file of another kind")):
        with pytest.raises(LandscapeError, match=re.escape(f"{path} is not a map ({what})")):
            result.write(path)
    m = tmp_path / "m.h5"
    result.write(m)
    result.write(m)  # a map of ours: replaced
    meta = result.content.meta
    write_map(victim, result.content, config=meta.config, source=meta.source, tool_version="test", overwrite=True)
    assert read_map(victim).n_minima == result.content.n_minima
    result.write(text, overwrite=True)
    assert read_map(text).n_minima == result.content.n_minima
    # the command keeps its own rule: --force replaces any file, without it none
    victim.write_bytes(before)
    args = ["map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box", "-1.5", "2", "--float64",
            "--chains", "16", "--rounds", "1", "--out", victim]
    code, _, err = run(capsys, *args)
    assert code == 1 and f"{victim} exists: pass --force to overwrite it" in err
    code, _, err = run(capsys, *args, "--force")
    assert code == 0 and read_map(victim).n_minima == 3, err
