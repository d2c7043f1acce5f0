"""The Langevin sampler: one kernel for training and for mapping.

Update (Nijkamp et al. 2019, "On the Anatomy of MCMC-based ML Learning of EBMs", eq. 3)::

    x <- x - (eps^2 / 2) * dU/dx + tau * eps * z,    z ~ N(0, I)

``tau = 1`` is the true sampler of ``exp(-U)``; ``tau = 0`` is gradient descent; in
general the chain targets ``exp(-U / tau^2)``. The Metropolis-adjusted version (MALA)
composes the same move with an accept/reject step for that target.

Kernels are pure: ``init(x, value_and_grad) -> state`` and
``step(state, value_and_grad, eps, tau, generator) -> (state, info)``. The state carries
the energy and gradient at ``x`` so no gradient is computed twice. ``sample`` runs many
chains as one batch and collects what training and mapping need; it does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from landscape import fused
from landscape.energy import Energy, ValueAndGrad
from landscape.errors import LandscapeError, NonFiniteEnergyError


class ChainState(NamedTuple):
    """Where a batch of chains is: positions, energies and gradients there."""

    x: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class StepInfo(NamedTuple):
    """Diagnostics of one step: gradient norms at the new state, acceptance (MALA only)."""

    grad_norm: torch.Tensor
    accepted: torch.Tensor | None


class SampleResult(NamedTuple):
    """What ``sample`` returns.

    x, energy : the final positions and their energies.
    grad_norm_mean : per chain, ``1/(L+1) * sum_{l=0..L} ||dU/dx(Y_l)||``: the chain's
        share of the Anatomy paper's v_t (average gradient magnitude along the chain).
    acceptance : per chain, the fraction of accepted MALA proposals (None without MH).
    trace : per step (L+1 entries, step 0 the start), the chains' mean energy and mean
        gradient norm, when asked for.
    """

    x: torch.Tensor
    energy: torch.Tensor
    grad_norm_mean: torch.Tensor
    acceptance: torch.Tensor | None
    trace: dict[str, torch.Tensor] | None


#: The largest step (and noise scale) a chain takes: eps^2 / 2 multiplies float32 gradients,
#: which overflow above about 3.4e38.
MAX_EPS = 1e15


def _norms(g: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1)


def init(x: torch.Tensor, value_and_grad: ValueAndGrad) -> ChainState:
    """Start chains at ``x``: evaluate energy and gradient once."""
    u, g = value_and_grad(x)
    return ChainState(x, u, g)


def langevin_step(
    state: ChainState,
    value_and_grad: ValueAndGrad,
    eps: float,
    tau: float,
    generator: torch.Generator | None,
    box: tuple[float, float] | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[ChainState, StepInfo]:
    """One unadjusted Langevin move (ULA), clamped into ``box`` if one is given; with
    ``noise``, that standard normal draw instead of one from ``generator``.

    Non-finite values propagate (``sample`` checks for them); clamping keeps NaN as NaN,
    and an infinite gradient shows in the returned gradient norm.
    """
    moved = langevin_move(state, value_and_grad, eps, tau, generator, box, noise)
    return moved, StepInfo(_norms(moved.grad), None)


class RowGroups:
    """Noise for a batch whose rows come in consecutive groups, each with its own
    generator: group ``k``'s rows get exactly the draws its generator would give them in
    a batch of their own, so a chain's noise does not depend on what it is batched with.
    Pass it where a kernel takes a generator.

    ``sizes``: rows per group; :meth:`select` keeps rows (order kept) and records the
    step at which each group lost its last row (``emptied``).
    """

    def __init__(self, sizes: Sequence[int], generators: Sequence[torch.Generator | None]):
        if len(sizes) != len(generators):
            raise LandscapeError(f"{len(sizes)} row groups but {len(generators)} generators")
        self.generators = list(generators)
        self.group = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(list(sizes), dtype=torch.int64))
        self.sizes = [int(n) for n in sizes]
        self.emptied: list[int | None] = [None] * len(self.sizes)

    def randn(self, shape: Sequence[int], device: torch.device, dtype: torch.dtype,
              out: torch.Tensor | None = None) -> torch.Tensor:
        if sum(self.sizes) != shape[0]:
            raise LandscapeError(f"noise for {shape[0]} rows asked of row groups holding {sum(self.sizes)}")
        if out is None:
            out = torch.empty(tuple(shape), device=device, dtype=dtype)
        start = 0
        for n, g in zip(self.sizes, self.generators):  # (each group's draw straight into its rows)
            if n:
                torch.randn((n, *shape[1:]), generator=g, out=out[start : start + n])
            start += n
        return out

    def select(self, keep: torch.Tensor, step: int) -> None:
        """Keep the rows ``keep`` (bool [B]); groups left empty are marked at ``step``."""
        self.group = self.group[keep.cpu()]
        sizes = torch.bincount(self.group, minlength=len(self.sizes)).tolist()
        for k, (old, new) in enumerate(zip(self.sizes, sizes)):
            if old and not new:
                self.emptied[k] = step
        self.sizes = sizes


def gaussian_noise(shape: Sequence[int], generator: torch.Generator | RowGroups | None, device: torch.device,
                   dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """Standard normal draws of ``shape`` from ``generator`` (one per row group for
    :class:`RowGroups`); written into ``out`` (a contiguous tensor of that shape) when given,
    with the same numbers."""
    if isinstance(generator, RowGroups):
        return generator.randn(shape, device, dtype, out)
    if out is not None:
        return torch.randn(tuple(shape), generator=generator, out=out)
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def window_noise(z: torch.Tensor | None, shape: Sequence[int], generator: torch.Generator | RowGroups | None,
                 device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The noise of a compiled window's ``fused.STEPS`` steps ``[STEPS, *shape]``, drawn a
    step at a time as the eager steps draw it (the same numbers), into ``z`` where it has
    that shape (one buffer for the windows of a batch: no stacking, no new memory)."""
    if z is None or tuple(z.shape[1:]) != tuple(shape):
        z = torch.empty((fused.STEPS, *shape), device=device, dtype=dtype)
    for k in range(fused.STEPS):
        gaussian_noise(shape, generator, device, dtype, out=z[k])
    return z


