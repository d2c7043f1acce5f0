"""Energies from every source: functions, factories with weights, TorchScript, checkpoints."""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import click
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from landscape.cli.options import ENERGY_OPTIONS, energy_options
from landscape.train.energies import resolve_energy
from landscape.errors import LandscapeError
from landscape.io.sources import (
    energy_from_factory,
    energy_from_function,
    energy_from_torchscript,
    is_torchscript,
    load_object,
    parse_shape,
    read_state_dict,
)
from landscape.train.checkpoint import FORMAT, VERSION, atomic_save, sha256_of
from landscape.train.nets import build_model

POTENTIALS = '''
import torch

def double_well(x):
    return ((x ** 2 - 1) ** 2).sum(1)

def column_sum(x):          # the classic mistake: sums over the batch
    return (x ** 2).sum(0)

def as_numpy(x):
    return (x ** 2).sum(1).numpy()

def detached(x):
    return (x ** 2).sum(1).detach()

def raises(x):
    raise ValueError("boom")

NOT_A_FUNCTION = 3.0
'''

NETS = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(2, width), nn.Softplus(), nn.Linear(width, 1))

    def forward(self, x):
        return self.f(x).squeeze(1)

class ShapedNet(Net):
    input_shape = (2,)

def not_a_module():
    return lambda x: x.sum(1)
