"""The `landscape` command end to end: exit codes, files written, one-line errors."""

import re

import numpy as np
import pytest
import torch
from conftest import TINY, assert_one_line_error, run


@pytest.fixture
def rings_ckpt(tmp_path, capsys):
    out = tmp_path / "rings.pt"
    code, stdout, err = run(capsys, "train", "--preset", "rings-demo", "--out", out, "--set", "model.kwargs.n_f=8", *TINY)
    assert code == 0, err
    return out


def test_help_lists_commands_and_presets(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("train", "sample", "info", "demo"):
        assert name in out
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and "toy-convergent" in out and "digits-nonconvergent" in out and "--resume" in out


@pytest.mark.slow
def test_train_info_sample_on_rings(rings_ckpt, capsys, tmp_path):
    assert rings_ckpt.exists()
    assert (tmp_path / "rings.run" / "density.png").exists()
    code, out, err = run(capsys, "info", rings_ckpt)
    assert code == 0, err
    assert "convergent" in out and "toy" in out and "4 of 4 updates" in out and "eps=0.125" in out
    picture = tmp_path / "chains.png"
    code, out, err = run(capsys, "sample", rings_ckpt, "--chains", "16", "--steps", "10", "--out", picture, "--quiet",
                         "--mh")
    assert code == 0, err
    assert picture.stat().st_size > 0 and "MALA acceptance rate" in out
    assert "16 chains from data, 10 steps, eps=0.125 tau=1 (T=1)" in out and err == ""
    # a toy density's chains are measured against its reference draw, as check's are
    assert re.search(r"mean distance to nearest training example \d\.\d+ -> \d\.\d+ \(the data's own", out)
    code, out, err = run(capsys, "sample", rings_ckpt, "--chains", "16", "--steps", "10", "--out", picture, "--quiet")
    assert_one_line_error(code, err, "exists: pass --force")
    # --eps and --temperature (T = tau^2) replace the training ones
    code, out, err = run(capsys, "sample", rings_ckpt, "--chains", "8", "--steps", "5", "--eps", "0.05",
                         "--temperature", "0.25", "--out", picture, "--quiet", "--force")
    assert code == 0, err
    assert "8 chains from data, 5 steps, eps=0.05 tau=0.5 (T=0.25)" in out and err == ""
    # the old names still work for one release, with a note naming the new option
    code, out, err = run(capsys, "sample", rings_ckpt, "--n", "8", "--steps", "5", "--epsilon", "0.05", "--tau", "0.5",
                         "--out", picture, "--quiet", "--force")
    assert code == 0, err
    assert "8 chains from data, 5 steps, eps=0.05 tau=0.5 (T=0.25)" in out
    notes = err.strip().splitlines()
    assert len(notes) == 3 and all(n.startswith("note: --") and "deprecated" in n for n in notes)
    assert [n.split("; use ")[1].split()[0] for n in notes] == ["--chains", "--eps", "--temperature"]


@pytest.mark.slow
def test_resume_extends_and_existing_output_needs_a_flag(rings_ckpt, capsys):
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", rings_ckpt, *TINY)
    assert_one_line_error(code, err, r"exists: pass --resume \(resume=True\) to continue it or --force")
    code, out, err = run(capsys, "train", "--out", rings_ckpt, "--resume", "--steps", "6", "--quiet")
    assert code == 0, err
    assert torch.load(rings_ckpt, weights_only=True)["step"] == 6
    code, _, err = run(capsys, "train", "--out", rings_ckpt, "--resume", "--force")
    assert code == 2 and "contradict" in err


@pytest.mark.slow
def test_digits_long_run_reports_distances(tmp_path, capsys):
    out = tmp_path / "d.pt"
    code, _, err = run(capsys, "train", "--preset", "digits-nonconvergent", "--out", out,
                       "--set", "model.kwargs.hidden=[16]", *TINY)
    assert code == 0, err
    code, stdout, err = run(capsys, "sample", out, "--chains", "10", "--quiet", "--save", tmp_path / "s.npz")
    assert code == 0, err
    assert "10 chains from data, 50 steps" in stdout  # default: 10x the training L (5)
    assert "mean distance to nearest training example 0.000 ->" in stdout
    assert (tmp_path / "d_samples.png").exists() and (tmp_path / "d_samples_start.png").exists()
    import numpy as np

    saved = np.load(tmp_path / "s.npz")
    assert saved["end"].shape == (10, 1, 8, 8)
    end = saved["end"]
    beyond = bool(end.min() < -1 or end.max() > 1)
    assert ("beyond the data's [-1, 1] (pictures clip to it)" in stdout) == beyond, stdout
    # Nothing is overwritten without --force, the start picture neither.
    (tmp_path / "d_samples.png").unlink()
    before = (tmp_path / "d_samples_start.png").read_bytes()
    code, _, err = run(capsys, "sample", out, "--chains", "10", "--quiet", "--seed", "1")
    assert_one_line_error(code, err, "d_samples_start.png exists: pass --force")
    assert (tmp_path / "d_samples_start.png").read_bytes() == before


def test_bad_checkpoints_get_one_line_errors(tmp_path, capsys):
    code, _, err = run(capsys, "info", tmp_path / "missing.pt")
    assert_one_line_error(code, err, "missing.pt: no such file")

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    code, _, err = run(capsys, "info", corrupt)
    assert_one_line_error(code, err, "not a readable PyTorch checkpoint")

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    code, _, err = run(capsys, "sample", other)  # (info says what it is: test_info_on_model_files_...)
    assert_one_line_error(code, err, "not an ebm-landscape checkpoint.*bare state dict: landscape map loads one")

    wrong_version = tmp_path / "future.pt"
    torch.save({"format": "ebm-landscape/checkpoint", "version": 99}, wrong_version)
    code, _, err = run(capsys, "sample", wrong_version)
    assert_one_line_error(code, err, "version 99 is newer")


class Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_malicious_checkpoint_is_refused_without_running_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "ebm-landscape/checkpoint", "payload": Payload()}, evil)
    code, _, err = run(capsys, "info", evil)
    assert_one_line_error(code, err, "refused to load")
    assert not (tmp_path / "PWNED").exists()


