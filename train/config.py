"""Training configuration: typed dataclasses, presets, and overrides.

Only plain data lives here (no devices, no tensors), so a config round-trips through JSON
into checkpoints. Unknown keys are errors.

Presets are named after the experiment they reproduce (Nijkamp et al. 2019, "On the
Anatomy of MCMC-based ML Learning of EBMs", and its public reference code's configs) or
after the CPU demo they serve; each overrides only what differs from the defaults, with a
one-line reason.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from landscape.errors import LandscapeError

INITS = ("noise", "data", "persistent")
#: Langevin steps per update at most (the papers use up to a few thousand): more is a typo
#: that would run for ever.
MAX_CHAIN_STEPS = 10**7
OPTIMIZERS = ("sgd", "adam")

# The long-run check's defaults (:mod:`landscape.train.check`), here where the command line
# reads them without importing torch: ``landscape check``, ``landscape compare`` and the
# Python API share them.
#: Chain lengths in units of the training L: the Anatomy check runs "many times" L; 30x
#: separates the demo models by more than an order of magnitude in every quantity and
#: costs 30 L steps per start on one batch of chains.
CHECK_MULTIPLES = (1.0, 3.0, 10.0, 30.0)
#: Chains per start (data, noise): the check's yardsticks (coverage, the class mix) are
#: drawn for as many examples as chains, so a model gets one verdict at one count only.
CHECK_CHAINS = 100
REGIMES = ("convergent", "non-convergent", "unknown")


@dataclass
class DataConfig:
    name: str = "digits"
    size: int | None = None  # image side; None = the data set's own
    noise: float = 0.0  # std of Gaussian noise added to each positive batch
    limit: int | None = None  # keep the first N examples (quick runs)


@dataclass
class ModelConfig:
    arch: str = "digits"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # None: U = (2 / eps^2) * network output, the reference code's parameterisation, so its
    # learning rates and step sizes carry over unchanged.
    energy_scale: float | None = None


@dataclass
class SamplerConfig:
    epsilon: float = 0.015
    tau: float = 1.0
    steps: int = 500  # L, Langevin steps per update
    init: str = "persistent"  # noise | data | persistent
    bank_size: int = 10000  # persistent bank, split across ranks
    mh: bool = False  # Metropolis adjustment of the short-run chains
    clamp: bool = False  # clamp chains into the data range


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adam
    # SGD rates are in the reference code's units: multiplied by eps^2/2 before use, which
    # keeps tuning invariant to the Langevin step (Anatomy reference code, train_data.py).
    lr: float = 0.05
    # per update: lr_t = max(lr_min, lr * lr_decay^t); no lr_min: no floor (lr_decay 1 keeps lr)
    lr_min: float | None = None
    lr_decay: float = 1.0
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    steps: int = 1000  # parameter updates
    batch_size: int = 100  # global batch, split across ranks
    seed: int = 123
    # every update is a row of the run log (metrics.csv); rows are written to the file every
    # log_every updates (and at each checkpoint, at the end, and when a run stops or diverges)
    log_every: int = 10
    ckpt_every: int = 500  # checkpoint interval: --out is replaced every ckpt_every updates
    # 0: off. N: also keep a copy of the checkpoint every N updates, a full checkpoint that
    # info, map, check and sample take, in <out stem>.run/checkpoints/step000250.pt (the
    # update, zero-padded to 6 digits so they sort); --out stays the latest
    keep_every: int = 0
    plot_every: int = 1000  # diagnostics figure and sample pictures
    eval_every: int = 200  # 2-D data: KL(q || p_theta) on a grid


@dataclass
class Config:
    preset: str = "custom"
    regime: str = "unknown"  # convergent | non-convergent | unknown
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["optim"]["betas"] = list(d["optim"]["betas"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """Build a config from plain data; unknown keys raise LandscapeError."""
        return _from_dict(cls, d, "")

    def energy_scale(self) -> float:
        if self.model.energy_scale is not None:
            return float(self.model.energy_scale)
        return 2.0 / self.sampler.epsilon**2

    def sgd_lr_factor(self) -> float:
        return self.sampler.epsilon**2 / 2.0 if self.optim.name == "sgd" else 1.0

    def validate(self) -> Config:
        """Check ranges and choices (types are checked as the config is built:
        :meth:`from_dict`, :func:`apply_overrides`), and that the network the config names
        builds and fits in memory.

        Raises
        ------
        LandscapeError
            One line naming the field and its value.
        """
        s, o, t, d, m = self.sampler, self.optim, self.train, self.data, self.model
        checks = [
            (0 < s.epsilon <= 1e6, f"sampler.epsilon must be in (0, 1e6], got {s.epsilon}"),
            (s.tau >= 0, f"sampler.tau must be >= 0, got {s.tau}"),
            (1 <= s.steps <= MAX_CHAIN_STEPS, f"sampler.steps must be in 1..{MAX_CHAIN_STEPS:,}, got {s.steps}"),
            (s.init in INITS, f"sampler.init must be one of {', '.join(INITS)}, got {s.init!r}"),
            (s.bank_size >= 1, f"sampler.bank_size must be >= 1, got {s.bank_size}"),
            (not (s.mh and s.tau == 0), "sampler.mh needs tau > 0"),
            (not (s.mh and s.clamp), "sampler.mh and sampler.clamp cannot be combined"),
            (o.name in OPTIMIZERS, f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {o.name!r}"),
            (o.lr > 0 and (o.lr_min is None or o.lr_min > 0), "optim.lr and optim.lr_min must be > 0"),
            (o.lr_min is None or o.lr_min <= o.lr,
             f"optim.lr_min ({o.lr_min:g}) is above optim.lr ({o.lr:g}), so the rate would never be optim.lr: "
             f"lower optim.lr_min too (or set it to null, no floor)" if o.lr_min is not None else ""),
            (0 < o.lr_decay <= 1, f"optim.lr_decay must be in (0, 1], got {o.lr_decay}"),
            (o.momentum >= 0, f"optim.momentum must be >= 0, got {o.momentum}"),
            (all(0 <= b < 1 for b in o.betas), f"optim.betas must be two numbers in [0, 1), got {list(o.betas)}"),
            (o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}"),
            (t.steps >= 1 and t.batch_size >= 1, "train.steps and train.batch_size must be >= 1"),
            (min(t.log_every, t.ckpt_every, t.plot_every, t.eval_every) >= 1,
             "train.log_every, ckpt_every, plot_every and eval_every must be >= 1"),
            (t.keep_every >= 0, f"train.keep_every must be >= 0 (0: keep no copies), got {t.keep_every}"),
            (self.regime in REGIMES, f"regime must be one of {', '.join(REGIMES)}, got {self.regime!r}"),
            (d.noise >= 0, f"data.noise must be >= 0, got {d.noise}"),
            (d.size is None or d.size >= 1, f"data.size must be >= 1 (or null), got {d.size}"),
            (d.limit is None or d.limit >= 1, f"data.limit must be >= 1 (or null), got {d.limit}"),
            (bool(d.name), "data.name must name a data set, got ''"),
            (m.energy_scale is None or m.energy_scale > 0, f"model.energy_scale must be > 0 (or null), got "
                                                           f"{m.energy_scale}"),
        ]
        for ok, message in checks:
            if not ok:
                raise LandscapeError(message)
        self._check_network()
        return self

    def _check_network(self) -> None:
        """The network of ``model.arch`` and ``model.kwargs`` builds (on the meta device:
        nothing is allocated) and its parameters, gradients and optimizer state fit in memory."""
        import torch

        from landscape import checks
        from landscape.train.nets import ARCHS, build_model

        arch = self.model.arch
        if arch not in ARCHS:
            raise LandscapeError(f"model.arch must be one of {', '.join(sorted(ARCHS))}, got {arch!r}")
        kwargs = dict(self.model.kwargs)
        kwargs.setdefault("energy_scale", self.energy_scale())
        try:
            with torch.device("meta"):
                net = build_model(arch, kwargs)
        except (ValueError, TypeError, RuntimeError) as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise LandscapeError(f"model.kwargs {checks.show(self.model.kwargs)} do not build a {arch} network: "
                                 f"{text[:160]}") from None
        nbytes = sum(p.numel() * p.element_size() for p in net.parameters())
        checks.check_memory(4 * nbytes, f"the {arch} network with model.kwargs {checks.show(self.model.kwargs)} "
                                         "(weights, gradients, optimizer state)")


def lr_at(config: Config, step: int) -> float:
    """Learning rate used for update ``step`` (0-based), in the optimizer's units."""
    o = config.optim
    return max(o.lr_min or 0.0, o.lr * o.lr_decay**step) * config.sgd_lr_factor()