'''


def one_line_error(excinfo, pattern=None):
    text = str(excinfo.value)
    assert "\n" not in text, text
    if pattern is not None:
        assert pattern in text, text
    return text


@pytest.fixture
def potentials(tmp_path):
    path = tmp_path / "potentials.py"
    path.write_text(POTENTIALS)
    return path


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


@pytest.fixture
def ckpt(tmp_path):
    """One of our checkpoints, written directly (a tiny ToyNet; no training)."""
    torch.manual_seed(0)
    kwargs = {"n_f": 8, "energy_scale": 128.0}
    model = build_model("toy", kwargs)
    path = tmp_path / "rings.pt"
    atomic_save({
        "format": FORMAT, "version": VERSION,
        "model": {"arch": "toy", "kwargs": kwargs}, "state_dict": model.state_dict(),
        "data": {"name": "rings", "shape": [2], "range": [-4.6, 4.6]},
        "sampler": {"epsilon": 0.125, "tau": 1.0, "steps": 5, "init": "persistent", "mh": False},
        "regime": "convergent", "step": 6, "config": {"preset": "toy-convergent"}, "metrics": {},
    }, path)
    return path, model


# ---------------------------------------------------------------------------------------
# functions


def test_function_from_a_file_evaluates_in_float64(potentials):
    spec = f"{potentials}:double_well"
    e = energy_from_function(spec, (2,), (-2.0, 2.0), dtype=torch.float64)
    assert e.name == spec and e.shape == (2,) and e.data_range == (-2.0, 2.0) and e.dtype == torch.float64
    x = torch.tensor([[1.0, -1.0], [0.0, 0.0], [2.0, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(e(x), torch.tensor([0.0, 2.0, 9.0 + 0.5625], dtype=torch.float64))
    _, g = e.value_and_grad_fn()(x)
    torch.testing.assert_close(g, 4 * x * (x**2 - 1))
    # loading the file again gives an independent module
    assert load_object(spec) is not load_object(spec)


def test_function_from_a_dotted_module(tmp_path, monkeypatch):
    pkg = tmp_path / "srcpkg_potentials"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "wells.py").write_text("def harmonic(x):\n    return 0.5 * (x ** 2).flatten(1).sum(1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    e = energy_from_function("srcpkg_potentials.wells:harmonic", (1, 2, 2), None)
    assert e(torch.ones(5, 1, 2, 2)).tolist() == [2.0] * 5


@pytest.mark.parametrize(
    "attr, pattern",
    [
        ("missing", "has no attribute 'missing'"),
        ("NOT_A_FUNCTION", "not a function"),
        ("column_sum", "must map [B, *shape] to [B]: for input [3, 2] it returned shape [2]"),
        ("as_numpy", "must return a torch.Tensor of shape [B], got ndarray"),
        ("detached", "no gradient with respect to x"),
        ("raises", "ValueError: boom"),
    ],
)
def test_bad_functions_get_one_line_errors_naming_the_spec(potentials, attr, pattern):
    spec = f"{potentials}:{attr}"
    with pytest.raises(LandscapeError) as excinfo:
        energy_from_function(spec, (2,), (-2.0, 2.0))
    assert one_line_error(excinfo, pattern).startswith(spec)


def test_bad_specs_get_one_line_errors(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(x:\n    return x\n")
    cases = [
        (f"{tmp_path / 'nowhere.py'}:f", "no such file"),
        (f"{broken}:f", "importing"),
        ("no_such_module_for_sure:f", "no module named 'no_such_module_for_sure'"),
        ("potentials.py", "expected FILE.py:NAME or package.module:NAME"),
        (f"{broken}:", "expected FILE.py:NAME"),
    ]
    for spec, pattern in cases:
        with pytest.raises(LandscapeError) as excinfo:
            energy_from_function(spec, (2,))
        one_line_error(excinfo, pattern)


def test_parse_shape():
    assert parse_shape("2") == (2,)
    assert parse_shape("3,32,32") == parse_shape("3x32x32") == parse_shape(" 3, 32, 32 ") == (3, 32, 32)
    for bad in ("", "0", "2,-1", "two", "3,,2"):
        with pytest.raises(LandscapeError) as excinfo:
            parse_shape(bad)
        one_line_error(excinfo, "shape")


# ---------------------------------------------------------------------------------------
# factories and weights


def test_factory_with_weights_matches_the_original_module(nets, tmp_path):
    torch.manual_seed(1)
    original = load_object(f"{nets}:Net")(width=8)
    x = torch.randn(6, 2)
    expected = original(x).detach()
    sd = original.state_dict()
    files = {
        "bare.pt": sd,
        "ddp.pt": {"module." + k: v for k, v in sd.items()},
        "nested.pt": {"model_state_dict": sd, "epoch": 3},
        "script.pt": {"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "step": 3},
    }
    for name, content in files.items():
        torch.save(content, tmp_path / name)
        e = energy_from_factory(f"{nets}:Net", tmp_path / name, (2,), (-1.0, 1.0), kwargs={"width": 8})
        torch.testing.assert_close(e(x), expected, msg=name)
        assert not e.module.training
    e64 = energy_from_factory(f"{nets}:Net", tmp_path / "bare.pt", (2,), kwargs={"width": 8}, dtype=torch.float64)
    torch.testing.assert_close(e64(x.double()), expected.double(), rtol=1e-5, atol=1e-5)
    # the network says its own shape
    assert energy_from_factory(f"{nets}:ShapedNet", None, None).shape == (2,)


def test_factory_errors(nets, tmp_path):
    torch.save(load_object(f"{nets}:Net")(width=8).state_dict(), tmp_path / "w8.pt")
    torch.save({"f.0.weight": torch.zeros(8, 2), "g.bias": torch.zeros(1)}, tmp_path / "keys.pt")
    torch.save({"optimizer": {"lr": 0.1}}, tmp_path / "no_sd.pt")
    torch.save(torch.nn.Linear(2, 1), tmp_path / "whole.pt")  # the model pickled, not its state dict
    w8 = torch.load(tmp_path / "w8.pt")
    torch.save({"model": w8, "ema": w8, "step": 3}, tmp_path / "two.pt")
    cases = [
        ({"spec": f"{nets}:Net", "weights": tmp_path / "two.pt", "kwargs": {"width": 8}},
         "two.pt: holds 2 state dicts (under 'ema', 'model'): save the one to map on its own"),
        ({"spec": f"{nets}:Net", "weights": tmp_path / "whole.pt"},
         "whole.pt: refused to load: it asks to run code (it pickles torch.nn.modules.linear.Linear); a state dict "
         "holds only tensors and plain data; save the weights alone (torch.save(model.state_dict(), path)) and give "
         "the network's code with --model FILE.py:FACTORY --weights path"),
        ({"spec": f"{nets}:Net", "weights": tmp_path / "keys.pt", "kwargs": {"width": 8}},
         "missing keys f.0.bias, f.2.bias, f.2.weight; unexpected keys g.bias"),
        ({"spec": f"{nets}:Net", "weights": tmp_path / "w8.pt", "kwargs": {"width": 4}}, "size mismatch for f.0.weight"),
        ({"spec": f"{nets}:Net", "weights": tmp_path / "no_sd.pt"}, "not a state dict"),
        ({"spec": f"{nets}:Net", "weights": tmp_path / "absent.pt"}, "no such file"),
        ({"spec": f"{nets}:Net", "weights": None, "kwargs": {"depth": 2}}, "unexpected keyword argument 'depth' (its arguments go in --model-kwargs '{\"name\": value}')"),
        ({"spec": f"{nets}:not_a_module", "weights": None}, "expected a torch.nn.Module"),
        ({"spec": f"{nets}:Net", "weights": None, "shape": None}, "give the shape of one example"),
    ]
    for kw, pattern in cases:
        kw.setdefault("shape", (2,))
        with pytest.raises(LandscapeError) as excinfo:
            energy_from_factory(**kw)
        one_line_error(excinfo, pattern)


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["pickle-2", "pickle-default", "torch.save"])
def test_weights_that_ask_to_run_code_are_refused_unexecuted(tmp_path, nets, how):
    sentinel = tmp_path / "PWNED"
    Evil.sentinel = sentinel
    path = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save({"state_dict": {"w": Evil()}}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"w": Evil()}, f, protocol=2 if how == "pickle-2" else pickle.DEFAULT_PROTOCOL)
    with pytest.raises(LandscapeError) as excinfo:
        read_state_dict(path)
    one_line_error(excinfo, "refused to load")
    with pytest.raises(LandscapeError):
        energy_from_factory(f"{nets}:Net", path, (2,))
    assert not sentinel.exists()


# ---------------------------------------------------------------------------------------
# TorchScript


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_is_detected_and_loads(tmp_path, nets):
    torch.manual_seed(2)
    net = load_object(f"{nets}:Net")(width=8)
    ts, sd, text = tmp_path / "net.ts", tmp_path / "net_sd.pt", tmp_path / "notes.txt"
    torch.jit.save(torch.jit.script(net), ts)
    torch.save(net.state_dict(), sd)
    text.write_text("not a zip")
    assert is_torchscript(ts) and not is_torchscript(sd) and not is_torchscript(text)
    assert not is_torchscript(tmp_path / "absent.pt")
    x = torch.randn(5, 2)
    e = energy_from_torchscript(ts, (2,), (-4.0, 4.0))
    torch.testing.assert_close(e(x), net(x).detach())
    loaded = resolve_energy(ts, shape="2", device="cpu")
    assert loaded.source["kind"] == "torchscript" and loaded.source["sha256"] == sha256_of(ts)
    assert loaded.label == "net" and loaded.checkpoint is None and loaded.regime == "unknown"
    with pytest.raises(LandscapeError) as excinfo:
        resolve_energy(ts, device="cpu")
    one_line_error(excinfo, "--shape")
    with pytest.raises(LandscapeError) as excinfo:  # the wrong shape: the interpreter's error, not its traceback
        resolve_energy(ts, shape="3", device="cpu")
    one_line_error(excinfo, "failed: RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x3 and 2x8)")
    with pytest.raises(LandscapeError) as excinfo:
        read_state_dict(ts)
    one_line_error(excinfo, "TorchScript")


# ---------------------------------------------------------------------------------------
# resolve_energy: the command-line rules


def test_resolve_energy_on_our_checkpoint(ckpt):
    path, model = ckpt
    loaded = resolve_energy(path, device="cpu")
    e = loaded.energy
    assert e.shape == (2,) and e.data_range == (-4.6, 4.6) and e.dtype == torch.float32
    assert loaded.dataset == "rings" and loaded.regime == "convergent" and loaded.label == "rings"
    assert loaded.sampler == {"epsilon": 0.125, "tau": 1.0, "steps": 5, "init": "persistent", "mh": False}
    assert loaded.checkpoint["step"] == 6
    assert loaded.source == {"kind": "checkpoint", "path": str(path), "sha256": sha256_of(path),
                             "shape": [2], "box": [-4.6, 4.6], "dtype": "float32"}
    x = torch.randn(4, 2)
    torch.testing.assert_close(e(x), model(x).detach())
    wide = resolve_energy(path, box=(-6.0, 6.0), float64=True, device="cpu")
    assert wide.energy.data_range == (-6.0, 6.0) and wide.source["box"] == [-6.0, 6.0]
    assert wide.energy.dtype == torch.float64
    torch.testing.assert_close(wide.energy(x.double()).float(), model(x).detach(), rtol=1e-4, atol=1e-3)
    u, g = wide.energy.value_and_grad_fn()(x.double())
    assert u.dtype == g.dtype == torch.float64
    for kw, pattern in [
        ({"shape": (3,)}, "not --shape [3]"),
        ({"arch": "toy"}, "--arch is only for bare state dicts"),
        ({"box": (1.0, -1.0)}, "--box LOW HIGH needs finite LOW < HIGH"),
        ({"weights": "w.pt"}, "--weights goes with --model"),
    ]:
        with pytest.raises(LandscapeError) as excinfo:
            resolve_energy(path, device="cpu", **kw)
        one_line_error(excinfo, pattern)


def test_resolve_energy_needs_exactly_one_source(ckpt, potentials, tmp_path):
    path, _ = ckpt
    spec = f"{potentials}:double_well"
    for target, kw, pattern in [
        (None, {}, "no energy given: give a checkpoint, --energy file.py:function, or --model"),
        (path, {"energy": spec}, "a checkpoint and --energy given together"),
        (None, {"energy": spec, "model": "nets.py:Net"}, "--energy and --model given together"),
        (None, {"energy": spec}, "--energy " + spec + " needs --shape"),
        (tmp_path / "absent.pt", {}, "no such file"),
        (None, {"energy": spec, "shape": (2,), "arch": "toy"}, "--arch is for a bare state-dict file"),
    ]:
        with pytest.raises(LandscapeError) as excinfo:
            resolve_energy(target, device="cpu", **kw)
        one_line_error(excinfo, pattern)


def test_resolve_energy_function_and_model_sources(potentials, nets, tmp_path):
    loaded = resolve_energy(None, energy=f"{potentials}:double_well", shape="2", box=(-2, 2), float64=True, device="cpu")
    assert loaded.energy.dtype == torch.float64 and loaded.label == "double_well"
    assert loaded.source == {"kind": "function", "spec": f"{potentials}:double_well", "shape": [2],
                             "box": [-2.0, 2.0], "dtype": "float64"}
    weights = tmp_path / "w.pt"
    torch.save(load_object(f"{nets}:Net")(width=4).state_dict(), weights)
    loaded = resolve_energy(None, model=f"{nets}:Net", weights=weights, model_kwargs='{"width": 4}', shape=(2,),
                            device="cpu")
    assert loaded.label == "w" and loaded.source["kind"] == "model"
    assert loaded.source["weights_sha256"] == sha256_of(weights) and loaded.source["kwargs"] == {"width": 4}
    with pytest.raises(LandscapeError) as excinfo:
        resolve_energy(None, model=f"{nets}:Net", model_kwargs="[4]", shape=(2,), device="cpu")
    one_line_error(excinfo, "must be a JSON object")


def reference_toynet(n=32):
    """The reference code's ToyNet layout: 1x1 convolutions on [B, 2, 1, 1], output f."""
    return nn.Sequential(
        nn.Conv2d(2, n, 1), nn.LeakyReLU(0.05), nn.Conv2d(n, 2 * n, 1), nn.LeakyReLU(0.05),
        nn.Conv2d(2 * n, 2 * n, 1), nn.LeakyReLU(0.05), nn.Conv2d(2 * n, 2 * n, 1), nn.LeakyReLU(0.05),
        nn.Conv2d(2 * n, 1, 1),
    )


def test_bare_reference_state_dict_needs_arch_and_epsilon(tmp_path):
    torch.manual_seed(3)
    f = reference_toynet()
    path = tmp_path / "net_1000.pth"
    torch.save({"f." + k: v for k, v in f.state_dict().items()}, path)
    for kw in ({}, {"train_epsilon": 0.125}, {"arch": "toy"}):
        with pytest.raises(LandscapeError) as excinfo:
            resolve_energy(path, device="cpu", **kw)
        one_line_error(excinfo, "is a bare state dict: add --arch (digits, nonlocal, toy, vanilla) and --train-epsilon")
    loaded = resolve_energy(path, arch="toy", train_epsilon=0.125, box=(-4.6, 4.6), device="cpu")
    assert loaded.energy.shape == (2,) and loaded.energy.data_range == (-4.6, 4.6) and loaded.label == "net_1000"
    assert loaded.source["kind"] == "state_dict" and loaded.source["sha256"] == sha256_of(path)
    assert loaded.source["arch"] == "toy" and loaded.source["train_epsilon"] == 0.125
    assert loaded.checkpoint is None and loaded.sampler is None and loaded.regime == "unknown"
    x = torch.randn(3, 2)
    expected = 2 / 0.125**2 * f(x.reshape(3, 2, 1, 1)).reshape(3).detach()
    torch.testing.assert_close(loaded.energy(x), expected, rtol=1e-5, atol=1e-4)
    torch.save({"f." + k: v for k, v in reference_toynet(8).state_dict().items()}, path)
    with pytest.raises(LandscapeError) as excinfo:
        resolve_energy(path, device="cpu", arch="toy", train_epsilon=0.125)
    one_line_error(excinfo, "weights do not fit")  # the default ToyNet is wider than this one


def test_a_foreign_training_checkpoint_points_to_model(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 4}, path)
    with pytest.raises(LandscapeError) as excinfo:
        resolve_energy(path, device="cpu")
    one_line_error(excinfo, "--model file.py:Factory --weights")


# ---------------------------------------------------------------------------------------
# the click options


def test_energy_options_parse_and_reach_resolve_energy(potentials):
    @click.command()
    @click.argument("checkpoint", required=False)
    @energy_options
    def show(checkpoint, **options):
        assert set(options) == set(ENERGY_OPTIONS)
        if options["shape"] == (3, 32, 32):
            click.echo(f"{options['shape']} {options['box']} {options['model_kwargs']} {options['device']}")
            return
        loaded = resolve_energy(checkpoint, **options)
        click.echo(f"{loaded.label} {loaded.energy(torch.zeros(1, 2, dtype=loaded.energy.dtype)).item():g}")

    runner = CliRunner()
    result = runner.invoke(show, ["--shape", "3x32x32", "--box", "-1", "1", "--model-kwargs", '{"a": 1}',
                                  "--device", "cuda:1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "(3, 32, 32) (-1.0, 1.0) {'a': 1} cuda:1"
    result = runner.invoke(show, ["--energy", f"{potentials}:double_well", "--shape", "2", "--float64",
                                  "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "double_well 2"
    for bad in (["--shape", "2,x"], ["--device", "gpu"], ["--model-kwargs", "{oops"], ["--arch", "resnet"]):
        result = runner.invoke(show, bad)
        assert result.exit_code == 2, (bad, result.output)
    help_text = runner.invoke(show, ["--help"]).output
    for flag in ("--energy", "--model", "--weights", "--model-kwargs", "--shape", "--box", "--arch",
                 "--train-epsilon", "--float64", "--device"):
        assert flag in help_text


def test_module_files_can_import_their_neighbours(tmp_path):
    (tmp_path / "helpers_for_sources_test.py").write_text("def square(x):\n    return x ** 2\n")
    (tmp_path / "uses_helper.py").write_text(textwrap.dedent("""
        from helpers_for_sources_test import square

        def energy(x):
            return square(x).sum(1)
    """))
    e = energy_from_function(f"{tmp_path / 'uses_helper.py'}:energy", (2,))
    assert e(torch.ones(2, 2)).tolist() == [2.0, 2.0]


def test_the_energy_behind_a_map_is_rebuilt_from_its_source_record(potentials, nets, ckpt, tmp_path):
    from types import SimpleNamespace

    from landscape.train.energies import energy_for_map

    def as_map(loaded):
        return SimpleNamespace(meta=SimpleNamespace(source=json.loads(json.dumps(loaded.source))))

    weights = tmp_path / "w.pt"
    torch.save(load_object(f"{nets}:Net")(width=4).state_dict(), weights)
    sources = [
        resolve_energy(None, energy=f"{potentials}:double_well", shape="2", box=(-2, 2), float64=True, device="cpu"),
        resolve_energy(None, model=f"{nets}:Net", weights=weights, model_kwargs='{"width": 4}', shape=(2,),
                       device="cpu"),
        resolve_energy(ckpt[0], device="cpu"),
    ]
    # Python code is run only when the user names it again (--energy / --model); the
    # checkpoint is data and is rebuilt from the record.
    named = [{"energy": f"{potentials}:double_well"}, {"network": f"{nets}:Net"}, {}]
    x = torch.randn(5, 2)
    for loaded, options in zip(sources, named):
        again = energy_for_map(tmp_path / "m.h5", as_map(loaded), device="cpu", **options)
        assert again.source["kind"] == loaded.source["kind"] and again.energy.data_range == loaded.energy.data_range
        torch.testing.assert_close(again.energy(x.to(again.energy.dtype)), loaded.energy(x.to(loaded.energy.dtype)))
    # A model file that changed since the map was made is refused, in one line.
    record = as_map(sources[1])
    torch.save(load_object(f"{nets}:Net")(width=4).state_dict(), weights)
    with pytest.raises(LandscapeError) as excinfo:
        energy_for_map(tmp_path / "m.h5", record, device="cpu", network=f"{nets}:Net")
    one_line_error(excinfo, "changed since")
    with pytest.raises(LandscapeError) as excinfo:
        energy_for_map(tmp_path / "m.h5", SimpleNamespace(meta=SimpleNamespace(source="x")), device="cpu")
    one_line_error(excinfo, "does not record what energy")


# ---------------------------------------------------------------------------------------
# one thread policy


def test_one_thread_policy_for_every_energy(monkeypatch, potentials):
    from landscape.energy import cpu_threads
    from landscape.train.nets import build_model

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    small = build_model("toy", {"n_f": 8})
    assert cpu_threads(lambda x: x.sum(1), "cpu") == 1
    assert cpu_threads(small, "cpu") == 1
    assert cpu_threads(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)), "cpu") is None
    assert cpu_threads(torch.nn.Linear(1000, 1000), "cpu") is None  # 1M parameters
    assert cpu_threads(small, "cuda") is None
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads(small, "cpu") is None
    # Loading an energy for any command applies it.
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        resolve_energy(None, energy=f"{potentials}:double_well", shape="2", box=(-2, 2), device="cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_energies_on_a_gpu_run_with_deterministic_cudnn_kernels(monkeypatch):
    # A map's every stage runs its energy inside frozen(): on a CUDA device cuDNN then uses
    # deterministic algorithms only (the same map twice), and the flags are restored after.
    from landscape.energy import Energy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # (an Energy on cuda needs CUDA; nothing runs there)
    from landscape.train.nets import build_model

    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark)
    try:
        cudnn.deterministic, cudnn.benchmark = False, True
        for fn in (lambda x: x.sum(1), build_model("toy", {"n_f": 8})):
            on_gpu = Energy(fn, (2,), device="cuda")  # (nothing moves: a module's owner places it)
            with on_gpu.frozen():
                assert (cudnn.deterministic, cudnn.benchmark) == (True, False)
                with pytest.raises(KeyboardInterrupt), on_gpu.frozen():
                    raise KeyboardInterrupt
                assert (cudnn.deterministic, cudnn.benchmark) == (True, False)  # (nested: the outer's)
            assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
            with Energy(fn, (2,), device="cpu").frozen():
                assert (cudnn.deterministic, cudnn.benchmark) == (False, True)  # (the CPU's chains: untouched)
    finally:
        cudnn.deterministic, cudnn.benchmark = before


_FAULTS = """
import resource, sys, torch
from landscape.train.energies import resolve_energy
if sys.argv[1] == "load":
    resolve_energy(None, energy="landscape.potentials:mueller_brown", shape="2", box=(-2, 2), device="cpu")
x = torch.ones(16, 1 << 20)  # 64 MiB: above every threshold glibc picks by itself
for _ in range(3):
    (x * 2).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    (x * 2).sum()  # a 64 MiB temporary, freed at once
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_loading_an_energy_keeps_freed_memory_for_reuse():
    # By default glibc unmaps a freed 64 MiB block and the next one faults its pages in
    # again (about 16,000 per block); once an energy is loaded for a command, freed blocks
    # are reused. A user's own allocator settings are left alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}

    def faults(mode: str, **extra: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                              env={**env, **extra}, check=True)
        return int(done.stdout.split()[-1])

    plain = faults("plain")
    assert plain > 20 * 10_000
    # (0 on an idle machine; a host that reclaims cold pages by itself can fault a block or
    # two in again: one in five of the default's faults is still the setting at work)
    assert faults("load") < plain / 5
    assert faults("load", MALLOC_TRIM_THRESHOLD_="131072") > 20 * 10_000


def test_loading_a_network_leaves_the_callers_random_numbers_as_they_were(nets, ckpt):
    # Building the network drew its initial weights (replaced by the file's) from torch's
    # global generator: a caller's seeded draws after loading were not the seed's.
    from landscape.train.checkpoint import energy_from_checkpoint

    path, model = ckpt
    weights = nets.parent / "net.pt"
    f = nn.Sequential(nn.Linear(2, 16), nn.Softplus(), nn.Linear(16, 1))
    torch.save({f"f.{k}": v for k, v in f.state_dict().items()}, weights)
    loaders = {"energy_from_checkpoint": lambda: energy_from_checkpoint(path)[0],
               "energy_from_factory": lambda: energy_from_factory(f"{nets}:Net", weights, (2,), (-2, 2))}
    for name, load in loaders.items():
        torch.manual_seed(0)
        want = torch.rand(3)
        torch.manual_seed(0)
        energy = load()
        assert torch.equal(torch.rand(3), want), name
        assert energy(torch.zeros(1, 2)).shape == (1,)
    net = energy_from_checkpoint(path)[0].fn
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), model.state_dict().values()))


def test_a_factory_s_box_is_checked_before_its_network_is_built(tmp_path):
    path = tmp_path / "counting.py"
    path.write_text("import torch\nBUILT = []\n\ndef Net():\n    BUILT.append(1)\n"
                    "    return torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Flatten(0))\n")
    for box in [(2,), 2, "-1,1", (None, 1), (-3, 3, 99)]:
        with pytest.raises(LandscapeError, match=r"^data range must be two numbers \(low, high\), got "):
            energy_from_factory(f"{path}:Net", None, (2,), box)
    with pytest.raises(LandscapeError, match=r"^data range must be two numbers"):
        energy_from_function(f"{path}:Net", (2,), (1, 2, 3))
    assert energy_from_factory(f"{path}:Net", None, (2,), (-1, 1)).data_range == (-1.0, 1.0)