def test_bad_options_and_shapes(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--preset", "nope", "--out", tmp_path / "x.pt")
    assert_one_line_error(code, err, r"^error: Invalid value for '--preset': 'nope'", expected_code=2)
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--dataset", "digits", "--out", tmp_path / "x.pt", *TINY)
    assert_one_line_error(code, err, r"expects \[2\]")
    assert not (tmp_path / "x.pt").exists()
    code, _, err = run(capsys, "train", "--out", tmp_path / "x.pt", "--set", "sampler.bogus=1")
    assert_one_line_error(code, err, "unknown config key")
    # --set values are checked against the field's type: one line naming field, value and type
    for override, pattern in [
        ("sampler.steps=abc", r"^error: bad override 'sampler.steps=abc': sampler.steps must be an integer, got 'abc'$"),
        ("sampler.epsilon=nan", r"sampler.epsilon must be a finite number, got 'nan'"),
        ("optim.betas=0.9", r"optim.betas must be 2 comma-separated finite numbers"),
        ("sampler.mh=maybe", r"sampler.mh must be true or false, got 'maybe'"),
        ("data.size=big", r"data.size must be an integer or null, got 'big'"),
    ]:
        code, _, err = run(capsys, "train", "--out", tmp_path / "x.pt", "--set", override)
        assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "x.pt").exists()
    code, _, err = run(capsys, "train", "--out", tmp_path / "x.pt", "--dataset", "mnist", "--data-root", tmp_path)
    assert_one_line_error(code, err, "mnist not found.*train-images-idx3-ubyte")


