"""The mapper on a CUDA device: skipped where torch sees none (CI has none).

What the CPU suite cannot catch: a tensor left on the GPU where the pipeline hands it to
numpy or indexes a CPU tensor with it. The first whole map of a 32x32 model on a GPU
stopped that way after its exploration (the minima's energies stayed on the device).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.energy import Energy
from landscape.mapping.minima import find_minima
from landscape.mapping.pipeline import build_map
from landscape.mapping.settings import MapConfig
from landscape.potentials import mueller_brown
from landscape.train.nets import build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST = dict(chains=64, max_steps=400, patience=100, attempts=1, grid=0)


def _mueller_brown(device: str) -> Energy:
    return Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64, device=device)


def test_minima_keep_points_on_the_device_and_the_rest_on_the_cpu():
    e = _mueller_brown("cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    m = find_minima(e, e.uniform_noise(64, g), eps=0.01, steps=0, merge_radius=0.05, generator=g)
    assert m.x.device.type == "cuda"
    assert {m.energy.device.type, m.hits.device.type, m.grad_norm.device.type} == {"cpu"}
    assert int(m.hits.sum()) == 64


def test_a_float64_map_on_the_gpu_equals_the_cpu_map():
    cpu = build_map(_mueller_brown("cpu"), MapConfig(**FAST)).content
    gpu = build_map(_mueller_brown("cuda"), MapConfig(**FAST)).content
    assert len(gpu.minima_energy) == len(cpu.minima_energy) == 3
    np.testing.assert_allclose(gpu.minima_x, cpu.minima_x, atol=1e-4)
    np.testing.assert_allclose(gpu.tree.heights, cpu.tree.heights, rtol=1e-6)  # the saddles: no noise in them
    # the basins come from noisy chains, and a GPU draws other noise than the CPU for the
    # same seed: the weakest and strongest pulls are not in doubt (a middle one can be)
    for c in (cpu, gpu):
        assert c.levels[0].n_basins == 3 and c.levels[-1].n_basins == 1


@pytest.mark.parametrize("compile", [False, True])
def test_a_32x32_network_maps_on_the_gpu(compile):
    torch.manual_seed(0)
    net = build_model("vanilla", {"n_f": 8, "n_c": 1}).cuda().eval()
    e = Energy(net, shape=(1, 32, 32), data_range=(-1.0, 1.0), device="cuda", compile=compile)
    content = build_map(e, MapConfig(chains=16, max_steps=200, patience=50, attempts=1, neighbours=3, grid=0,
                                     ladder=(0.1, 1.0), ladder_extend=1)).content
    n = len(content.minima_energy)
    assert n >= 1 and content.minima_x.shape == (n, 1, 32, 32)
    assert all(1 <= p.n_basins <= n for p in content.levels)
    assert np.isfinite(content.minima_energy).all()


def test_a_32x32_map_on_the_gpu_is_the_same_map_twice():
    # The CPU gives the same map twice; on a GPU two maps of one command had differed (cuDNN
    # free to pick convolution algorithms that round differently from run to run, and the
    # quench of a float32 network follows any rounding). Energy.frozen selects cuDNN's
    # deterministic algorithms for every stage.
    torch.manual_seed(0)
    net = build_model("vanilla", {"n_f": 8, "n_c": 1}).cuda().eval()
    e = Energy(net, shape=(1, 32, 32), data_range=(-1.0, 1.0), device="cuda")
    cfg = MapConfig(chains=16, max_steps=200, patience=50, attempts=1, neighbours=3, grid=0, ladder=(0.1, 1.0),
                    ladder_extend=1)
    a, b = (build_map(e, cfg).content for _ in range(2))
    np.testing.assert_array_equal(a.minima_x, b.minima_x)
    np.testing.assert_array_equal(a.minima_energy, b.minima_energy)
    np.testing.assert_array_equal(a.tree.linkage, b.tree.linkage)
    assert [p.basin.tolist() for p in a.levels] == [p.basin.tolist() for p in b.levels]


def test_a_funnel_probe_on_the_gpu_finds_the_planted_funnel(tmp_path):
    from test_funnel import make_map, planted_data, planted_energy, probe_config

    from landscape.mapping.funnel import funnel_probe, funnel_sinks
    from landscape.potentials import planted_funnel

    data = torch.from_numpy(planted_data(400, seed=0))
    _, content = make_map(tmp_path, planted_funnel, data, "funnel")
    energy = planted_energy(planted_funnel)
    on_gpu = Energy(energy.fn, shape=(2,), data_range=energy.data_range, dtype=torch.float64, device="cuda")
    f = funnel_probe(on_gpu, content, probe_config(), data=data).funnel
    assert f.score >= 0.8 and funnel_sinks(f) == [0]
    np.testing.assert_allclose(f.occupancy.sum(1), 1.0)


def test_landscape_sample_and_check_run_on_the_gpu(tmp_path, capsys):
    from conftest import TINY, run

    ckpt = tmp_path / "rings.pt"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", ckpt, "--set", "model.kwargs.n_f=8",
                       *TINY, "--device", "cuda")
    assert code == 0, err
    saved = tmp_path / "ends.npz"
    code, _, err = run(capsys, "sample", ckpt, "--chains", "32", "--steps", "20", "--out", tmp_path / "s.png",
                       "--save", saved, "--quiet", "--device", "cuda")
    assert code == 0, err
    ends = np.load(saved)
    assert np.isfinite(ends["end"]).all() and not np.array_equal(ends["start"], ends["end"])
    code, _, err = run(capsys, "check", ckpt, "--chains", "16", "--multiples", "1,3", "--quiet", "--device", "cuda")
    assert code == 0, err


def test_landscape_map_funnel_and_diagnose_of_a_checkpoint_on_the_gpu(tmp_path, capsys):
    from conftest import TINY, run

    from landscape.io.mapfile import read_map

    ckpt, out = tmp_path / "rings.pt", tmp_path / "rings.h5"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", ckpt, "--set", "model.kwargs.n_f=8",
                       *TINY, "--device", "cuda")
    assert code == 0, err
    code, _, err = run(capsys, "map", ckpt, "--chains", "16", "--steps", "20", "--ladder", "1", "--ladder-extend", "0",
                       "--max-steps", "300", "--patience", "100", "--attempts", "1", "--neighbours", "3", "--out", out,
                       "--quiet", "--device", "cuda")
    assert code == 0, err
    code, _, err = run(capsys, "funnel", out, "--chains", "16", "--steps", "40", "--quiet", "--device", "cuda")
    assert code == 0, err
    code, stdout, err = run(capsys, "diagnose", out, "--device", "cuda")
    assert code == 0, err
    c = read_map(out)
    assert c.funnel is not None and c.diagnosis is not None
    assert len(c.diagnosis.spurious) == len(c.minima_energy)


def test_a_batch_of_trials_interrupted_on_the_gpu_resumes_to_the_same_trials():
    # The batch's state goes to the CPU to be saved and back to the device to resume.
    from landscape.mapping.ad import ADConfig, attraction_diffusion
    from test_ad import _copy_progress

    e = _mueller_brown("cuda")
    starts = torch.tensor([[-0.56, 1.44], [0.62, 0.03], [-0.05, 0.47]] * 4, dtype=torch.float64, device="cuda")
    targets = starts.roll(1, 0)
    config = ADConfig(temperature=5.0, alpha=20.0, eps=0.01, max_steps=600, patience=100, delta=0.05)
    g = torch.Generator(device="cuda").manual_seed(1)
    saved = []
    whole = attraction_diffusion(e, starts, targets, config, g, on_sync=lambda get: saved.append(
        (_copy_progress(get()), g.get_state())))
    progress, state = saved[len(saved) // 2]
    assert progress.rows.device.type == "cpu" and progress.running["x"].device.type == "cpu"
    g2 = torch.Generator(device="cuda").manual_seed(0)
    g2.set_state(state)
    again = attraction_diffusion(e, starts, targets, config, g2, resume_from=progress)
    for name in ("success", "barrier", "steps", "final_distance", "peak_x", "end_x"):
        assert torch.equal(getattr(again, name), getattr(whole, name)), name
    lost = torch.ones(starts.shape[0], dtype=torch.bool)  # (trials that had failed: their paths are not saved)
    lost[progress.path_rows] = False
    assert torch.equal(again.path_len.cpu(), torch.where(lost, 0, whole.path_len.cpu()))


def test_the_python_api_on_the_gpu_takes_numpy_data_and_writes_the_map(tmp_path):
    # The README's path from Python with the energy on the GPU: data from numpy (kept on
    # the CPU, rows moved as chains start from them), the funnel probe with the command's
    # policy on the map in memory, the diagnosis, the file.
    from landscape import diagnose_map, funnel_config, funnel_probe, read_map
    from landscape.potentials import PLANTED_BOX, planted_data, planted_funnel

    e = Energy(planted_funnel, shape=(2,), data_range=PLANTED_BOX, dtype=torch.float64, device="cuda")
    data = planted_data(200, seed=0)
    result = build_map(e, MapConfig(**FAST), data=data)
    m = result.content
    assert m.settings()["init"] == "both"
    probe = funnel_probe(e, m, funnel_config(m, chains=16, with_data=True), data=data)
    assert probe.funnel.score >= 0.8
    assert diagnose_map(e, probe.content, data).spurious.shape == (probe.content.n_minima,)
    back = read_map(result.write(tmp_path / "m.h5"))
    np.testing.assert_array_equal(back.minima_energy, m.minima_energy)
