"""Options the commands share: one name, one type and one help text for each.

Decorators here add the options to a click command; nothing here imports torch, so
``landscape --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from landscape.errors import LandscapeError

#: The architectures of the Anatomy reference code's state dicts (landscape.train.nets.ARCHS,
#: without importing torch; a test keeps the two the same).
ARCH_NAMES = ("digits", "nonlocal", "toy", "vanilla")

# The parameter names ``energy_options`` adds, so a command can pass them on in one go:
# ``resolve_energy(checkpoint, **{k: kwargs.pop(k) for k in ENERGY_OPTIONS})``.
ENERGY_OPTIONS = (
    "energy", "model", "weights", "model_kwargs", "shape", "box", "arch", "train_epsilon", "float64", "device",
)


def shape_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    from landscape.io.sources import parse_shape

    if value is None:
        return None
    try:
        return parse_shape(value)
    except LandscapeError as exc:
        raise click.BadParameter(str(exc)) from None


def kwargs_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    from landscape.train.energies import _parse_kwargs

    try:
        return _parse_kwargs(value)
    except LandscapeError as exc:
        raise click.BadParameter(str(exc)) from None


def device_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise click.BadParameter(f"{value!r}: use auto, cpu, cuda or cuda:N")
    return value


def energy_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the energy-source options (names in ``ENERGY_OPTIONS``) to a click command."""
    options = [
        click.option("--energy", "energy", metavar="FILE.py:FUNCTION", default=None,
                     help="A Python function U(x: Tensor[B, *shape]) -> Tensor[B] as the energy "
                          "(file.py:function or package.module:function); needs --shape."),
        click.option("--model", "model", metavar="FILE.py:FACTORY", default=None,
                     help="Your own network: FACTORY(**--model-kwargs) must return an nn.Module mapping "
                          "[B, *shape] to [B] (file.py:Factory or package.module:Factory); weights from --weights."),
        click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="State dict for --model (torch.save(model.state_dict(), FILE)); read as tensors only, "
                          "never as code. A 'module.' prefix (DataParallel) is removed."),
        click.option("--model-kwargs", "model_kwargs", metavar="JSON", default=None, callback=kwargs_callback,
                     help="Keyword arguments for the --model factory, as a JSON object, e.g. '{\"width\": 64}'."),
        click.option("--shape", metavar="D[,D...]", default=None, callback=shape_callback,
                     help="Shape of one example, e.g. 2 or 3,32,32 (or 3x32x32). Needed for --energy and "
                          "TorchScript files, and for --model unless the network has an input_shape attribute; "
                          "a checkpoint knows its own."),
        click.option("--box", nargs=2, type=float, metavar="LOW HIGH", default=None,
                     help="The data range: chains from noise start uniformly in it "
                          "[default: the checkpoint's; -1 1 for images of a bare state dict]."),
        click.option("--arch", type=click.Choice(ARCH_NAMES), default=None,
                     help="Architecture of a bare state dict from the Anatomy reference code "
                          "(ToyNet: toy, VanillaNet: vanilla, NonlocalNet: nonlocal)."),
        click.option("--train-epsilon", "train_epsilon", type=click.FloatRange(min=0, min_open=True), default=None,
                     metavar="EPS", help="Langevin step size the bare state dict was trained with: its output f becomes "
                          "the energy U = 2 f / eps^2."),
        click.option("--float64", "float64", is_flag=True,
                     help="Evaluate the energy in double precision (analytic potentials, exact barriers)."),
        click.option("--device", default="auto", show_default=True, metavar="[auto|cpu|cuda|cuda:N]",
                     callback=device_callback, help="Where to evaluate the energy; auto picks a GPU when there is one."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def numbers(text: str, what: str, *, positive: bool = False) -> tuple[float, ...]:
    """Comma-separated numbers from an option; a usage error (exit 2) naming the option if not."""
    from landscape.train.runs import parse_floats

    try:
        return parse_floats(text, what, positive=positive)
    except LandscapeError as exc:
        raise click.BadParameter(str(exc)) from None
