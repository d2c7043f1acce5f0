"""Energy networks: ``x [B, *input_shape] -> U [B]``.

The architectures are those of Nijkamp et al. 2019, "On the Anatomy of MCMC-based ML
Learning of EBMs", as built by its public reference code (point0bar1/ebm-anatomy,
``nets.py``): ``ToyNet`` for 2-D densities, ``VanillaNet`` for synthesis from noise and
``NonlocalNet`` for convergent learning on 32x32 images. ``DigitsNet`` is a small MLP for
scikit-learn's 8x8 digits, the CPU demo's data set.

Conventions shared by every network here:

* The output is always 1-D ``[B]``, also for ``B = 1`` (never squeezed to a scalar).
* ``energy_scale`` multiplies the output. The reference code's network output ``f`` is the
  energy at temperature ``eps^2 / 2`` (its update is ``x += -grad f + eps * z``), so
  ``U = (2 / eps^2) f``; a preset sets ``energy_scale = 2 / eps^2`` and the reference
  settings carry over. The scale is a plain attribute, not a buffer, so state dicts keep
  the reference layout.
* ``spectral_norm=True`` wraps every ``Conv2d`` / ``Linear`` with
  ``torch.nn.utils.parametrizations.spectral_norm`` (one exception: the zero-initialised
  output convolution of a non-local block, see ``NonLocalBlock``).
* Parameter names follow the reference code, so its state dicts load directly (ToyNet's
  1x1 convolutions after ``convert_reference_state_dict``).
* ``value_and_grad_fn()`` returns ``x -> (U [B], dU/dx)`` for Langevin sampling. The MLPs
  (``ToyNet``, ``DigitsNet``) use a hand-written forward and backward pass on a snapshot
  of their weights; the convolutional networks use autograd on the input only.

Constructor arguments are plain data (ints, floats, bools, tuples of ints) because they
are stored in checkpoints that load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from landscape.energy import ValueAndGrad, autograd_value_and_grad

__all__ = [
    "ARCHS",
    "DigitsNet",
    "EnergyNet",
    "NonLocalBlock",
    "NonlocalNet",
    "ToyNet",
    "VanillaNet",
    "autograd_value_and_grad",
    "build_model",
    "convert_reference_state_dict",
]

LEAK = 0.05  # the reference code's LeakyReLU slope (the commentary seed writes R / ReLU)

# One fused kernel for "gradient through a leaky ReLU" (the op autograd itself calls);
# it saves a comparison and a select per layer on the sampling hot path.
_leaky_relu_backward = torch.ops.aten.leaky_relu_backward.default


# ---------------------------------------------------------------------------------------
# argument checks (constructor arguments arrive from configs and checkpoints)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _finite_float(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(["B", *map(str, shape)]) + "]"


# ---------------------------------------------------------------------------------------
# base class


class EnergyNet(nn.Module):
    """Base of the networks here: input checks, energy scale, spectral norm, sampling path.

    Subclasses set ``_input_shape`` and build their layers, then call ``_finish()``.

    Parameters
    ----------
    energy_scale : float
        Positive factor on the output (``U = energy_scale * network(x)``).
    spectral_norm : bool
        Wrap every ``Conv2d`` / ``Linear`` with spectral normalisation.

    Raises
    ------
    ValueError
        If ``energy_scale`` is not a finite positive number or ``spectral_norm`` not a bool.
    """

    _input_shape: tuple[int, ...]

    def __init__(self, *, energy_scale: float = 1.0, spectral_norm: bool = False) -> None:
        super().__init__()
        self.energy_scale = _finite_float("energy_scale", energy_scale, positive=True)
        self.spectral_norm = _flag("spectral_norm", spectral_norm)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(2,)`` or ``(3, 32, 32)``."""
        return self._input_shape

    def _finish(self) -> None:
        """Apply spectral normalisation once all layers exist."""
        if not self.spectral_norm:
            return
        for module in list(self.modules()):
            for name, child in list(module.named_children()):
                if isinstance(module, NonLocalBlock) and name == "W":
                    continue  # zero-initialised: see NonLocalBlock
                if isinstance(child, (nn.Conv2d, nn.Linear)):
                    setattr(module, name, _spectral_norm(child))

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != len(self._input_shape) + 1 or tuple(x.shape[1:]) != self._input_shape:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape {_shape_text(self._input_shape)}, "
                f"got {list(x.shape)}"
            )

    def _scaled(self, out: torch.Tensor, batch: int) -> torch.Tensor:
        # reshape, not squeeze: a batch of one stays [1]
        out = out.reshape(batch)
        return out * self.energy_scale if self.energy_scale != 1.0 else out

    def value_and_grad_fn(self) -> ValueAndGrad:
        """Return ``x -> (U [B], dU/dx [B, *input_shape])`` for sampling.

        The generic version differentiates with respect to the input only, so parameters
        never accumulate ``.grad`` (freezing them, as the sampler does, also avoids
        building graph nodes for them).

        Returns
        -------
        callable
            Both outputs detached.
        """
        return autograd_value_and_grad(self)