def changed_fields(a: dict[str, Any], b: dict[str, Any], skip: frozenset[str] | set[str] = frozenset(),
                   prefix: str = "") -> list[str]:
    """The dotted names of the fields that differ between two configs (as plain data,
    :meth:`Config.to_dict`), those in ``skip`` left out."""
    out = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        if name in skip:
            continue
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += changed_fields(x, y, skip, name + ".")
        elif x != y:
            out.append(name)
    return out


def _from_dict(cls: type, d: Any, where: str) -> Any:
    if not isinstance(d, dict):
        raise LandscapeError(f"config{'.' + where if where else ''} must be a mapping, got {_show(d)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise LandscapeError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(where + '.' + k if where else k for k in unknown)}"
            f" (valid: {', '.join(fields)})"
        )
    types = _field_types(cls)
    kwargs = {}
    for name, value in d.items():
        sub = _SECTIONS.get(name) if cls is Config else None
        path = f"{where}.{name}" if where else name
        if sub:
            kwargs[name] = _from_dict(sub, value, path)
            continue
        try:  # plain data of the field's type (a config read from a file is checked like an override)
            kwargs[name] = _convert(value, types[name], path)
        except _BadValue as exc:
            raise LandscapeError(f"config {exc}") from None
    obj = cls(**kwargs)
    if isinstance(obj, OptimConfig):
        obj.betas = tuple(obj.betas)
    return obj


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "sampler": SamplerConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` overrides, each value checked against its field's type.

    Values are read as the field's type: integers (``100``, ``1e5``, ``100_000``), finite
    floats, booleans (``true``/``false``, ``yes``/``no``, ``1``/``0``), strings (as given;
    a JSON string literal is unquoted), ``null`` (or ``none``) for optional fields, lists
    and tuples as JSON (``[0.5, 0.999]``) or comma-separated (``0.5,0.999``), a whole
    section as a JSON object (``sampler={"steps": 50, "mh": true}``, merged into it).
    Free-form mappings (``model.kwargs``) take any JSON value per key
    (``model.kwargs.hidden=[64,64]``), else the text. A value of the wrong type is a
    one-line :class:`LandscapeError` naming the field, the value and the type expected;
    ranges and choices are :meth:`Config.validate`'s to check.

    >>> apply_overrides(Config(), ["sampler.steps=50", "optim.name=adam"]).sampler.steps
    50
    """
    d = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise LandscapeError(f"override {item!r} must look like section.key=value (e.g. sampler.steps=100)")
        path, raw = item.split("=", 1)
        keys = [k.strip() for k in path.strip().split(".")]
        if not all(keys):
            raise LandscapeError(f"override {item!r} must look like section.key=value (e.g. sampler.steps=100)")
        try:
            _assign(d, Config, keys, raw.strip(), [])
        except _BadValue as exc:
            raise LandscapeError(f"bad override {item!r}: {exc}") from None
        except _BadKey as exc:
            raise LandscapeError(f"unknown config key {exc} in override {item!r}") from None
    return Config.from_dict(d)


class _BadValue(Exception):
    """A value that does not fit its field's type (the message names both)."""


class _BadKey(Exception):
    """A path that names no field."""


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _assign(node: dict[str, Any], cls: type, keys: list[str], value: Any, done: list[str]) -> None:
    """Set ``keys`` (a path below the dataclass ``cls``, whose plain data is ``node``) to
    ``value`` (text from the command line, or a JSON value), converted to the field's type."""
    key, rest = keys[0], keys[1:]
    where = ".".join([*done, key])
    types = _field_types(cls)
    if key not in types:
        raise _BadKey(f"{where!r} (valid: {', '.join(types)})")
    tp = types[key]
    if dataclasses.is_dataclass(tp):
        if rest:
            _assign(node[key], tp, rest, value, [*done, key])
            return
        section = _json_value(value) if isinstance(value, str) else value
        if not isinstance(section, dict):
            raise _BadValue(f"{where} is a section: set its fields ({where}.KEY=VALUE) or give a JSON object, "
                            f"got {_show(value)}")
        for name, item in section.items():
            _assign(node[key], tp, [str(name)], item, [*done, key])
        return
    if rest:
        if _is_mapping(tp):  # free-form keyword arguments: any JSON value, nested as the path says
            target = node[key]
            for k, sub in enumerate(rest[:-1]):
                target = target.setdefault(sub, {})
                if not isinstance(target, dict):
                    raise _BadValue(f"{'.'.join([where, *rest[:k + 1]])} is {_show(target)}, not a mapping")
            target[rest[-1]] = _json_value(value) if isinstance(value, str) else value
            return
        raise _BadKey(f"{'.'.join([where, *rest])!r} ({where} is {_describe(tp)}, not a section)")
    node[key] = _convert(value, tp, where)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` (text or a JSON value) as type ``tp``; _BadValue naming ``where`` if it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return _json_value(value) if isinstance(value, str) else value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("null", "none"))):
            return None
        if len(options) == 1:
            try:
                return _convert(value, options[0], where)
            except _BadValue:
                raise _BadValue(f"{where} must be {_describe(tp)}, got {_show(value)}") from None
        raise _BadValue(f"{where} has a type overrides cannot set ({tp})")  # not in Config today
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLEANS:
            return _BOOLEANS[value.lower()]
    elif tp is int:
        number = _number(value)
        if isinstance(number, int):
            return number
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            return int(number)
    elif tp is float:
        number = _number(value)
        if number is not None and math.isfinite(number):
            return float(number)
    elif tp is str:
        if isinstance(value, str):
            if len(value) >= 2 and value[0] == value[-1] == '"':
                decoded = _json_value(value)
                if isinstance(decoded, str):
                    return decoded
            return value
    elif origin in (tuple, list) or tp in (tuple, list):
        items = _sequence(value)
        if items is not None:
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(items) != len(args):
                    raise _BadValue(f"{where} must be {_describe(tp)}, got {_show(value)}")
                kinds = list(args)
            else:
                kinds = [args[0] if args else Any] * len(items)
            converted = [_convert(v, k, f"{where}[{i}]") for i, (v, k) in enumerate(zip(items, kinds))]
            return tuple(converted) if (origin or tp) is tuple else converted
    elif _is_mapping(tp):
        mapping = _json_value(value) if isinstance(value, str) else value
        if isinstance(mapping, dict):
            return mapping
    else:
        raise _BadValue(f"{where} has a type overrides cannot set ({tp})")  # not in Config today
    raise _BadValue(f"{where} must be {_describe(tp)}, got {_show(value)}")


