"""Options the commands share: one name, one type, one metavar and one help text for each.

Every command takes its shared options from here, so ``--chains`` means the same thing
(and is checked the same way) in ``sample``, ``check``, ``map``, ``funnel`` and
``compare``. A command may add one clause saying what the number counts in its own case
(``detail``) and, where the default depends on the input, what it is (``default_text``).

Renamed options live on for one release as hidden aliases (:func:`alias`): they still
work, do not show in ``--help``, and print a one-line note naming the new option when
the command ends without an error (an error stays one line).

Nothing here imports torch, numpy or the libraries at module level, so ``landscape
--help`` stays fast; the callbacks import what they need when they run.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from landscape.checks import MAX_SEED  # (no torch: checks imports nothing heavy)

#: The architectures of the Anatomy reference code's state dicts (landscape.train.nets.ARCHS,
#: without importing torch; a test keeps the two the same).
ARCH_NAMES = ("digits", "nonlocal", "toy", "vanilla")

# The parameter names ``energy_options`` adds, so a command can pass them on in one go:
# ``resolve_energy(checkpoint, **{k: kwargs.pop(k) for k in ENERGY_OPTIONS})``.
ENERGY_OPTIONS = (
    "energy", "model", "weights", "model_kwargs", "shape", "box", "arch", "train_epsilon", "float64", "device",
)

DEVICE_METAVAR = "[auto|cpu|cuda|cuda:N]"

#: The Langevin update every command runs, as its options name the symbols.
LANGEVIN = "x <- x - (eps^2/2) grad U(x) + sqrt(T) eps z"

#: ctx.meta key of the notes the deprecated aliases leave for the end of the command.
_NOTES = "landscape.deprecation_notes"

F = Callable[..., Any]


# ------------------------------------------------------------------------------ types


class FiniteFloat(click.FloatRange):
    """A float range that refuses nan and inf (``float("nan")`` passes any range test)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        # (click would show an unbounded range as "x<=None")
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()


def _box_callback(ctx: click.Context, param: click.Parameter, value: tuple[float, float] | None
                  ) -> tuple[float, float] | None:
    """``--box LOW HIGH`` with LOW below HIGH (a usage error, as a non-number is)."""
    if value is not None and not value[0] < value[1]:
        raise click.BadParameter(f"LOW must be below HIGH, got {value[0]:g} {value[1]:g}")
    return value


