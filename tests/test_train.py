"""The ML learning loop: checkpoints, exact resume, data-parallel ranks, diagnostics output."""

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.errors import LandscapeError
from landscape.train.checkpoint import load_checkpoint, model_from_checkpoint
from landscape.train.config import Config, apply_overrides, get_preset
from landscape.train.loop import read_metrics, run_dir_for, train

TINY = [
    "train.steps=6",
    "train.batch_size=20",
    "train.ckpt_every=3",
    "train.log_every=1",
    "train.plot_every=100",
    "train.eval_every=3",
    "sampler.steps=5",
    "sampler.bank_size=40",
]


def tiny(preset="toy-convergent", *extra):
    small = ["model.kwargs.n_f=8"] if get_preset(preset).model.arch == "toy" else ["model.kwargs.hidden=[16]"]
    return apply_overrides(get_preset(preset), TINY + small + list(extra))


class Kill(Exception):
    pass


@pytest.mark.slow
def test_checkpoint_contract_and_run_log(tmp_path):
    out = tmp_path / "rings.pt"
    result = train(tiny(), out)
    assert result.step == 6 and not result.stopped_early
    ckpt = torch.load(out, weights_only=True)  # the contract: plain data and tensors only
    assert ckpt["format"] == "ebm-landscape/checkpoint" and ckpt["version"] == 1
    assert ckpt["model"]["arch"] == "toy" and ckpt["model"]["kwargs"]["energy_scale"] == pytest.approx(128.0)
    assert ckpt["data"] == {"name": "rings", "shape": [2], "range": [-4.6, 4.6]}
    assert ckpt["sampler"] == {"epsilon": 0.125, "tau": 1.0, "steps": 5, "init": "persistent", "mh": False}
    assert ckpt["regime"] == "convergent" and ckpt["step"] == 6
    assert Config.from_dict(ckpt["config"]) == tiny()
    assert ckpt["resume"]["bank"].shape == (40, 2)
    assert {"d_st_mean", "d_st_lag1_autocorr", "r_t_mean", "kl"} <= set(ckpt["metrics"])
    model = model_from_checkpoint(load_checkpoint(out))
    assert model(torch.zeros(3, 2)).shape == (3,)
    m = read_metrics(run_dir_for(out) / "metrics.csv")
    assert list(m["step"]) == [1, 2, 3, 4, 5, 6]
    # r_t = eps^2/2 * v_t, and d_st = mean U(X+) - mean U(X-), per update
    torch.testing.assert_close(torch.tensor(m["r_t"]), torch.tensor(m["v_t"]) * 0.125**2 / 2, rtol=1e-5, atol=0)
    torch.testing.assert_close(torch.tensor(m["d_st"]), torch.tensor(m["energy_pos"] - m["energy_neg"]), rtol=1e-4, atol=1e-4)
    assert (m["kl"][[2, 5]] > 0).all()  # evaluated every 3 updates
    assert (run_dir_for(out) / "diagnostics.png").stat().st_size > 0
    assert (run_dir_for(out) / "density.png").stat().st_size > 0
    with Image.open(run_dir_for(out) / "density.png") as img:  # (the data set named: a preset runs on others too)
        assert img.text.get("Title", "").startswith("toy-convergent on rings: true vs learned density"), img.text


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    straight = tmp_path / "straight.pt"
    train(tiny(), straight)

    killed = tmp_path / "killed.pt"

    seen = [0]

    def die_after_four(n, latest):
        seen[0] += n
        if seen[0] >= 4:
            raise Kill

    with pytest.raises(Kill):
        train(tiny(), killed, progress=die_after_four)
    assert load_checkpoint(killed)["step"] == 3  # the last checkpoint before the kill
    config = Config.from_dict(load_checkpoint(killed)["config"])
    result = train(config, killed, resume=True)
    assert result.step == 6
    a, b = load_checkpoint(straight), load_checkpoint(killed)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert torch.equal(a["resume"]["bank"], b["resume"]["bank"])
    ma, mb = read_metrics(run_dir_for(straight) / "metrics.csv"), read_metrics(run_dir_for(killed) / "metrics.csv")
    assert list(mb["step"]) == [1, 2, 3, 4, 5, 6]  # the log was cut back to step 3, then continued
    assert (ma["d_st"] == mb["d_st"]).all()
    # the summary over the log's rows, those read back from the file included (written at
    # 7 digits they moved d_st_std in its 8th): the log keeps every digit
    from landscape.train.loop import _fmt_row

    row = [7, 2.346603333738387, -1e-300, float("nan")]
    back = [float(v) for v in _fmt_row(row)]
    assert back[:3] == row[:3] and math.isnan(back[3])
    assert {k: v for k, v in a["metrics"].items() if k != "seconds"} == \
        {k: v for k, v in b["metrics"].items() if k != "seconds"}