def test_info_on_model_files_that_are_not_our_checkpoints_says_what_they_are(tmp_path, capsys):
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    torch.save({"model": net.state_dict(), "step": 7}, tmp_path / "script.pt")
    torch.jit.save(torch.jit.script(net), tmp_path / "scripted.pt")
    np.savez(tmp_path / "data.npz", x=np.zeros((3, 2)))
    expected = {
        "w.pt": r"w.pt is a state dict \(4 tensors, 17 numbers\), not an ebm-landscape checkpoint: map it with "
                r"landscape map --model FILE.py:Net --weights .*w.pt \(your network\), or landscape map .*w.pt --arch",
        "script.pt": r"script.pt is a state dict \(4 tensors, 17 numbers\), .* --weights .*script.pt \(your network\)$",
        "scripted.pt": r"scripted.pt is a TorchScript file \(a network saved with its code\), not a checkpoint or map: "
                       r"map it with landscape map .*scripted.pt --shape",
        "data.npz": r"data.npz is a NumPy .npz archive \(1 array\), not a checkpoint or map: as training data, "
                    r"--dataset npz:.*data.npz$",
    }
    for name, pattern in expected.items():  # (info describes checkpoints and maps: these are refused, said what)
        code, _, err = run(capsys, "info", tmp_path / name)
        assert_one_line_error(code, err, pattern)


def test_commands_that_run_as_one_process_refuse_torchrun_once(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for command in ("funnel", "diagnose", "check", "sample", "compare", "demo", "info", "tree"):
        monkeypatch.setenv("RANK", "0")
        code, _, err = run(capsys, command, tmp_path / "x.pt")
        assert_one_line_error(code, err, f"landscape {command} runs as one process: run it without torchrun "
                                         r"\(only map and train spread over its ranks\)")
        monkeypatch.setenv("RANK", "1")  # the other ranks stop without a word (one line in all, not one a rank)
        code, out, err = run(capsys, command, tmp_path / "x.pt")
        assert code == 1 and not out and not err


def test_a_rank_lost_under_torchrun_is_said_so_not_an_unexpected_error(capsys, monkeypatch):
    import click

    from landscape.cli.errors import run_guarded

    @click.command()
    def collective():
        raise RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
                           "[127.0.0.1]:55492: Connection reset by peer")

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_guarded(collective, []) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: another rank of this torchrun job stopped ([/pytorch/third_party/gloo") and \
        err.rstrip().endswith("progress already saved is kept: rerun the command, with --resume to continue from it") and "unexpected" not in err
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: the same text is a bug, said as one
    assert run_guarded(collective, []) == 1
    assert "error: unexpected RuntimeError" in capsys.readouterr().err


def test_options_are_checked_as_the_help_describes_them(tmp_path, capsys, rings_ckpt):
    import json

    mb = ["map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box", "-1.5", "2"]
    usage = {  # each a usage error (exit 2) in one line, before any work
        ("train", "--preset", "rings-demo", "--steps", "1"): r"Missing option '--out'",
        (*mb, "--out", ""): r"'--out': an empty path names no file",
        ("diagnose", "m.h5", "--report", ""): r"'--report': an empty path names no file",
        (*mb, "--seed", "99999999999999999999"): r"'--seed': 99999999999999999999 is not in the range 0<=x<=4294967295",
        (*mb, "--alpha-unit", "1,2"): r"--alpha-unit takes one number \(or auto\), got '1,2'",
        (*mb, "--delta", "1,2"): r"--delta takes one number",
        (*mb, "--ladder", "1,,2"): r"--ladder must be numbers separated by commas, got '1,,2'",
        (*mb, "--out", tmp_path / "m.h5", "--resume", "--force"): r"--resume and --force contradict each other",
        ("funnel", rings_ckpt, "--resume", "--force"): r"--resume and --force contradict each other",
        # (a share of the pixels the data leave free: 1 or more could never flag anything)
        ("diagnose", "m.h5", "--saturation-excess", "1"): r"'--saturation-excess': 1.0 is not in the range 0<x<1",
        ("check", rings_ckpt, "--saturation-excess", "1.5"): r"'--saturation-excess': 1.5 is not in the range 0<x<1",
        # (said "must be numbers separated by commas"; funnel's exited 1, after "has a funnel probe already")
        (*mb, "--alpha-unit", "abc"): r"--alpha-unit takes one number \(or auto\), got 'abc'",
        ("funnel", rings_ckpt, "--noise-unit", "abc"): r"--noise-unit takes one number \(or auto\), got 'abc'",
        ("funnel", rings_ckpt, "--noise", "0,2,1"): r"--noise takes two or more increasing levels, got '0,2,1'",
        ("map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box", "-1", "1", "-2", "2"):
            r"No such option '-2' \(a negative number left over after an option's values: --box takes one LOW HIGH, "
            r"the same for all dimensions\)",
        ("tree", "m.h5", "-3"): r"No such option '-3'\. \(see: landscape tree --help\)",  # (no --box: no word of it)
        ("map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box", "2", "-1.5"):
            r"'--box': LOW must be below HIGH, got 2 -1.5",  # (exit 1 where --box nan 2 exits 2)
    }
    for args, pattern in usage.items():
        code, _, err = run(capsys, *args)
        assert_one_line_error(code, err, pattern, expected_code=2)
    assert not (tmp_path / "m.h5").exists()
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", tmp_path / "x.pt",
                       "--set", "sampler.epsilon=1e300")
    assert_one_line_error(code, err, r"sampler.epsilon must be in \(0, 1e6\], got 1e\+300")
    code, _, err = run(capsys, "diagnose", rings_ckpt)
    assert_one_line_error(code, err, r"rings.pt is a PyTorch file \(a checkpoint\?\), not a map: map it first")
    # `info --json` is strict JSON: a statistic that is not a number is null, not NaN.
    short = tmp_path / "short.pt"  # two updates: a window of one, no autocorrelation
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", short, "--set", "model.kwargs.n_f=8", *TINY,
                       "--steps", "2")
    assert code == 0, err
    code, out, err = run(capsys, "info", short, "--json")
    assert code == 0, err
    strict = json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # (NaN refused)
    assert strict["metrics"]["d_st_lag1_autocorr"] is None


