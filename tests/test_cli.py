"""The `landscape` command end to end: exit codes, files written, one-line errors."""


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
    code, out, err = run(capsys, "sample", rings_ckpt, "--n", "16", "--steps", "10", "--out", picture, "--quiet", "--mh")
    assert code == 0, err
    assert picture.stat().st_size > 0 and "MALA acceptance rate" in out
    code, out, err = run(capsys, "sample", rings_ckpt, "--n", "16", "--steps", "10", "--out", picture, "--quiet")
    assert_one_line_error(code, err, "exists: pass --force")


def test_resume_extends_and_existing_output_needs_a_flag(rings_ckpt, capsys):
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", rings_ckpt, *TINY)
    assert_one_line_error(code, err, "exists: pass --resume to continue it or --force")
    code, out, err = run(capsys, "train", "--out", rings_ckpt, "--resume", "--steps", "6", "--quiet")
    assert code == 0, err
    assert torch.load(rings_ckpt, weights_only=True)["step"] == 6
    code, _, err = run(capsys, "train", "--out", rings_ckpt, "--resume", "--force")
    assert code == 2 and "contradict" in err


def test_digits_long_run_reports_distances(tmp_path, capsys):
    out = tmp_path / "d.pt"
    code, _, err = run(capsys, "train", "--preset", "digits-nonconvergent", "--out", out,
                       "--set", "model.kwargs.hidden=[16]", *TINY)
    assert code == 0, err
@pytest.mark.slow
    code, stdout, err = run(capsys, "sample", out, "--n", "10", "--quiet", "--save", tmp_path / "s.npz")
    assert code == 0, err
    assert "10 chains from data, 50 steps" in stdout  # default: 10x the training L (5)
    assert "mean distance to nearest training example 0.000 ->" in stdout
    assert (tmp_path / "d_samples.png").exists() and (tmp_path / "d_samples_start.png").exists()
    import numpy as np

    saved = np.load(tmp_path / "s.npz")
    assert saved["end"].shape == (10, 1, 8, 8)

@pytest.mark.slow

def test_bad_checkpoints_get_one_line_errors(tmp_path, capsys):
    code, _, err = run(capsys, "info", tmp_path / "missing.pt")
    assert_one_line_error(code, err, "missing.pt: no such file")

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    code, _, err = run(capsys, "info", corrupt)
    assert_one_line_error(code, err, "not a readable PyTorch checkpoint")

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    code, _, err = run(capsys, "info", other)
    assert_one_line_error(code, err, "not an ebm-landscape checkpoint.*bare state dict")

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
    assert code == 2 and "nope" in err
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--dataset", "digits", "--out", tmp_path / "x.pt", *TINY)
    assert_one_line_error(code, err, r"expects \[2\]")
    assert not (tmp_path / "x.pt").exists()
    code, _, err = run(capsys, "train", "--out", tmp_path / "x.pt", "--set", "sampler.bogus=1")
    assert_one_line_error(code, err, "unknown config key")
    code, _, err = run(capsys, "train", "--out", tmp_path / "x.pt", "--dataset", "mnist", "--data-root", tmp_path)
    assert_one_line_error(code, err, "mnist not found.*train-images-idx3-ubyte")