@pytest.mark.slow
def test_resume_extends_a_finished_run_and_existing_output_is_protected(tmp_path):
    out = tmp_path / "d.pt"
    train(tiny(), out)
    with pytest.raises(LandscapeError, match="exists: pass --resume"):
        train(tiny(), out)
    longer = apply_overrides(Config.from_dict(load_checkpoint(out)["config"]), ["train.steps=8"])
    assert train(longer, out, resume=True).step == 8


@pytest.mark.parametrize("init", ["noise", "data"])
def test_digits_with_noise_and_data_init(tmp_path, init):
    cfg = tiny("digits-nonconvergent", f"sampler.init=\"{init}\"", "train.plot_every=6")
    out = tmp_path / "d.pt"
    train(cfg, out)
    ckpt = load_checkpoint(out)
    assert ckpt["data"]["shape"] == [1, 8, 8] and ckpt["sampler"]["init"] == init
    assert ckpt["resume"]["bank"] is None
    assert (run_dir_for(out) / "samples.png").exists()


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_chains_started_from_data_carry_the_data_noise_as_the_positives_do(tmp_path, monkeypatch, noise):
    from landscape import sample as real_sample
    from landscape.data import load
    from landscape.train import loop

    starts = []
    monkeypatch.setattr(loop, "sample", lambda energy, x0, *a, **kw: starts.append(x0.clone()) or real_sample(energy, x0, *a, **kw))
    cfg = tiny("digits-nonconvergent", 'sampler.init="data"', f"data.noise={noise}", "train.steps=2")
    train(cfg, tmp_path / "d.pt")
    data = load("digits").x.flatten(1).double()
    for x0 in starts:
        nearest = torch.cdist(x0.flatten(1).double(), data).min(dim=1).values
        if noise == 0:
            assert nearest.max() < 1e-6  # training examples as they are
        else:  # every start off its example by about noise x sqrt(64) = 0.8
            assert nearest.min() > 0.5 and nearest.max() < 1.2


def test_shape_mismatch_between_data_and_network_is_a_clear_error(tmp_path):
    cfg = apply_overrides(tiny(), ["data.name=\"digits\""])
    with pytest.raises(LandscapeError, match=r"shape \[1, 8, 8\] but the toy network expects \[2\]"):
        train(cfg, tmp_path / "x.pt")
    np.savez(tmp_path / "p5.npz", x=np.random.default_rng(0).normal(size=(50, 5)))
    cfg = apply_overrides(tiny(), [f"data.name=\"npz:{tmp_path / 'p5.npz'}\""])
    with pytest.raises(LandscapeError, match=r"shape \[5\] but the toy network expects \[2\] \(add --set "
                                             r"model.kwargs.in_dim=5\)"):
        train(cfg, tmp_path / "x.pt")
    train(apply_overrides(cfg, ["model.kwargs.in_dim=5"]), tmp_path / "x.pt")  # the hint is what fits