def langevin_move(
    state: ChainState,
    value_and_grad: ValueAndGrad,
    eps: float | torch.Tensor,
    tau: float,
    generator: torch.Generator | RowGroups | None,
    box: tuple[float, float] | None = None,
    noise: torch.Tensor | None = None,
) -> ChainState:
    """:func:`langevin_step` without its diagnostics (for loops that keep their own).
    ``eps`` is one step for every chain, or a float64 tensor ``[B]`` of one step per chain;
    ``generator`` may be :class:`RowGroups` (one generator per group of rows)."""
    z = None
    if tau != 0.0:
        z = noise if noise is not None else gaussian_noise(state.x.shape, generator, state.x.device, state.x.dtype)
    if isinstance(eps, torch.Tensor):
        view = (-1,) + (1,) * (state.x.dim() - 1)
        # coefficients in float64, rounded once, and fused as torch.add(..., alpha=) fuses
        # a Python float: a chain takes bit for bit the steps it takes with a float eps
        e = eps.to(torch.float64)
        x = torch.addcmul(state.x, state.grad, (-0.5 * e * e).to(state.x.dtype).reshape(view))
        if z is not None:
            x.addcmul_(z, (tau * e).to(state.x.dtype).reshape(view))
    else:
        x = torch.add(state.x, state.grad, alpha=-0.5 * eps * eps)
        if z is not None:
            x.add_(z, alpha=tau * eps)
    if box is not None:
        x.clamp_(box[0], box[1])
    u, g = value_and_grad(x)
    return ChainState(x, u, g)


