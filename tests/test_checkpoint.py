"""Checkpoint files: atomic writes, safe reads, the Anatomy reference code's state dicts."""

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.train.checkpoint import atomic_save, energy_from_reference_state_dict, read_pt


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"step": 2, "bad": Unpicklable()}, path)
    assert read_pt(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def reference_toynet() -> nn.Sequential:
    """The reference code's layout: 1x1 convolutions on [B, 2, 1, 1], output f."""
    n = 32
    return nn.Sequential(
        nn.Conv2d(2, n, 1), nn.LeakyReLU(0.05), nn.Conv2d(n, 2 * n, 1), nn.LeakyReLU(0.05),
        nn.Conv2d(2 * n, 2 * n, 1), nn.LeakyReLU(0.05), nn.Conv2d(2 * n, 2 * n, 1), nn.LeakyReLU(0.05),
        nn.Conv2d(2 * n, 1, 1),
    )


def test_reference_state_dict_loads_as_energy_two_f_over_eps_squared(tmp_path):
    torch.manual_seed(0)
    f = reference_toynet()
    path = tmp_path / "net_200000.pth"
    torch.save({"f." + k: v for k, v in f.state_dict().items()}, path)
    eps = 0.125
    energy = energy_from_reference_state_dict(path, "toy", eps, shape=(2,), data_range=(-4.6, 4.6))
    x = torch.randn(7, 2)
    expected = 2.0 / eps**2 * f(x.reshape(7, 2, 1, 1)).reshape(7)
    torch.testing.assert_close(energy(x), expected.detach(), rtol=1e-5, atol=1e-4)
    with pytest.raises(LandscapeError, match="epsilon must be > 0"):
        energy_from_reference_state_dict(path, "toy", 0.0, shape=(2,))
    with pytest.raises(LandscapeError, match="net_200000.pth"):
        energy_from_reference_state_dict(path, "vanilla", eps, shape=(3, 32, 32))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_plain_pickle_that_would_run_code_is_named_and_never_run(tmp_path, protocol):
    # Protocol 4 is pickle.dump's default: torch's reader warned of it (two lines on stderr)
    # and stopped at its framing, before the import the file asks for, so the refusal did
    # not say why.
    import pickle
    import warnings

    from landscape.io.files import load_torch

    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    path.write_bytes(pickle.dumps({"a": _RunsCode(marker)}, protocol=protocol))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(LandscapeError, match=r"refused to load: it asks to run code \(it pickles posix\.system\)"):
            load_torch(path, "checkpoint")
    assert not said and not marker.exists()