@pytest.mark.parametrize(("overrides", "hint"), [
    ([], "add --set model.kwargs.n_c=3 --set model.kwargs.image_size=16"),
    (["model.kwargs.n_c=3"], "add --set model.kwargs.image_size=16"),
    (["model.arch=\"vanilla\"", "model.kwargs={}"], "add --set data.size=32"),
])
def test_a_shape_mismatch_names_the_settings_that_fit_the_network_to_the_data(tmp_path, overrides, hint):
    # RGB images read at 16 pixels a side, for the 8x8 one-channel digits network (or
    # the 32x32 three-channel vanilla network, whose side is fixed: resize the data)
    folder = tmp_path / "pics" / "a"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = apply_overrides(tiny("digits-nonconvergent"), [f"data.name=\"folder:{folder.parent}\"", "data.size=16",
                                                          *overrides])
    with pytest.raises(LandscapeError, match=re.escape(f"({hint})")):
        train(cfg, tmp_path / "x.pt")


@pytest.mark.slow
def test_mala_training_logs_acceptance(tmp_path):
    out = tmp_path / "m.pt"
    train(tiny("toy-convergent", "sampler.mh=true", "sampler.epsilon=0.05"), out)
    acc = read_metrics(run_dir_for(out) / "metrics.csv")["acceptance"]
    assert ((acc >= 0) & (acc <= 1)).all()