def test_info_on_a_checkpoint_shows_its_training_seed(rings_ckpt, capsys):
    seed = torch.load(rings_ckpt, weights_only=True)["config"]["train"]["seed"]
    code, out, err = run(capsys, "info", rings_ckpt)
    assert code == 0, err
    rows = [line.split(None, 1) for line in out.splitlines()[1:]]
    assert [key for key, _ in rows].index("seed") == [key for key, _ in rows].index("preset") + 1
    assert dict(rows)["seed"].startswith(f"{seed} (training")


def test_help_says_json_on_an_error_leaves_standard_output_empty(tmp_path, capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "on an error nothing goes to standard output, the one-line error to standard error" in " ".join(out.split())
    for args in (["info", tmp_path / "missing.h5", "--json"], ["tree", tmp_path / "missing.h5", "--json"],
                 ["funnel", tmp_path / "missing.h5", "--json", "--chains", "0"]):
        code, out, err = run(capsys, *args)
        assert code in (1, 2) and out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1, args


def test_landscape_alone_shows_its_help():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "landscape.cli.main"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: landscape [OPTIONS] COMMAND") and not done.stderr


def test_a_gpu_this_machine_lacks_is_one_line_everywhere(capsys, rings_ckpt):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    # (sample, check and compare failed with "unexpected AssertionError: Torch not compiled with CUDA enabled")
    twin = rings_ckpt.with_name("twin.pt")
    twin.write_bytes(rings_ckpt.read_bytes())
    for args in (("sample", rings_ckpt), ("check", rings_ckpt), ("compare", rings_ckpt, twin)):
        code, _, err = run(capsys, *args, "--device", "cuda")
        assert_one_line_error(code, err, "device cuda asked for, but CUDA is not available here: use cpu")


def test_a_model_of_three_dimensional_points_is_sampled_and_checked(capsys, tmp_path):
    # Points of D != 2 had no picture: sample (--save too) and check refused after running.
    pts = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    np.savez(tmp_path / "pts.npz", x=pts)
    out = tmp_path / "p3.pt"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--dataset", f"npz:{tmp_path / 'pts.npz'}",
                       "--set", "model.kwargs.in_dim=3", "--set", "model.kwargs.n_f=8", "--out", out, *TINY)
    assert code == 0, err
    code, said, err = run(capsys, "sample", out, "--chains", "5", "--steps", "3", "--save", tmp_path / "s.npz",
                          "--quiet")
    assert code == 0, err
    assert np.load(tmp_path / "s.npz")["end"].shape == (5, 3) and (tmp_path / "p3_samples.png").stat().st_size > 1000
    code, said, err = run(capsys, "check", out, "--chains", "5", "--multiples", "1", "--quiet")
    assert code == 0, err
    assert "verdict:" in said and (tmp_path / "p3_check_samples.png").exists()
    code, _, err = run(capsys, "sample", out, "--out", tmp_path / "s.txt", "--quiet")
    assert_one_line_error(code, err, r"s\.txt: cannot tell the picture format from the suffix '\.txt'")