def mala_step(
    state: ChainState,
    value_and_grad: ValueAndGrad,
    eps: float,
    tau: float,
    generator: torch.Generator | None,
) -> tuple[ChainState, StepInfo]:
    """One Metropolis-adjusted Langevin move targeting ``exp(-U / tau^2)``.

    A proposal whose energy or gradient is not finite is rejected, so chains that start
    finite stay finite.
    """
    if tau <= 0.0:
        raise LandscapeError("Metropolis adjustment needs tau > 0 (tau = 0 is gradient descent)")
    h = 0.5 * eps * eps
    sigma = tau * eps
    temperature = tau * tau
    batch = state.x.shape[0]
    z = torch.randn(state.x.shape, generator=generator, device=state.x.device, dtype=state.x.dtype)
    proposal = torch.add(state.x, state.grad, alpha=-h).add_(z, alpha=sigma)
    u_new, g_new = value_and_grad(proposal)
    # log q(x | x') - log q(x' | x) for Gaussian proposals of variance sigma^2.
    back = (state.x - proposal + h * g_new).reshape(batch, -1)
    log_q_back = -(back * back).sum(1) / (2.0 * sigma * sigma)
    log_q_fwd = -0.5 * (z.reshape(batch, -1) ** 2).sum(1)
    log_alpha = -(u_new - state.energy) / temperature + log_q_back - log_q_fwd
    finite = torch.isfinite(log_alpha) & torch.isfinite(g_new.reshape(batch, -1)).all(1)
    log_uniform = torch.log(
        torch.rand(batch, generator=generator, device=state.x.device, dtype=state.x.dtype)
    )
    accept = finite & (log_uniform < log_alpha)
    shape = (batch,) + (1,) * (state.x.dim() - 1)
    keep = accept.reshape(shape)
    x = torch.where(keep, proposal, state.x)
    u = torch.where(accept, u_new, state.energy)
    g = torch.where(keep, g_new, state.grad)
    return ChainState(x, u, g), StepInfo(_norms(g), accept)