@pytest.mark.slow
def test_torchrun_two_ranks_end_with_identical_parameters_then_map_it(tmp_path):
    from conftest import torchrun_env

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    landscape = shutil.which("landscape", path=str(Path(sys.executable).parent))
    assert torchrun and landscape, "torchrun and landscape must be installed beside the test interpreter"
    out = tmp_path / "ddp.pt"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", landscape, "train", "--preset", "toy-convergent",
           "--out", str(out), "--device", "cpu", "--quiet", "--map"]
    cmd += [a for o in TINY + ["model.kwargs.n_f=8"] for a in ("--set", o)]
    env = dict(torchrun_env(tmp_path), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone reports, and writes the map both ranks made
    assert proc.stdout.count("done: 6 updates") == 1 and proc.stdout.count(f"-> {tmp_path / 'ddp.h5'}") == 1
    from landscape.io.mapfile import read_map

    assert read_map(tmp_path / "ddp.h5").n_minima >= 1
    ckpt = load_checkpoint(out)
    dist = ckpt["distributed"]
    assert dist["world_size"] == 2
    a, b = dist["param_checksums"]
    assert a == b  # every rank holds the same parameters after the last update
    params = torch.cat([v.reshape(-1).double() for k, v in ckpt["state_dict"].items()])
    assert a == pytest.approx(float(params.sum() + (params * params).sum()), rel=1e-12)
    assert ckpt["resume"]["bank"].shape == (40, 2)  # both ranks' shards of the bank
    assert len(ckpt["resume"]["generators"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("signame, status", [("SIGINT", 130), ("SIGTERM", 143), ("SIGINT,SIGTERM", 130)])
def test_ctrl_c_stops_at_an_update_boundary_with_a_checkpoint_that_resumes(tmp_path, signame, status):
    # ("SIGINT,SIGTERM": one request delivered twice at once, as torchrun and `timeout` pass
    # Ctrl-C on; the second signal stopped the run at once and left no checkpoint)
    import signal
    import time

    landscape = shutil.which("landscape", path=str(Path(sys.executable).parent))
    out = tmp_path / "int.pt"
    sets = [a for o in TINY + ["model.kwargs.n_f=8", "train.steps=100000", "train.ckpt_every=100000"] for a in ("--set", o)]
    proc = subprocess.Popen([landscape, "train", "--preset", "toy-convergent", "--out", str(out), "--quiet", *sets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir_for(out) / "metrics.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and log.stat().st_size > 200):
        time.sleep(0.2)
    for name in signame.split(","):
        proc.send_signal(getattr(signal, name))  # Ctrl-C, or a batch system's time limit
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert "stopped early" in stdout and "Traceback" not in stderr
    ckpt = load_checkpoint(out)
    m = read_metrics(log)
    assert ckpt["step"] == int(m["step"][-1]) > 0  # the checkpoint is the last logged update
    if signame == "SIGINT,SIGTERM":  # (the stop that once left no checkpoint: it resumes; the others save alike)
        config = apply_overrides(Config.from_dict(ckpt["config"]), [f"train.steps={ckpt['step'] + 2}"])
        assert train(config, out, resume=True).step == ckpt["step"] + 2


def test_a_second_stop_signal_interrupts_at_once_only_after_the_grace_and_says_nothing_was_saved(monkeypatch):
    import os
    import signal

    from landscape.train import loop

    with loop._StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # (within the grace: the same request)
        assert flag.set and flag.signal == signal.SIGINT
        flag.at -= loop.SIGNAL_GRACE + 0.1  # (the grace over)
        with pytest.raises(KeyboardInterrupt, match="^a second signal stopped it at once, without saving"):
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_32x32_image_presets_train_and_map_on_data_that_ships(tmp_path, capsys):
    from conftest import run

    from landscape.io.mapfile import read_map
    from landscape.train.energies import resolve_energy

    for name in ("digits32-convergent", "digits32-nonconvergent"):
        cfg = get_preset(name)
        assert (cfg.data.name, cfg.data.size, cfg.model.arch) == ("digits", 32, "vanilla")
    ckpt = tmp_path / "d32.pt"
    code, _, err = run(capsys, "train", "--preset", "digits32-convergent", "--steps", "2", "--batch-size", "16",
                       "--set", "sampler.steps=5", "--set", "sampler.bank_size=64", "--out", ckpt, "--quiet")
    assert code == 0, err
    assert resolve_energy(ckpt, device="cpu").energy.shape == (1, 32, 32)
    code, out, err = run(capsys, "map", ckpt, "--chains", "8", "--rounds", "1", "--steps", "5", "--max-steps", "30",
                         "--patience", "10", "--attempts", "1", "--neighbours", "2", "--ladder", "1",
                         "--ladder-extend", "0", "--no-refine", "--out", tmp_path / "d32.h5", "--quiet")
    assert code == 0, err
    content = read_map(tmp_path / "d32.h5")
    assert content.minima_x.shape[1:] == (1, 32, 32) and content.n_minima >= 1
    assert [p.multiplier for p in content.levels] == [0.1, 1.0]
    assert content.attrs["minima"]["dataset"] == "digits"  # chains from the upscaled digits too


@pytest.mark.slow
def test_train_then_map_in_one_command(tmp_path, capsys):
    from conftest import run

    from landscape.io.mapfile import read_map

    ckpt = tmp_path / "toy.pt"
    args = ["train", "--preset", "toy-convergent", "--out", ckpt, "--quiet", "--map"]
    args += [a for o in TINY + ["model.kwargs.n_f=8"] for a in ("--set", o)]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    content = read_map(tmp_path / "toy.h5")  # beside the checkpoint, as `landscape map toy.pt` writes it
    assert content.n_minima >= 1 and content.meta.source["kind"] == "checkpoint"
    assert f"-> {tmp_path / 'toy.h5'}" in out and re.search(r"\nexplored: [0-9,]+ chains from data \(rings\)", out), out


@pytest.mark.slow
def test_resuming_with_other_settings_says_the_run_no_longer_follows_the_uninterrupted_one(tmp_path, capsys):
    from conftest import run

    out = tmp_path / "r.pt"
    sets = [a for o in TINY + ["model.kwargs.n_f=8"] for a in ("--set", o)]
    code, _, err = run(capsys, "train", "--preset", "toy-convergent", "--steps", "2", "--out", out, "--quiet", *sets)
    assert code == 0, err
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "3", "--quiet")
    assert code == 0 and "note" not in err  # more updates only: the same run
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "4", "--set", "optim.lr=0.05",
                       "--seed", "7", "--quiet")
    assert code == 0, err
    assert "note: resuming with changed settings (optim.lr, train.seed)" in err
    assert load_checkpoint(out)["config"]["optim"]["lr"] == 0.05
    two = torch.load(out, weights_only=True)  # as a run of 2 torchrun ranks saves it
    two["resume"]["world_size"] = 2
    torch.save(two, out)
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "5", "--quiet")
    assert code == 0, err
    assert "note: resuming on 1 rank a run of 2: its random streams are reseeded, so it no longer follows" in err


def test_a_run_turned_persistent_on_resume_starts_its_bank_as_a_fresh_run_does(tmp_path, capsys):
    # A run from noise resumed with sampler.init=persistent failed: "the checkpoint's
    # persistent bank does not fit this run's bank size and world size" (it had none).
    from conftest import run

    out = tmp_path / "d.pt"
    sets = [a for o in TINY for a in ("--set", o)]
    code, _, err = run(capsys, "train", "--preset", "digits-nonconvergent", "--steps", "2", "--out", out, "--quiet",
                       *sets)
    assert code == 0, err
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "4", "--quiet",
                       "--set", "sampler.init=persistent")
    assert code == 0, err
    assert "note: resuming with changed settings (sampler.init)" in err
    saved = torch.load(out, weights_only=True)
    assert saved["resume"]["bank"].shape[0] == 40
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "5", "--quiet")  # its own bank now
    assert code == 0 and "note" not in err, err