_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False, "1": True, "0": False}


def _number(value: Any) -> int | float | None:
    """An int or float from text or JSON (not a bool); None if it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return None


def _sequence(value: Any) -> list[Any] | None:
    """The items of a JSON list (``[1, 2]``) or of comma-separated text (``1,2``, ``(1, 2)``)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        return None
    decoded = _json_value(value)
    if isinstance(decoded, list):
        return decoded
    text = value.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    return [v.strip() for v in text.split(",")] if text.strip() else []


def _json_value(text: str) -> Any:
    """``text`` parsed as JSON, or the text itself if it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _is_mapping(tp: Any) -> bool:
    return tp is dict or typing.get_origin(tp) is dict


def _describe(tp: Any) -> str:
    """The type ``tp`` in words, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(options) + (" or null" if type(None) in args else "")
    if origin is tuple and args and args[-1] is not Ellipsis:
        example = ",".join(_EXAMPLES.get(a, "x") for a in args)
        if len(set(args)) == 1 and args[0] in _PLURALS:
            return f"{len(args)} comma-separated {_PLURALS[args[0]]} (e.g. {example})"
        return f"{len(args)} comma-separated values ({', '.join(_describe(a) for a in args)}; e.g. {example})"
    if origin in (tuple, list) or tp in (tuple, list):
        return f"a list of {_describe(args[0]) if args else 'values'} (comma-separated or JSON)"
    if _is_mapping(tp):
        return "a JSON object"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