def sample(
    energy: Energy,
    x0: torch.Tensor,
    steps: int,
    eps: float,
    tau: float = 1.0,
    *,
    mh: bool = False,
    generator: torch.Generator | None = None,
    box: tuple[float, float] | None = None,
    trace: bool = False,
    check_every: int = 100,
    progress: Callable[[int], None] | None = None,
) -> SampleResult:
    """Run ``len(x0)`` chains for ``steps`` Langevin steps as one batch.

    Parameters
    ----------
    energy : Energy
        The energy; its module (if any) is frozen and put in eval mode while sampling, so
        no autograd graph is built through the parameters.
    x0 : Tensor [B, *shape]
        Starting points (not modified).
    steps : int
        Number of moves L (L + 1 gradient evaluations, the start included).
    eps, tau : float
        Step size and noise scale of ``x - eps^2/2 dU/dx + tau eps z``.
    mh : bool
        Metropolis adjustment (MALA); acceptance rates are returned.
    generator : torch.Generator, optional
        Source of all randomness (same device as ``x0``).
    box : (low, high), optional
        Clamp positions into this box after each move (ULA only).
    trace : bool
        Also return per-step mean energy and mean gradient norm.
    check_every : int
        Steps between checks for non-finite values (each check synchronises the device).
    progress : callable, optional
        Called with the number of steps just completed, every ``check_every`` steps.

    Returns
    -------
    SampleResult

    Raises
    ------
    NonFiniteEnergyError
        If a chain's energy or gradient becomes NaN or infinite (ULA), or a start is not
        finite. The message says how many chains and in which steps.
    LandscapeError
        On a batch of the wrong shape or invalid settings.

    Cost: ``steps + 1`` energy-and-gradient evaluations of the whole batch.
    """
    energy.check_batch(x0)
    if steps < 0:
        raise LandscapeError(f"steps must be >= 0, got {steps}")
    if not (0.0 < eps <= MAX_EPS and 0.0 <= tau <= MAX_EPS):
        raise LandscapeError(f"need 0 < eps <= {MAX_EPS:g} and 0 <= tau <= {MAX_EPS:g} (eps^2 times a gradient must "
                             f"stay a float32 number), got eps={eps}, tau={tau}")
    if mh and box is not None:
        raise LandscapeError("a clamping box breaks the Metropolis correction; use one or the other")
    with energy.frozen():
        vg = energy.value_and_grad_fn()
        state = init(x0.detach().clone(), vg)
        norm_sum = _norms(state.grad)
        if not bool(torch.isfinite(state.energy).all() & torch.isfinite(norm_sum).all()):
            bad = int((~(torch.isfinite(state.energy) & torch.isfinite(norm_sum))).sum())
            raise NonFiniteEnergyError(
                f"{bad} of {x0.shape[0]} chains start at a non-finite energy or gradient"
            )
        # NaN and inf are absorbing in a running sum: one sum per quantity detects any
        # bad step cheaply, and a check every `check_every` steps localises it.
        watch = state.energy.clone()
        accepted = torch.zeros_like(norm_sum) if mh else None
        trace_u = [state.energy.mean()] if trace else None
        trace_g = [norm_sum.mean()] if trace else None
        done_checked = 0
        # energy.compile: plain Langevin steps run fused.STEPS at a time (landscape.fused),
        # with the noise drawn here as the eager steps draw it
        fusable = energy.compile and not mh and trace_u is None and x0.shape[0] >= fused.MIN_ROWS
        key = ("langevin", tau != 0.0)
        ell = 0
        z_window: torch.Tensor | None = None
        step = fused.numbers((-0.5 * eps * eps, tau * eps), x0) if fusable else []
        bounds = fused.bounds(box, x0) if fusable else ()
        while ell < steps:
            check = min(steps, (ell // check_every + 1) * check_every)
            fn = fused.compiled(energy, key, _fused_langevin(tau != 0.0)) \
                if fusable and check - ell >= fused.STEPS else None
            z, eager = None, 1
            if fn is not None:
                x = state.x
                z = z_window = window_noise(z_window, x.shape, generator, x.device, x.dtype) \
                    if tau != 0.0 else x.new_zeros((fused.STEPS, 1))
                out = fused.call(energy, key, fn, x, state.grad, *step, *bounds, z, watch, norm_sum)
                if out is None:  # compiling failed: this window's steps eagerly, with its noise
                    eager = fused.STEPS
                else:
                    x, u, g, watch, norm_sum = out
                    state = ChainState(x, u, g)
                    ell += fused.STEPS
                    eager = 0
            for k in range(eager):
                ell += 1
                if mh:
                    state, info = mala_step(state, vg, eps, tau, generator)
                else:
                    state, info = langevin_step(state, vg, eps, tau, generator, box,
                                                None if z is None or tau == 0.0 else z[k])
                norm_sum.add_(info.grad_norm)
                watch.add_(state.energy)
                if accepted is not None:
                    accepted.add_(info.accepted)
                if trace_u is not None:
                    trace_u.append(state.energy.mean())
                    trace_g.append(info.grad_norm.mean())
            if ell == check:
                _check_finite(watch, norm_sum, done_checked, ell)
                if progress is not None:
                    progress(ell - done_checked)
                done_checked = ell
    result_trace = None
    if trace_u is not None:
        result_trace = {"energy": torch.stack(trace_u), "grad_norm": torch.stack(trace_g)}
    return SampleResult(
        x=state.x,
        energy=state.energy,
        grad_norm_mean=norm_sum / (steps + 1),
        acceptance=None if accepted is None else accepted / max(steps, 1),
        trace=result_trace,
    )


def _fused_langevin(noisy: bool) -> Callable[[ValueAndGrad], Callable[..., tuple[torch.Tensor, ...]]]:
    """``fused.STEPS`` plain Langevin steps with :func:`sample`'s running sums, as one
    function of tensors for ``torch.compile`` (``noisy``: ``tau != 0``)."""

    def build(value_and_grad: ValueAndGrad) -> Callable[..., tuple[torch.Tensor, ...]]:
        def window(x: torch.Tensor, g: torch.Tensor, drift: torch.Tensor, noise: torch.Tensor, low: torch.Tensor,
                   high: torch.Tensor, z: torch.Tensor, watch: torch.Tensor, norm_sum: torch.Tensor
                   ) -> tuple[torch.Tensor, ...]:
            u = watch
            for k in range(fused.STEPS):
                x = x + g * drift
                if noisy:
                    x = x + z[k] * noise
                x = torch.clamp(x, low, high)
                u, g = value_and_grad(x)
                norm_sum = norm_sum + _norms(g)
                watch = watch + u
            return x, u, g, watch, norm_sum

        return window

    return build


def _check_finite(watch: torch.Tensor, norm_sum: torch.Tensor, first: int, last: int) -> None:
    ok = torch.isfinite(watch) & torch.isfinite(norm_sum)
    if not bool(ok.all()):
        bad = torch.nonzero(~ok).flatten()
        shown = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise NonFiniteEnergyError(
            f"{len(bad)} of {len(ok)} chains reached a non-finite energy or gradient between "
            f"steps {first + 1} and {last} (chains {shown}); try a smaller eps or check the model"
        )