def test_a_run_that_diverges_keeps_its_updates_in_the_log(tmp_path):
    # The error said "100 of 100 chains start at a non-finite energy or gradient" where the
    # weights had grown (finite) until the energy overflowed float32 at the chains' starts,
    # and a diverged run left no picture of its updates.
    out = tmp_path / "x.pt"
    cfg = tiny("toy-convergent", "optim.lr=1e12", "train.steps=30", "train.log_every=10")
    run_dir = run_dir_for(out)
    with pytest.raises(LandscapeError) as info:
        train(cfg, out)
    message = str(info.value)
    assert re.fullmatch(
        r"training diverged at update 2: the energy at the chains' starts overflowed \(the network's output times "
        r"model.energy_scale 128 left float32's range\): non-finite at \d+ of 20, its gradient dU/dx \(or the "
        r"gradient's norm\) at \d+; the weights are finite, but the largest \|weight\| grew from [\d.]+ at the start "
        r"to [\d.e+]+ after the last update; update 1, the last finite one logged: mean U\(X\+\) -?[\d.]+, "
        r"mean U\(X-\) -?[\d.]+, d_st -?[\d.e-]+, v_t [\d.]+ \(lower optim.lr or sampler.epsilon\); its 1 update is in "
        + re.escape(f"{run_dir / 'metrics.csv'}, plotted in {run_dir / 'diagnostics.png'}, no checkpoint was written "
                    "(the first was due at update 3)"), message), message
    log = read_metrics(run_dir / "metrics.csv")
    assert log["step"].tolist() == [1.0]  # the update before the divergence (log_every would have kept it back)
    assert (run_dir / "diagnostics.png").stat().st_size > 0 and not out.exists()
    # the same weights evaluated for KL(q || p_theta) on a grid: a ValueError's traceback before
    with pytest.raises(LandscapeError, match=r"^training diverged at update 1: the energy on the grid where "
                                             r"KL\(q \|\| p_theta\) is evaluated is non-finite \(energy grid contains"):
        train(apply_overrides(cfg, ["train.eval_every=1"]), out, overwrite=True)


def test_weights_that_go_non_finite_are_named_and_never_saved_over_the_last_good_checkpoint(tmp_path):
    # The optimizer's step made the weights NaN/inf from a finite loss: d_st was finite, so
    # the update was logged and, at a checkpoint update, saved over the good checkpoint.
    out = tmp_path / "w.pt"
    train(tiny("toy-convergent", "train.steps=2"), out)
    good = load_checkpoint(out)
    cfg = apply_overrides(Config.from_dict(good["config"]), ["optim.lr=1e40", "train.steps=6", "train.ckpt_every=1"])
    with pytest.raises(LandscapeError) as info:
        train(cfg, out, resume=True)
    message = str(info.value)
    assert message.startswith("training diverged at update 3: the optimizer's step made the network's weights "
                              "non-finite (NaN or inf) from a finite loss (d_st "), message
    assert "; update 3, the last finite one logged: " in message and "(at update 1: " in message
    assert message.endswith(f"its 3 updates are in {run_dir_for(out) / 'metrics.csv'}, plotted in "
                            f"{run_dir_for(out) / 'diagnostics.png'}, {out} keeps update 2, the last checkpoint before "
                            "the divergence (--resume (resume=True) with a lower optim.lr continues from it)"), message
    kept = load_checkpoint(out)  # (refused non-finite weights, had they been saved)
    assert kept["step"] == 2
    assert all(torch.equal(kept["state_dict"][k], good["state_dict"][k]) for k in good["state_dict"])
    assert read_metrics(run_dir_for(out) / "metrics.csv")["step"].tolist() == [1.0, 2.0, 3.0]