_PLURALS = {bool: "booleans", int: "integers", float: "finite numbers", str: "strings"}
_EXAMPLES = {bool: "true", int: "1", float: "0.5", str: "a"}


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value) if _jsonable(value) else repr(value)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _preset(name: str, regime: str, **sections: dict[str, Any]) -> Config:
    base = Config().to_dict()
    base["preset"], base["regime"] = name, regime
    for section, values in sections.items():
        base[section].update(values)
    return Config.from_dict(base)


# Each entry: the experiment it reproduces; comments give the reason for each override.
PRESETS: dict[str, Config] = {
    # Anatomy §4.1, reference config rings_convergent.json: ToyNet, persistent bank of
    # 10,000, L = 500, eps = 0.125, SGD 0.1 (x eps^2/2), 200k updates. The bank starts
    # uniform over the data's box (+-4.6, every ring); the reference starts it in [-1, 1]^2,
    # around the innermost ring, and lets the chains spread out.
    "toy-convergent": _preset(
        "toy-convergent",
        "convergent",
        data={"name": "rings"},
        model={"arch": "toy"},
        sampler={"epsilon": 0.125, "steps": 500, "init": "persistent", "bank_size": 10000},
        optim={"name": "sgd", "lr": 0.1},
        train={"steps": 200000, "log_every": 100, "ckpt_every": 5000, "plot_every": 10000, "eval_every": 1000},
    ),
    # Anatomy §4.2, synthesis from noise: uniform-noise init, L = 100, no Langevin noise
    # (tau = 0, eps = 1), Adam 1e-4, VanillaNet on Oxford flowers 32x32; data noise 0.03
    # as in the reference flowers_nonconvergent.json.
    "noise-nonconvergent": _preset(
        "noise-nonconvergent",
        "non-convergent",
        data={"name": "flowers", "size": 32, "noise": 0.03},
        model={"arch": "vanilla"},
        sampler={"epsilon": 1.0, "tau": 0.0, "steps": 100, "init": "noise"},
        optim={"name": "adam", "lr": 1e-4},
        train={"steps": 100000, "log_every": 100, "ckpt_every": 2000, "plot_every": 5000},
    ),
    # Anatomy §4.3, convergent ML, as the reference config flowers_convergent.json sets it:
    # NonlocalNet, persistent bank of 10,000, L = 500, tau = 1, eps = 0.0075, data noise
    # 0.015, SGD 0.1 (x eps^2/2) decaying by 0.99995 an update to 5e-4, 200k updates (Pan's
    # 2020 commentary on the paper, §11, reproduced it with these settings: long runs from
    # data stayed realistic from 100k to 200k updates, r_t near 0.06). The paper's slides
    # put eps for 32x32 images near 0.015, the data's local std along its most constrained
    # direction: --set sampler.epsilon=0.015 runs that.
    "convergent": _preset(
        "convergent",
        "convergent",
        data={"name": "flowers", "size": 32, "noise": 0.015},
        model={"arch": "nonlocal"},
        sampler={"epsilon": 0.0075, "steps": 500, "init": "persistent", "bank_size": 10000},
        optim={"name": "sgd", "lr": 0.1, "lr_min": 5e-4, "lr_decay": 0.99995},
        train={"steps": 200000, "log_every": 100, "ckpt_every": 2000, "plot_every": 5000},
    ),
    # CPU demo of §4.1 (about a minute and a half on one core): the rings with persistent
    # chains, but a bank of 1,000 and L = 100 so each chain still runs thousands of steps,
    # and Adam 2e-3 decaying to 5e-4 (rings appear in ~3,000 updates instead of ~30,000
    # with the paper's SGD; the decay damps the late oscillation of the learned density).
    # The paper's slides warn that Adam can keep convergent ML from a realistic steady
    # state; this one's long-run check passes (README, "Convergent or not").
    "rings-demo": _preset(
        "rings-demo",
        "convergent",
        data={"name": "rings"},
        model={"arch": "toy"},
        sampler={"epsilon": 0.125, "steps": 100, "init": "persistent", "bank_size": 1000},
        optim={"name": "adam", "lr": 2e-3, "lr_min": 5e-4, "lr_decay": 0.9995},
        train={"steps": 3000, "log_every": 50, "ckpt_every": 500, "plot_every": 1000, "eval_every": 250},
    ),
    # CPU demo of §4.3 on the bundled 8x8 digits: persistent chains with Langevin noise
    # (tau = 1), eps = 0.03 on data in [-1, 1] plus data noise 0.03 (as the reference code
    # does, so that the data's smallest std is at least the Langevin noise's). SGD decaying
    # as in the reference convergent config (flowers_convergent.json: 0.1 to 5e-4), here 0.25
    # to 0.002 over the first 2,000 updates: at a constant 0.5 (or 0.25, or a floor of 0.05)
    # the model's long-run chains drained into a few classes (`landscape check`'s mix: 31 %
    # of the chains nearest a 9 after 30 L, and still so trained 4x as long); decayed, every
    # seed tried passed. A 256-256 MLP (an update near 30 ms on one CPU core): with 128-128
    # the decayed rate's samples were noisier (a digit classifier's score 0.63-0.66 against
    # 0.75-0.79; docs/benchmarks.md, 2026-12-06 (late morning)).
    "digits-convergent": _preset(
        "digits-convergent",
        "convergent",
        data={"name": "digits", "noise": 0.03},
        model={"arch": "digits", "kwargs": {"hidden": [256, 256]}},
        sampler={"epsilon": 0.03, "steps": 50, "init": "persistent", "bank_size": 2000},
        optim={"name": "sgd", "lr": 0.25, "lr_min": 0.002, "lr_decay": 0.99759},
        train={"steps": 3000, "log_every": 50, "ckpt_every": 500, "plot_every": 500},
    ),
    # CPU demo of §4.2 on the digits: chains from uniform noise, L = 40 gradient steps without
    # noise (tau = 0, eps = 1), Adam; short-run samples look like digits, long runs drift off.
    "digits-nonconvergent": _preset(
        "digits-nonconvergent",
        "non-convergent",
        data={"name": "digits"},
        model={"arch": "digits", "kwargs": {"hidden": [128, 128]}},
        sampler={"epsilon": 1.0, "tau": 0.0, "steps": 40, "init": "noise"},
        optim={"name": "adam", "lr": 1e-3},
        train={"steps": 1000, "log_every": 50, "ckpt_every": 500, "plot_every": 500},
    ),
    # 32x32 images that ship with the install: the bundled 8x8 digits upscaled to 32x32
    # (data.size = 32), so an image EBM's whole path (a convolutional network at the paper's
    # resolution, `landscape map` in 1024 dimensions) runs without a download. A small
    # VanillaNet (n_f = 8, one channel: 44k parameters) is meant for a GPU (an update takes
    # about 0.85 s on one CPU core). Convergent: the digits-convergent sampler (persistent
    # bank, tau = 1, eps = 0.03 with data noise 0.03); SGD 0.002 (x eps^2/2), the largest of
    # 0.05, 0.01, 0.002 whose data energy did not run away from the chains' in 80 updates.
    # Not yet a convergent recipe: trained further, this run (and SGD 0.001, 0.0005) turns
    # non-convergent after 300-1,200 updates, r_t growing tenfold (docs/benchmarks.md,
    # 2026-12-05); the paper's convergent image runs sampled L = 500 per update. Nor did
    # eps = data noise = 0.1, chains from data, or a 128-128 MLP with L up to 500 (the
    # upscaled digits leave only the data noise across 960 directions; docs, 2026-12-05
    # morning).
    "digits32-convergent": _preset(
        "digits32-convergent",
        "convergent",
        data={"name": "digits", "size": 32, "noise": 0.03},
        model={"arch": "vanilla", "kwargs": {"n_f": 8, "n_c": 1}},
        sampler={"epsilon": 0.03, "steps": 50, "init": "persistent", "bank_size": 2000},
        optim={"name": "sgd", "lr": 0.002},
        train={"steps": 3000, "log_every": 50, "ckpt_every": 500, "plot_every": 1000},
    ),
    # Non-convergent short-run synthesis (Anatomy §4.2) on the same 32x32 digits and network:
    # chains from uniform noise, L = 40 gradient steps without noise (tau = 0, eps = 1),
    # kept in the data range, Adam 1e-4 as in the paper. Unclamped, the convolutional
    # network's gradients grew until the chains ran off (after ~200 updates at
    # digits-nonconvergent's Adam 1e-3, ~1,100 at 1e-4).
    "digits32-nonconvergent": _preset(
        "digits32-nonconvergent",
        "non-convergent",
        data={"name": "digits", "size": 32},
        model={"arch": "vanilla", "kwargs": {"n_f": 8, "n_c": 1}},
        sampler={"epsilon": 1.0, "tau": 0.0, "steps": 40, "init": "noise", "clamp": True},
        optim={"name": "adam", "lr": 1e-4},
        train={"steps": 1500, "log_every": 50, "ckpt_every": 250, "plot_every": 500},
    ),
}