# ---------------------------------------------------------------------------------------
# MLPs with the hand-written sampling path


class _MLPEnergy(EnergyNet):
    """An energy held as ``f = Sequential(Linear, LeakyReLU, ..., Linear -> 1)``.

    Input is flattened to ``[B, prod(input_shape)]`` before ``f``.
    """

    f: nn.Sequential
    leak: float

    def _mlp_input(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return x.reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energies ``U [B]`` of a batch ``x [B, *input_shape]``.

        Raises
        ------
        ValueError
            If ``x`` does not have shape ``[B, *input_shape]``.
        """
        return self._scaled(self.f(self._mlp_input(x)), x.shape[0])

    def value_and_grad_fn(self) -> ValueAndGrad:
        """Return a closure computing ``U [B]`` and ``dU/dx`` without autograd.

        Langevin sampling evaluates the energy and its input gradient thousands of times on
        small batches, where per-operation overhead dominates and autograd's graph
        bookkeeping and extra operations cost more than the arithmetic (on a 2-core CPU,
        ToyNet at batch 100: about 2.5x faster than autograd; for wide layers such as
        DigitsNet's the matrix products dominate and the gain shrinks). This closure runs the forward pass
        (``addmm`` + leaky ReLU per layer, keeping pre-activations) and multiplies the last
        layer's weight row back through the masks and ``W`` matrices (one fused
        leaky-ReLU-backward and one ``mm`` per layer). ``energy_scale`` is folded into the
        last layer.

        The weights are snapshotted once, as detached copies, as the module computes them
        now (with spectral norm: as normalised by the current power-iteration vectors; in
        training mode reading them runs one power iteration, as a forward pass would). Call
        it again after the parameters change.

        Returns
        -------
        callable
            ``x [B, *input_shape] -> (U [B], dU/dx [B, *input_shape])``; it raises
            ``ValueError`` on a wrong input shape and matches autograd to rounding error.
        """
        linears = [m for m in self.f if isinstance(m, nn.Linear)]
        with torch.no_grad():
            weights = [lin.weight.detach().clone() for lin in linears]
            biases = [lin.bias.detach().clone() for lin in linears]
        # forward uses W^T contiguous (measurably faster addmm on small batches than a
        # transposed view); backward uses W as stored
        hidden = [(w.t().contiguous(), w, b) for w, b in zip(weights[:-1], biases[:-1])]
        w_out = (weights[-1][0] * self.energy_scale).contiguous()
        b_out = biases[-1] * self.energy_scale
        leak = self.leak
        check = self._check_input
        dim = math.prod(self._input_shape)
        # with no hidden layer the gradient is the broadcast weight row: copy it so callers
        # may update it in place
        linear_only = not hidden

        def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            check(x)
            batch = x.shape[0]
            h = x.detach().reshape(batch, dim)
            pre = []
            for w_t, _, b in hidden:
                a = torch.addmm(b, h, w_t)
                pre.append(a)
                h = F.leaky_relu(a, leak)
            u = torch.addmv(b_out, h, w_out)
            # dU/dh_last is the output weight row, the same for every example
            g = w_out.expand(batch, w_out.shape[0])
            for (_, w, _), a in zip(reversed(hidden), reversed(pre)):
                g = torch.mm(_leaky_relu_backward(g, a, leak, False), w)
            if linear_only:
                g = g.clone()
            return u, g.reshape(x.shape)

        return value_and_grad


class ToyNet(_MLPEnergy):
    """The Anatomy paper's network for 2-D densities (§4.1), as an MLP.

    The reference code stacks 1x1 convolutions on ``[B, 2, 1, 1]`` inputs:
    ``C(in_dim, n_f), R, C(n_f, 2n_f), R, C(2n_f, 2n_f), R, C(2n_f, 2n_f), R, C(2n_f, 1)``
    with R a LeakyReLU of slope ``leak``. A 1x1 convolution on a single pixel is a linear
    layer, so ``f`` holds ``Linear`` layers at the same indices (``f.0, f.2, f.4, f.6,
    f.8``); ``convert_reference_state_dict("toy", sd)`` reshapes reference weights.

    Parameters
    ----------
    in_dim : int
        Dimension of the data (2 for the toy densities).
    n_f : int
        Width of the first hidden layer (the others are ``2 * n_f``).
    leak : float
        LeakyReLU negative slope.
    energy_scale, spectral_norm :
        See ``EnergyNet``.

    Inputs are ``[B, in_dim]``; the reference layout ``[B, in_dim, 1, 1]`` is accepted too.

    Examples
    --------
    >>> ToyNet()(torch.zeros(5, 2)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        in_dim: int = 2,
        n_f: int = 32,
        leak: float = LEAK,
        *,
        energy_scale: float = 1.0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__(energy_scale=energy_scale, spectral_norm=spectral_norm)
        in_dim = _positive_int("in_dim", in_dim)
        n_f = _positive_int("n_f", n_f)
        self.leak = _finite_float("leak", leak)
        self._input_shape = (in_dim,)
        self.f = nn.Sequential(
            nn.Linear(in_dim, n_f),
            nn.LeakyReLU(self.leak),
            nn.Linear(n_f, 2 * n_f),
            nn.LeakyReLU(self.leak),
            nn.Linear(2 * n_f, 2 * n_f),
            nn.LeakyReLU(self.leak),
            nn.Linear(2 * n_f, 2 * n_f),
            nn.LeakyReLU(self.leak),
            nn.Linear(2 * n_f, 1),
        )
        self._finish()

    def _check_input(self, x: torch.Tensor) -> None:
        (d,) = self._input_shape
        if (x.dim() == 2 and x.shape[1] == d) or (x.dim() == 4 and tuple(x.shape[1:]) == (d, 1, 1)):
            return
        raise ValueError(f"ToyNet expects inputs of shape [B, {d}] (or [B, {d}, 1, 1]), got {list(x.shape)}")


class DigitsNet(_MLPEnergy):
    """A small MLP energy for 8x8 digit images (the CPU demo).

    ``f = Sequential(Linear(n_c * s * s, h1), R, Linear(h1, h2), R, ..., Linear(hk, 1))``
    on the flattened image, R a LeakyReLU of slope ``leak``.

    Parameters
    ----------
    n_c : int
        Image channels.
    image_size : int
        Image side ``s``.
    hidden : sequence of int
        Hidden widths (may be empty: a linear energy). Stored as a tuple of ints.
    leak : float
        LeakyReLU negative slope.
    energy_scale, spectral_norm :
        See ``EnergyNet``.

    Examples
    --------
    >>> DigitsNet(hidden=(16,))(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        n_c: int = 1,
        image_size: int = 8,
        hidden: Sequence[int] = (256, 256, 256),
        leak: float = LEAK,
        *,
        energy_scale: float = 1.0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__(energy_scale=energy_scale, spectral_norm=spectral_norm)
        n_c = _positive_int("n_c", n_c)
        image_size = _positive_int("image_size", image_size)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise ValueError(f"hidden must be a list of positive ints, got {hidden!r}")
        self.hidden = tuple(_positive_int("hidden width", h) for h in hidden)
        self.leak = _finite_float("leak", leak)
        self._input_shape = (n_c, image_size, image_size)
        widths = [n_c * image_size * image_size, *self.hidden]
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(self.leak)]
        layers.append(nn.Linear(widths[-1], 1))
        self.f = nn.Sequential(*layers)
        self._finish()


# ---------------------------------------------------------------------------------------
# convolutional networks (autograd sampling path)


class _ImageNet(EnergyNet):
    """Base of the 32x32 image networks: one constructor for both.

    Parameters
    ----------
    n_c : int
        Image channels.
    n_f : int
        Base width.
    leak : float
        LeakyReLU negative slope.
    energy_scale, spectral_norm :
        See ``EnergyNet``.
    """

    def __init__(
        self,
        n_c: int = 3,
        n_f: int = 32,
        leak: float = LEAK,
        *,
        energy_scale: float = 1.0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__(energy_scale=energy_scale, spectral_norm=spectral_norm)
        n_c = _positive_int("n_c", n_c)
        n_f = _positive_int("n_f", n_f)
        self.leak = _finite_float("leak", leak)
        self._input_shape = (n_c, 32, 32)
        self._build(n_c, n_f)
        self._finish()

    def _build(self, n_c: int, n_f: int) -> None:
        """Make the layers (``self.leak`` is set)."""
        raise NotImplementedError


class VanillaNet(_ImageNet):
    """The Anatomy paper's plain ConvNet for 32x32 images (§4.2, synthesis from noise).

    ``f = Sequential(C(n_c, n_f, 3, 1, 1), R, C(n_f, 2n_f, 4, 2, 1), R,
    C(2n_f, 4n_f, 4, 2, 1), R, C(4n_f, 8n_f, 4, 2, 1), R, C(8n_f, 1, 4, 1, 0))``
    (kernel, stride, padding), taking ``n_c x 32 x 32`` through 32, 16, 8, 4 to 1 pixel.
    Parameters as for every 32x32 network here (``n_c``, ``n_f``, ``leak``,
    ``energy_scale``, ``spectral_norm``; see ``_ImageNet``).
    """

    def _build(self, n_c: int, n_f: int) -> None:
        self.f = nn.Sequential(
            nn.Conv2d(n_c, n_f, 3, 1, 1),
            nn.LeakyReLU(self.leak),
            nn.Conv2d(n_f, 2 * n_f, 4, 2, 1),
            nn.LeakyReLU(self.leak),
            nn.Conv2d(2 * n_f, 4 * n_f, 4, 2, 1),
            nn.LeakyReLU(self.leak),
            nn.Conv2d(4 * n_f, 8 * n_f, 4, 2, 1),
            nn.LeakyReLU(self.leak),
            nn.Conv2d(8 * n_f, 1, 4, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energies ``U [B]`` of images ``x [B, n_c, 32, 32]``; ValueError on other shapes."""
        self._check_input(x)
        return self._scaled(self.f(x), x.shape[0])


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block with sub-sampling (Wang et al. 2018, "Non-local
    Neural Networks"), as used in the Anatomy paper's NonlocalNet.

    With ``inter = max(1, C // 2)``: ``theta`` is a 1x1 conv to ``inter`` channels at full
    resolution; ``phi`` and ``g`` are 1x1 convs followed by 2x2 max-pooling. Each position
    attends over the pooled positions, ``attn = softmax(theta_x @ phi_x)``, reads
    ``y = attn @ g_x``, and the block returns ``W(y) + x``. ``W`` (1x1 conv back to ``C``
    channels) starts at zero weight and bias, so the block starts as the identity.

    Under spectral normalisation ``W`` is left unwrapped: a zero matrix has spectral norm
    0, so ``W / sigma(W)`` would be 0/0, and a non-zero start would give up the identity
    start. (Dot-product attention is not globally Lipschitz in any case, so spectral norm
    on the other layers does not bound this block's Lipschitz constant either.)

    Parameters
    ----------
    in_channels : int
        Channels ``C`` of the input (and output). Height and width must be even.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.inter_channels = max(1, in_channels // 2)
        c, k = self.in_channels, self.inter_channels
        self.g = nn.Sequential(nn.Conv2d(c, k, 1), nn.MaxPool2d(2))
        self.theta = nn.Conv2d(c, k, 1)
        self.phi = nn.Sequential(nn.Conv2d(c, k, 1), nn.MaxPool2d(2))
        self.W = nn.Conv2d(k, c, 1)
        nn.init.zeros_(self.W.weight)
        nn.init.zeros_(self.W.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, C, H, W]``."""
        b, _, h, w = x.shape
        k = self.inter_channels
        theta_x = self.theta(x).reshape(b, k, h * w).transpose(1, 2)  # [B, HW, k]
        phi_x = self.phi(x).reshape(b, k, -1)  # [B, k, HW/4]
        g_x = self.g(x).reshape(b, k, -1).transpose(1, 2)  # [B, HW/4, k]
        attn = torch.softmax(torch.bmm(theta_x, phi_x), dim=-1)  # [B, HW, HW/4]
        y = torch.bmm(attn, g_x).transpose(1, 2).reshape(b, k, h, w)
        return self.W(y) + x


class NonlocalNet(_ImageNet):
    """The Anatomy paper's network for convergent ML learning on 32x32 images (§4.3).

    ``convs = Sequential(C(n_c, n_f), R, P, NL(n_f), C(n_f, 2n_f), R, P, NL(2n_f),
    C(2n_f, 4n_f), R, P)`` with 3x3 convolutions (stride 1, padding 1), R a LeakyReLU,
    P a 2x2 max-pool and NL a ``NonLocalBlock``; then
    ``fc = Sequential(Linear(4n_f * 4 * 4, 8n_f), R, Linear(8n_f, 1))``. Parameters as
    for every 32x32 network here (see ``_ImageNet``).
    """

    def _build(self, n_c: int, n_f: int) -> None:
        self.convs = nn.Sequential(
            nn.Conv2d(n_c, n_f, 3, 1, 1),
            nn.LeakyReLU(self.leak),
            nn.MaxPool2d(2),
            NonLocalBlock(n_f),
            nn.Conv2d(n_f, 2 * n_f, 3, 1, 1),
            nn.LeakyReLU(self.leak),
            nn.MaxPool2d(2),
            NonLocalBlock(2 * n_f),
            nn.Conv2d(2 * n_f, 4 * n_f, 3, 1, 1),
            nn.LeakyReLU(self.leak),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(
            nn.Linear(4 * n_f * 4 * 4, 8 * n_f),
            nn.LeakyReLU(self.leak),
            nn.Linear(8 * n_f, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energies ``U [B]`` of images ``x [B, n_c, 32, 32]``; ValueError on other shapes."""
        self._check_input(x)
        return self._scaled(self.fc(self.convs(x).reshape(x.shape[0], -1)), x.shape[0])


# ---------------------------------------------------------------------------------------
# registry, factory, reference state dicts

ARCHS: dict[str, type[EnergyNet]] = {
    "toy": ToyNet,
    "vanilla": VanillaNet,
    "nonlocal": NonlocalNet,
    "digits": DigitsNet,
}


def build_model(arch: str, kwargs: Mapping[str, Any] | None = None) -> EnergyNet:
    """Build a network by architecture name and constructor kwargs (as in checkpoints).

    Parameters
    ----------
    arch : str
        One of ``ARCHS``: ``toy``, ``vanilla``, ``nonlocal``, ``digits``.
    kwargs : mapping, optional
        Constructor arguments, plain data (e.g. ``{"n_f": 64, "energy_scale": 2 / eps**2}``).

    Returns
    -------
    EnergyNet
        A freshly initialised network (``torch``'s default initialisation).

    Raises
    ------
    ValueError
        Unknown arch (the message lists the valid ones), an unknown kwarg (the message
        lists the valid ones) or a bad value.

    Examples
    --------
    >>> build_model("toy", {"n_f": 8}).input_shape
    (2,)
    """
    cls = ARCHS.get(arch) if isinstance(arch, str) else None
    if cls is None:
        raise ValueError(f"unknown arch {arch!r}; valid archs: {', '.join(sorted(ARCHS))}")
    kwargs = dict(kwargs or {})
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in kwargs:
        if key not in params:
            raise ValueError(f"unknown kwarg {key!r} for arch {arch!r}; valid: {', '.join(params)}")
    return cls(**kwargs)


def convert_reference_state_dict(
    arch: str, sd: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Map a state dict from the Anatomy reference code onto our network's layout.

    Only ToyNet differs: the reference holds 1x1 convolution weights ``[out, in, 1, 1]``,
    ours linear weights ``[out, in]``, so those are reshaped (2-D weights pass unchanged,
    so converting twice is harmless). Other archs' dicts are returned unchanged after the
    key check. The result loads with ``model.load_state_dict(..., strict=True)``.

    Parameters
    ----------
    arch : str
        One of ``ARCHS``.
    sd : mapping of str to Tensor
        The reference state dict (e.g. ``torch.load(path, weights_only=True)``).
    kwargs : mapping, optional
        Constructor kwargs of the target network; only needed where they change the key
        set (``digits`` with non-default ``hidden``, ``spectral_norm``).

    Returns
    -------
    dict
        A new dict; ``sd`` is not modified.

    Raises
    ------
    ValueError
        Unknown arch, missing or unexpected keys (named in the message), or a ToyNet
        weight that is 4-D but not 1x1.
    """
    if not isinstance(arch, str) or arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid archs: {', '.join(sorted(ARCHS))}")
    with torch.device("meta"):  # only the key set is needed: allocate nothing
        expected = set(build_model(arch, kwargs).state_dict())
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise ValueError(f"state dict does not match arch {arch!r}: {'; '.join(parts)}")
    out = dict(sd)
    if arch == "toy":
        for key, value in sd.items():
            if value.dim() == 4:
                if tuple(value.shape[2:]) != (1, 1):
                    raise ValueError(f"{key}: expected a 1x1 convolution weight, got shape {list(value.shape)}")
                out[key] = value.reshape(value.shape[0], value.shape[1])
    return out