def test_kept_checkpoints_every_n_updates_sort_load_and_survive_a_resume(tmp_path):
    from landscape.train.loop import kept_checkpoint, kept_checkpoints

    straight = tmp_path / "s.pt"
    train(tiny("toy-convergent", "train.keep_every=2"), straight)
    copies = kept_checkpoints(straight)
    assert list(copies) == [2, 4, 6]
    assert [p.name for p in copies.values()] == ["step000002.pt", "step000004.pt", "step000006.pt"]
    assert copies[4] == kept_checkpoint(straight, 4) == run_dir_for(straight) / "checkpoints" / "step000004.pt"
    assert [load_checkpoint(p)["step"] for p in copies.values()] == [2, 4, 6]  # full checkpoints
    last, final = torch.load(copies[6], weights_only=True), load_checkpoint(straight)
    assert all(torch.equal(last["state_dict"][k], final["state_dict"][k]) for k in final["state_dict"])

    # a run whose checkpoint is update 2 with copies past it (4 not a checkpoint at all, 6
    # and 8): resumed to 6 it writes 4 and 6 again, as the uninterrupted run kept them, and
    # keeps no 8 from beyond its end
    other = tmp_path / "o.pt"
    train(tiny("toy-convergent", "train.keep_every=2", "train.steps=8"), other)
    shutil.copy(kept_checkpoint(other, 2), other)
    kept_checkpoint(other, 4).write_bytes(b"half-written")
    config = apply_overrides(Config.from_dict(load_checkpoint(other)["config"]), ["train.steps=6"])
    assert train(config, other, resume=True).step == 6
    resumed = kept_checkpoints(other)
    assert list(resumed) == [2, 4, 6]  # 8, past the end of the resumed run, is gone; none twice
    for step in (2, 4, 6):
        a, b = load_checkpoint(copies[step]), load_checkpoint(resumed[step])
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]), step

    # a new run does not start over copies an earlier run left; --force clears them
    other.unlink()
    with pytest.raises(LandscapeError, match=r"checkpoints holds 3 checkpoints an earlier run kept \(train.keep_every\)"):
        train(tiny("toy-convergent", "train.keep_every=2"), other)
    train(tiny("toy-convergent", "train.keep_every=4"), other, overwrite=True)
    assert list(kept_checkpoints(other)) == [4]
    with pytest.raises(LandscapeError, match=r"train.keep_every must be >= 0"):
        tiny("toy-convergent", "train.keep_every=-1").validate()


def _captured_figure(monkeypatch):
    """The matplotlib figure the training pictures would save, instead of saving it."""
    from landscape.train import figures

    seen = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, **kw: seen.append(fig) or Path(path))
    return seen