def test_info_names_the_generator_states_of_each_rank_and_kept_checkpoints_are_checkpoints(tmp_path, capsys):
    # info said "1 generator state(s)": it counted ranks, each of which saves 2 generators.
    # train.keep_every keeps a full checkpoint every N updates, which info and map take.
    out = tmp_path / "k.pt"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", out, "--set", "model.kwargs.n_f=8", *TINY,
                       "--set", "train.keep_every=2")
    assert code == 0, err
    kept = tmp_path / "k.run" / "checkpoints" / "step000002.pt"
    assert sorted(p.name for p in kept.parent.iterdir()) == ["step000002.pt", "step000004.pt"]
    for path, step in ((out, 4), (kept, 2)):
        code, text, err = run(capsys, "info", path)
        assert code == 0, err
        assert f"{step} of 4 updates" in text
        assert "random generator states of 1 rank (2 generators)" in text and "state(s)" not in text
    code, _, err = run(capsys, "map", kept, "--chains", "8", "--rounds", "1", "--steps", "5", "--max-steps", "30",
                       "--patience", "10", "--attempts", "1", "--neighbours", "2", "--ladder", "1",
                       "--ladder-extend", "0", "--no-refine", "--quiet", "--out", tmp_path / "kept.h5")
    assert code == 0, err
    from landscape.io.mapfile import read_map

    content = read_map(tmp_path / "kept.h5")
    assert content.n_minima >= 1 and content.meta.source["kind"] == "checkpoint"


def test_train_help_says_every_update_is_logged_and_log_every_sets_when_rows_are_written(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "The run log records d_st, v_t and r_t per update (written to <stem>.run/metrics.csv every " \
           "train.log_every updates)" in text
    assert "--set train.keep_every=N also keeps a full checkpoint every N updates in " \
           "<stem>.run/checkpoints/stepNNNNNN.pt" in text


def test_a_preset_whose_learning_settings_were_changed_says_its_regime_is_the_preset_s_label(tmp_path, capsys):
    # (--set sampler.tau=0 on digits-convergent: info said "regime convergent" and check "trained as
    # convergent: agrees/disagrees", as if the run were meant to be convergent)
    from landscape.train.checkpoint import load_checkpoint, regime_note
    from landscape.train.config import preset_changes

    out = tmp_path / "tau0.pt"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", out, "--set", "model.kwargs.n_f=8",
                       "--set", "sampler.tau=0", *TINY)
    assert code == 0, err
    ckpt = load_checkpoint(out)
    assert ("sampler.tau", 1.0, 0.0) in preset_changes(ckpt["config"])
    assert not [k for k, *_ in preset_changes(ckpt["config"]) if k.startswith("train.")]  # (how long, how often)
    code, said, err = run(capsys, "info", out)
    assert code == 0, err
    assert "regime     convergent (the rings-demo preset's label for its own settings, changed in this run)" in said
    assert "sampler.tau 1 -> 0" in said
    code, said, err = run(capsys, "check", out, "--chains", "8", "--multiples", "1", "--no-noise", "--extend", "1",
                          "--out", tmp_path / "c.png", "--quiet")
    assert code == 0, err
    assert "; trained as convergent (the rings-demo preset's label for its own settings, changed in this run): " in said
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", tmp_path / "label.pt", "--set",
                       "model.kwargs.n_f=8", "--set", "sampler.tau=0", "--set", "regime=non-convergent", *TINY)
    assert code == 0, err
    assert regime_note(load_checkpoint(tmp_path / "label.pt")) == ""  # (the user's own label)