def get_preset(name: str) -> Config:
    """A fresh copy of preset ``name``; unknown names raise LandscapeError listing them."""
    if name not in PRESETS:
        raise LandscapeError(f"unknown preset {name!r}; choose from: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


#: Sections whose settings decide what a preset learns (``train`` holds only how long and
#: how often to log and save, ``regime`` the label itself).
LEARNING_SECTIONS = ("data", "model", "sampler", "optim")


def preset_changes(config: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The learning settings of a config (a checkpoint's ``config``, as plain data) that
    differ from its preset's: ``(key, preset's value, this value)``, keys dotted as for
    ``--set`` (``sampler.tau``); none for a config of no known preset. A preset's
    ``regime`` is its label for the settings it ships with: changed ones (tau = 0, a tenth
    of the step) may learn the other way."""
    name = config.get("preset") if isinstance(config, Mapping) else None
    if not isinstance(name, str) or name not in PRESETS:
        return []
    base = PRESETS[name].to_dict()
    out: list[tuple[str, Any, Any]] = []

    def walk(prefix: str, a: Any, b: Any) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in a:
                if key in b:
                    walk(f"{prefix}.{key}", a[key], b[key])
        elif (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            out.append((prefix, a, b))

    for section in LEARNING_SECTIONS:
        if isinstance(config.get(section), Mapping):
            walk(section, base.get(section, {}), config[section])
    return out