def test_diagnostics_show_the_late_oscillation_of_d_st_and_the_detrended_autocorrelation_of_v_t(monkeypatch, tmp_path):
    # d_st of +-2000 in the first 30 updates set the panel's y-axis, flattening the later
    # oscillation near 0; v_t's upward drift made its autocorrelation ~0.8 at every lag.
    from landscape.train.diagnostics import detrend_linear
    from landscape.train.figures import plot_training_diagnostics

    seen = _captured_figure(monkeypatch)
    n = 1000
    rng = np.random.default_rng(0)
    alternating = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    d = 0.5 * alternating + 0.1 * rng.normal(size=n)
    d[:30] = 2000.0 * np.where(np.arange(30) % 2 == 0, 1.0, -1.0)
    v = np.linspace(55.0, 75.0, n) - 0.5 * alternating
    plot_training_diagnostics({"step": np.arange(1.0, n + 1), "d_st": d, "v_t": v, "r_t": v * 1e-3},
                              tmp_path / "d.png")
    fig = seen[0]
    gap, auto = fig.axes[0], fig.axes[3]
    lo, hi = gap.get_ylim()
    assert -3 < lo < -0.5 and 0.5 < hi < 3, (lo, hi)  # the late oscillation fills the panel
    notes = " ".join(t.get_text() for t in gap.texts)
    assert "30 updates off-scale (triangles), among updates 1-30: values" in notes, notes
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in auto.containers}
    assert bars[r"$v_t$ minus its linear trend"][1] < -0.9  # the oscillation, no longer hidden by the drift
    assert "detrended" in auto.get_title()
    np.testing.assert_allclose(detrend_linear(3.0 + 2.0 * np.arange(10.0)), 0.0, atol=1e-12)

    # v_t, r_t and the energies follow the later part too where an early transient would
    # flatten it (the demo's digits v_t: 330 in the first updates, then a flat 50)
    seen.clear()
    v2 = 50.0 + 0.5 * alternating
    v2[:30] = 330.0
    e = -60.0 + alternating
    e[:30] = -2700.0
    plot_training_diagnostics({"step": np.arange(1.0, n + 1), "d_st": d, "v_t": v2, "r_t": v2 * 1e-3,
                               "energy_pos": e, "energy_neg": e - 0.5}, tmp_path / "f.png")
    vt, rt, energies = seen[0].axes[1], seen[0].axes[2], seen[0].axes[5]
    assert vt.get_ylim()[0] == 0.0 and 50 < vt.get_ylim()[1] < 70 and vt.get_yscale() == "linear"
    assert "30 updates off-scale" in " ".join(t.get_text() for t in vt.texts)
    assert rt.get_ylim()[1] < 0.07
    lo, hi = energies.get_ylim()
    assert -65 < lo and hi < -55, (lo, hi)

    # a series without a transient keeps the axis' own limits
    seen.clear()
    plot_training_diagnostics({"d_st": alternating[:100], "v_t": v[:100], "r_t": v[:100]}, tmp_path / "e.png")
    assert not seen[0].axes[0].texts and seen[0].axes[0].get_ylim()[1] < 1.5


def test_the_samples_over_the_learned_log_density_use_its_colours_and_colour_bar(monkeypatch, tmp_path):
    # That panel was drawn in reversed greys (high density black) without a colour bar.
    from landscape.train.figures import plot_toy_density

    seen = _captured_figure(monkeypatch)
    xs = ys = np.linspace(-2.0, 2.0, 20)
    gx, gy = np.meshgrid(xs, ys)
    log_p = -(gx**2 + gy**2)
    plot_toy_density(xs, ys, log_p, log_p, tmp_path / "p.png", samples=np.zeros((10, 2)))
    panels = {ax.get_title(): ax for ax in seen[0].axes}
    learned = next(ax for title, ax in panels.items() if title.startswith(r"log learned density"))
    over = panels[r"the same samples over $\log p_\theta$"]
    (a,), (b,) = learned.images, over.images
    assert b.get_cmap().name == a.get_cmap().name == "magma" and b.get_clim() == a.get_clim()
    assert b.colorbar is not None and b.colorbar.ax.get_ylabel() == "nats"


def test_a_batch_that_does_not_split_over_the_ranks_names_its_setting():
    from landscape.distributed import Dist
    from landscape.train.loop import _split

    assert _split(100, Dist(rank=0, world=4), "train.batch_size") == 25
    with pytest.raises(LandscapeError, match=r"^train.batch_size 100 does not split evenly over 3 ranks: run a number "
                                             r"of ranks that divides it, or --set train.batch_size=N with N a multiple "
                                             r"of 3$"):
        _split(100, Dist(rank=0, world=3), "train.batch_size")


def test_resuming_a_run_that_is_still_running_says_so(tmp_path, capsys):
    from conftest import run
    from landscape.io.files import output_lock

    out = tmp_path / "r.pt"
    with output_lock(out):  # a run under way, before its first checkpoint
        code, _, err = run(capsys, "train", "--out", out, "--resume")
    assert code == 1 and f"{out} is being written by another run (pid " in err and "nothing to resume" not in err