def test_an_interruption_that_says_what_it_cost_says_it_in_its_error_line(capsys):
    import click

    from landscape.cli.errors import run_guarded

    @click.command()
    def stops():
        raise KeyboardInterrupt("a second signal stopped it at once, without saving")

    assert run_guarded(stops, []) == 130
    assert capsys.readouterr().err.strip().endswith(
        "error: interrupted (Ctrl-C): a second signal stopped it at once, without saving")


def test_image_chains_that_leave_the_data_range_say_so_where_their_pictures_clip():
    # The demo's non-convergent chains read "97% saturated" beside clean black-and-white
    # pictures, while their values had reached -23.9 and 21.6 (the data: [-1, 1])
    from landscape.train.sampling import ChainReport

    def report(end):
        z = torch.zeros(2)
        return ChainReport(start=torch.zeros(2, 1, 2, 2), end=end, energy_start=z, energy_end=z, steps=8,
                           epsilon=1.0, tau=0.0, init="data", acceptance=None, nn_start=None, nn_end=None,
                           data_nn_median=None, data_energy_mean=None, saturation_start=0.5, saturation_end=1.0,
                           data_range=(-1.0, 1.0))

    far = torch.full((2, 1, 2, 2), 0.5)
    far[0, 0, 0, 0], far[1, 0, 1, 1] = -23.9, 21.6
    assert report(far).range_note() == "values at the end in [-23.9, 21.6], beyond the data's [-1, 1] (pictures clip to it)"
    assert report(far).summary()["value_max_end"] == pytest.approx(21.6)
    assert report(far.clamp(-1, 1)).range_note() is None


def test_the_demo_summary_reads_on_its_own(tmp_path):
    # A reader of summary.md found: counts of the map as built beside counts of the map
    # after the funnel probe with nothing to tell them apart, a share of refined saddles
    # that read as tree merges, steps not in L, no baselines, and /tmp paths.
    from landscape.train.demo import _summary_markdown

    def chains(steps, picture, **kw):
        return {"steps": steps, "L": 50, "nn_start": 7.13, "nn_end": 6.03, "data_nn_median": 2.02,
                "saturation_start": 0.582, "saturation_end": 0.973, "picture": str(tmp_path / picture), **kw}

    model = {"d_st_mean": 1.67, "d_st_std": 3.06, "window": 750, "d_st_lag1_autocorr": 0.19, "r_t_mean": 0.03,
             "shortrun": chains(50, "s.png"),
             "longrun": chains(1000, "l.png", value_min_end=-23.9, value_max_end=21.6, data_low=-1.0, data_high=1.0),
             "map": {"minima": 64, "merges": 63, "refined_merges": 59, "above_estimate": 7, "basins": 64, "main": 0.1,
                     "levels": [{"alpha": 0.1, "basins": 64}], "seconds": 15.0}}
    text = _summary_markdown({"digits_convergent": model, "digits_nonconvergent": model,
                              "diagnosis": {"comparison": {"figure": str(tmp_path / "c.png"), "summary": ["x"]},
                                            "digits_convergent": {"diagnosis": {"minima": 303}},
                                            "digits_nonconvergent": {"diagnosis": {"minima": 223}}}}, tmp_path)
    assert "| long-run from data: steps | 1000 (20 L) |" in text
    assert "| d_st mean ± sd (last updates) | 1.67 ± 3.06 (last 750) |" in text
    assert "58.2% -> 97.3%" in text and "-23.9 .. 21.6 (data -1 .. 1)" in text
    assert "## landscape maps (as built: the funnel probes below add minima of their own)" in text
    assert "59 of 63 (of all the pairs refined, 7 came out above their estimate: the estimate kept)" in text
    assert "`landscape compare` (the maps with the funnel probes' minima, 303 and 223; c.png):" in text
    assert str(tmp_path) not in text and "| s.png, l.png |" in text