def device_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``: the one check of ``--device`` everywhere."""
    if value is None:
        return None
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise click.BadParameter(f"{value!r}: use auto, cpu, cuda or cuda:N")
    return value


def shape_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    from landscape.errors import LandscapeError
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
    from landscape.errors import LandscapeError
    from landscape.train.energies import _parse_kwargs

    try:
        return _parse_kwargs(value)
    except LandscapeError as exc:
        raise click.BadParameter(str(exc)) from None


def numbers(text: str, what: str, *, positive: bool = False) -> tuple[float, ...]:
    """Comma-separated numbers from an option; a usage error (exit 2) naming the option if not."""
    from landscape.errors import LandscapeError
    from landscape.train.runs import parse_floats

    try:
        return parse_floats(text, what, positive=positive)
    except LandscapeError as exc:
        raise click.BadParameter(str(exc)) from None


def auto_number(text: str, what: str) -> float | None:
    """``auto`` -> None (chosen from the landscape), else one positive number; a usage
    error (exit 2) naming the option if not."""
    from landscape.errors import LandscapeError
    from landscape.train.runs import parse_float

    if text.strip().lower() == "auto":
        return None
    try:
        return parse_float(text, what, positive=True, auto=True)
    except LandscapeError as exc:
        raise click.BadParameter(str(exc)) from None


# ------------------------------------------------------------- deprecated aliases


class DeprecatedAlias(click.Option):
    """A hidden old name of an option: its value goes to the new option's parameter."""

    def __init__(self, *args: Any, new_name: str, new_flag: str, convert: Callable[[Any], Any] | None = None,
                 note: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("hidden", True)
        kwargs.setdefault("default", None)
        super().__init__(*args, **kwargs)
        self.new_name = new_name
        self.new_flag = new_flag
        self.to_new = convert
        self.note = note


def alias(old_flag: str, new_name: str, new_flag: str, *, type: Any = None, callback: Any = None,
          convert: Callable[[Any], Any] | None = None, note: str = "") -> Callable[[F], F]:
    """A hidden ``old_flag`` that sets the parameter ``new_name`` (option ``new_flag``).

    ``convert`` maps the old value onto the new option's (``--tau 0.5`` is ``--temperature
    0.25``); ``note`` is added to the deprecation line. The command must be a
    :class:`Command` (``@click.command(..., cls=Command)``).
    """
    param = "deprecated_" + old_flag.lstrip("-").replace("-", "_")
    return click.option(old_flag, param, cls=DeprecatedAlias, type=type, callback=callback, new_name=new_name,
                        new_flag=new_flag, convert=convert, note=note, expose_value=True)


class Command(click.Command):
    """A click command that understands :func:`alias` options.

    After parsing, an alias's value moves to its new parameter (a usage error if both
    names are given); the deprecation notes are printed to stderr once the command has
    run without an error, so that an error stays one line.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.params:
            if not isinstance(param, DeprecatedAlias):
                continue
            value = ctx.params.pop(param.name, None)
            if value is None or ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
                continue
            old = param.opts[0]
            if ctx.get_parameter_source(param.new_name) == click.core.ParameterSource.COMMANDLINE:
                raise click.UsageError(f"{old} is the old name of {param.new_flag}: give {param.new_flag} only", ctx)
            ctx.params[param.new_name] = param.to_new(value) if param.to_new else value
            note = f"note: {old} is deprecated and will be removed in the next release; use {param.new_flag}"
            ctx.meta.setdefault(_NOTES, []).append(note + (f" ({param.note})" if param.note else ""))
        return rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except click.exceptions.Exit:  # an exit status chosen by the command (e.g. --strict): not an error
            _print_notes(ctx)
            raise
        _print_notes(ctx)
        return result


def _print_notes(ctx: click.Context) -> None:
    for note in ctx.meta.pop(_NOTES, []):
        click.echo(note, err=True)


# ------------------------------------------------------------------ shared options


def _help(text: str, detail: str | None = None, default_text: str | None = None, explain: str | None = None) -> str:
    """``text`` + the command's ``detail`` + the shared ``explain``ing clause + the default."""
    if detail:
        text += detail if detail[0] in ",;:" else f" {detail}"
    if explain:
        text += f": {explain}"
    text = text.rstrip(".") + "."
    if default_text:
        text += f" [default: {default_text}]"
    return text


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def chains_option(default: int | None, detail: str | None = None, *,
                  old: str | None = None) -> Callable[[F], F]:
    """``--chains N``: how many Langevin chains run (``old``: a hidden old name, e.g. ``--n``)."""
    options = [click.option("--chains", type=click.IntRange(min=1), metavar="N", default=default,
                            show_default=default is not None, help=_help(CHAINS_HELP, detail))]
    if old:
        options.append(alias(old, "chains", "--chains", type=click.IntRange(min=1)))
    return _apply(options)


def steps_option(detail: str | None = None, *, default_text: str) -> Callable[[F], F]:
    """``--steps N``: Langevin steps per chain (default chosen by the command)."""
    return click.option("--steps", type=click.IntRange(min=0), metavar="N", default=None,
                        help=_help(STEPS_HELP, detail, default_text))


def eps_option(detail: str | None = None, *, default_text: str, old: str | None = None) -> Callable[[F], F]:
    """``--eps EPS``: the Langevin step size (``old``: a hidden old name, e.g. ``--epsilon``)."""
    options = [click.option("--eps", type=FiniteFloat(min=0, min_open=True), metavar="EPS", default=None,
                            help=_help(EPS_HELP, detail, default_text, EPS_EXPLAIN))]
    if old:
        options.append(alias(old, "eps", "--eps", type=FiniteFloat(min=0, min_open=True)))
    return _apply(options)


def temperature_option(detail: str | None = None, *, default_text: str,
                       old_tau: str | None = None) -> Callable[[F], F]:
    """``--temperature T`` (T = tau^2). ``old_tau``: a hidden old noise-scale option
    (``--tau``), whose value is squared."""
    options = [click.option("--temperature", type=FiniteFloat(min=0), metavar="T", default=None,
                            help=_help(TEMPERATURE_HELP, detail, default_text, TEMPERATURE_EXPLAIN))]
    if old_tau:
        options.append(alias(old_tau, "temperature", "--temperature", type=FiniteFloat(min=0),
                             convert=lambda tau: tau * tau, note="T = tau^2: --tau 0.5 is --temperature 0.25"))
    return _apply(options)


def device_option(detail: str | None = None) -> Callable[[F], F]:
    """``--device [auto|cpu|cuda|cuda:N]``, checked by :func:`device_callback`."""
    return click.option("--device", default="auto", show_default=True, metavar=DEVICE_METAVAR,
                        callback=device_callback, help=_help(DEVICE_HELP, detail))


COMPILE_HELP = ("Run the chains' Langevin steps through torch.compile, 8 per call (landscape.fused): the same "
                "chains to rounding error (float32 chains drift apart over hundreds of steps, as any two "
                "roundings do), fewer and fused operations per step, after a compilation of 10-60 s (cached on "
                "disk for later runs). Meant for GPUs, where an eager step is dozens of kernel launches; on 2 CPU "
                "cores the compilation outweighed the gain in every run measured. Falls back to eager steps where "
                "compiling fails.")


def compile_option(detail: str | None = None) -> Callable[[F], F]:
    """``--compile``: the energy's ``compile`` (one help text for every command that runs chains)."""
    return click.option("--compile", "compile_steps", is_flag=True, help=_help(COMPILE_HELP, detail))


def seed_option(default: int | None = 0, detail: str | None = None, *,
                default_text: str | None = None) -> Callable[[F], F]:
    """``--seed INTEGER`` (0 .. 2^32 - 1)."""
    return click.option("--seed", type=click.IntRange(0, MAX_SEED), metavar="INTEGER", default=default,
                        show_default=default is not None, help=_help(SEED_HELP, detail, default_text))


def named_path(ctx: click.Context, param: click.Parameter, value: Path | None, folder: bool = False) -> Path | None:
    """An output path must name something: an empty one (``--out ""``) is the current folder,
    which only a ``folder`` output may be; a required one must be given."""
    if value is None and param.required:
        raise click.MissingParameter(ctx=ctx, param=param)
    if value is not None and str(value).strip() in ("", ".") and not folder:
        raise click.BadParameter("an empty path names no file: give one")
    return value


def resume_or_force(resume: bool, force: bool) -> None:
    """``--resume`` continues what ``--force`` would replace: a usage error together."""
    if resume and force:
        raise click.UsageError("--resume and --force contradict each other: choose one")


def out_option(help: str, *, metavar: str = "FILE", folder: bool = False, default: Path | None = None,
               required: bool = False) -> Callable[[F], F]:
    """``--out PATH``: where the command writes (``help`` says what, and the default)."""
    kind = click.Path(file_okay=not folder, dir_okay=folder, path_type=Path)
    return click.option("--out", type=kind, metavar=metavar, default=default, required=required,
                        show_default=default is not None, help=help,
                        callback=functools.partial(named_path, folder=folder))


def kept_note(picture: Path, command: str, inputs: list[Path | None], *, several: bool,
              earlier: Callable[[int], str]) -> str:
    """The note on pictures an earlier run of ``command`` drew and this one keeps
    (:func:`landscape.io.files.pictures_kept`): ``picture`` the first of them, ``several``
    whether there are more, and where ``n`` of ``inputs`` changed since, that they may show
    ``earlier(n)`` (an earlier model, the earlier file)."""
    from landscape.io.files import changed_since

    they, them, were = ("they", "them", "were") if several else ("it", "it", "was")
    newer = changed_since(picture, inputs)
    since = (f", though {' and '.join(p.name for p in newer)} changed since {they} {were} drawn: {they} may show "
             f"{earlier(len(newer))}" if newer else "")
    return (f"note: {picture} exists from an earlier {command}: {'the pictures are' if several else 'it is'} kept, "
            f"not redrawn{since} (--force redraws {them}, --out names {'others' if several else 'another'})")


def force_option(detail: str | None = None) -> Callable[[F], F]:
    """``--force``: overwrite what the command would otherwise refuse to."""
    return click.option("--force", is_flag=True, default=False, help=_help(FORCE_HELP, detail))


def quiet_option() -> Callable[[F], F]:
    """``--quiet``: no progress bars."""
    return click.option("--quiet", is_flag=True, default=False, help=QUIET_HELP)


def json_option(detail: str | None = None) -> Callable[[F], F]:
    """``--json`` (parameter ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, default=False, help=_help(JSON_HELP, detail))


def echo_json(payload: Any) -> None:
    """A command's ``--json`` output: strict JSON (non-finite numbers as null, numpy values
    and paths as plain data, :func:`landscape.io.files.json_safe`), indented, on stdout."""
    import json

    from landscape.io.files import json_safe

    click.echo(json.dumps(json_safe(payload), indent=2, allow_nan=False))


def strict_option(what: str) -> Callable[[F], F]:
    """``--strict``: exit status 3 when ``what`` (for CI)."""
    return click.option("--strict", is_flag=True, default=False,
                        help=f"Exit with status {STRICT_EXIT} (after the usual output) when {what}; for CI.")


def dataset_option(detail: str | None = None, *, default_text: str) -> Callable[[F], F]:
    """``--dataset NAME``."""
    return click.option("--dataset", type=str, default=None, metavar="NAME",
                        help=_help(DATASET_HELP, detail, default_text, DATASET_EXPLAIN))


def data_root_option() -> Callable[[F], F]:
    """``--data-root DIR``."""
    return click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
                        default=None, help=DATA_ROOT_HELP)


CHAINS_HELP = "Number of Langevin chains"
STEPS_HELP = "Langevin steps per chain"
EPS_HELP = "Langevin step size eps"
EPS_EXPLAIN = LANGEVIN
TEMPERATURE_HELP = "Temperature T of the Langevin chains"
TEMPERATURE_EXPLAIN = f"{LANGEVIN}; T = tau^2 for a noise scale tau, 0 is gradient descent, 1 samples p ~ exp(-U)"
DEVICE_HELP = "Where to run: cpu, cuda, cuda:N, or auto (a GPU when there is one)"
SEED_HELP = "Random seed"
FORCE_HELP = "Overwrite existing output files"
QUIET_HELP = "No progress bars, nor the notes of what a stage found; warnings (the energy's precision) still go to stderr."
JSON_HELP = "Print the result as JSON on stdout instead of text"
DATASET_HELP = "Data set"
DATASET_EXPLAIN = "rings, 8gaussians, digits, mnist, cifar10, flowers, folder:PATH or npz:PATH"
DATA_ROOT_HELP = "Folder holding image data sets [default: $EBM_LANDSCAPE_DATA, else ./datasets]."

#: The exit status of a command whose --strict test failed (1 is an error, 2 a usage error).
STRICT_EXIT = 3


# ------------------------------------------------------------------- energy sources


#: What --energy, --model and --weights do for a command that reads a map.
_CODE_NOTE = ("A map's record never runs code: for a map of a Python energy, name it here (the map's shape, "
              "box and dtype are used, and it must give the map's minimum energies back).")


def code_options(f: F) -> F:
    """``--energy``, ``--model`` and ``--weights`` for commands that read a map (funnel,
    diagnose): the code of a map of a Python energy, named by the user, never by the map."""
    options = [
        click.option("--energy", "energy", metavar="FILE.py:FUNCTION", default=None,
                     help=f"The Python function the map was made of. {_CODE_NOTE}"),
        click.option("--model", "network", metavar="FILE.py:FACTORY", default=None,
                     help="The network factory the map was made of (its kwargs from the map)."),
        click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="The --model network's state dict [default: the file the map records, if it is beside "
                          "the map or in this folder and unchanged]."),
    ]
    return _apply(options)(f)


def energy_options(f: F) -> F:
    """Add the energy-source options (names in ``ENERGY_OPTIONS``) to a click command."""
    options = [
        click.option("--energy", "energy", metavar="FILE.py:FUNCTION", default=None,
                     help="A Python function U(x: Tensor[B, *shape]) -> Tensor[B] as the energy "
                          "(file.py:function or package.module:function); needs --shape and --box."),
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
        click.option("--box", nargs=2, type=FiniteFloat(), metavar="LOW HIGH", default=None, callback=_box_callback,
                     help="The data range: chains from noise start uniformly in it; for images, the pixel range "
                          "the network reads, in which a data set's images are given to it (--box 0 1 for a network "
                          "trained on pixels in [0, 1]) [default: the checkpoint's; -1 1 for images of a bare state "
                          "dict; needed for --energy, --model and TorchScript]."),
        click.option("--arch", type=click.Choice(ARCH_NAMES), default=None,
                     help="Architecture of a bare state dict from the Anatomy reference code "
                          "(ToyNet: toy, VanillaNet: vanilla, NonlocalNet: nonlocal)."),
        click.option("--train-epsilon", "train_epsilon", type=FiniteFloat(min=0, min_open=True), default=None,
                     metavar="EPS", help="Langevin step size the bare state dict was trained with: its output f becomes "
                          "the energy U = 2 f / eps^2."),
        click.option("--float64", "float64", is_flag=True,
                     help="Evaluate the energy in double precision (analytic potentials, exact barriers)."),
        device_option(),
    ]
    return _apply(options)(f)