def test_a_resumed_run_uses_the_optimizer_settings_it_records_and_refuses_a_new_network(tmp_path, capsys):
    # The optimizer's state dict carries its hyperparameters: loaded over the new optimizer
    # it put the old momentum, betas and weight decay back, while the checkpoint and
    # config.json recorded the new ones. Another network or optimizer kind crashed.
    from conftest import assert_one_line_error, run

    out = tmp_path / "d.pt"
    sets = [a for o in TINY for a in ("--set", o)]
    code, _, err = run(capsys, "train", "--preset", "digits-nonconvergent", "--steps", "2", "--out", out, *sets)
    assert code == 0, err
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "3", "--quiet",
                       "--set", "optim.betas=0.1,0.2", "--set", "optim.weight_decay=0.5")
    assert code == 0, err
    group = torch.load(out, weights_only=True)["resume"]["optimizer"]["param_groups"][0]
    assert tuple(group["betas"]) == (0.1, 0.2) and group["weight_decay"] == 0.5
    for change, name in (("optim.name=sgd", "optim.name"), ("model.kwargs.hidden=[32,32]", "model.kwargs.hidden")):
        code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "4", "--quiet", "--set", change)
        assert_one_line_error(code, err, rf"--resume \(resume=True\) cannot change {name} .*start over with --force")
    code, _, err = run(capsys, "train", "--out", out, "--resume", "--steps", "2", "--quiet")
    assert code == 0 and "has 3 updates already, --steps 2 asks for no more: nothing to train" in err


def test_a_message_that_only_introduces_its_detail_keeps_it():
    from landscape.train.checkpoint import _short

    err = RuntimeError("Error(s) in loading state_dict for DigitsNet:\n\tsize mismatch for net.0.weight: shapes differ")
    assert _short(err) == ("Error(s) in loading state_dict for DigitsNet: size mismatch for net.0.weight: "
                           "shapes differ")


def test_training_leaves_the_callers_random_numbers_and_thread_count_as_they_were(tmp_path):
    # train() seeded torch's global generator for its initial weights and set torch's
    # thread count for the run, and left both so: a caller's own draws after it were the
    # training seed's, not theirs.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # (the run's policy is one thread for this small network)
        torch.manual_seed(123)
        want = torch.rand(3)
        torch.manual_seed(123)
        train(tiny(), tmp_path / "a.pt")
        assert torch.equal(torch.rand(3), want) and torch.get_num_threads() == 3
        torch.rand(100)  # whatever the caller drew before, a seed gives the same model
        train(tiny(), tmp_path / "b.pt")
        a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
        # a refusal names both spellings: the command's option and the Python keyword
        with pytest.raises(LandscapeError, match=r"exists: pass --resume \(resume=True\) to continue it or "
                                                 r"--force \(overwrite=True\) to start over"):
            train(tiny(), tmp_path / "a.pt")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_in_python_raises_once_the_checkpoint_is_saved_and_resume_continues_it(tmp_path, signame):
    # From Python, Ctrl-C was caught and train() returned as if done (stopped_early set):
    # the rest of a script or notebook cell went on. It raises KeyboardInterrupt now, after
    # the checkpoint of the update under way is saved (Terminated for SIGTERM).
    import signal

    from landscape.errors import Terminated

    out, seen = tmp_path / "c.pt", [0]

    def signal_after_two(n, latest):
        seen[0] += n
        if seen[0] == 2:
            signal.raise_signal(getattr(signal, signame))  # (as the terminal sends it to the main thread)

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match=r"training stopped after update 2 of 6; .*c\.pt is saved: "
                                                r"train\(\.\.\., resume=True\) continues it") as info:
        train(tiny(), out, progress=signal_after_two)
    assert isinstance(info.value, Terminated) == (signame == "SIGTERM")
    assert signal.getsignal(signal.SIGTERM) is previous  # (the run's handlers are gone)
    result = info.value.result
    assert result.stopped_early and result.step == 2 and result.terminated == (signame == "SIGTERM")
    assert load_checkpoint(out)["step"] == 2
    assert train(Config.from_dict(load_checkpoint(out)["config"]), out, resume=True).step == 6
