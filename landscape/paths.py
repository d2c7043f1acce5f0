"""Refine a barrier estimate with a path method: the string method with a climbing image.

Attraction-diffusion gives, per pair of basins, the highest energy on a chain that got
from one minimum to the other: an upper bound on the saddle, often a loose one. Here a
discretised path (a *string* of K images) between the two minima relaxes to the minimum
energy path (MEP), and its highest point to the saddle.

Simplified string method (W. E, W. Ren and E. Vanden-Eijnden 2007, "Simplified and
improved string method for computing the minimum energy paths in barrier-crossing events",
J. Chem. Phys. 126, 164103): repeat

1. move every interior image downhill, ``x_k <- x_k - dt * dU/dx(x_k)`` (endpoints stay
   at the minima);
2. redistribute the images at equal arc length along the moved path (linear
   interpolation), which removes the component of the motion along the path.

At the fixed point the gradient is parallel to the path: the string is an MEP. Then the
highest image *climbs*: it moves by ``-dt (g - 2 (g.t) t)`` (down across the path, up
along its tangent ``t``) while the images on each side are redistributed separately, so
it converges onto the saddle itself instead of sampling the path near it (the
climbing-image idea of the nudged elastic band: G. Henkelman, B. P. Uberuaga and
H. Jonsson 2000, J. Chem. Phys. 113, 9901).

All interior images move as one batch: one energy-and-gradient call per evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from landscape.energy import Energy, ValueAndGrad
from landscape.errors import LandscapeError, NonFiniteEnergyError


class PathResult(NamedTuple):
    """What :func:`string_method` returns.

    path : Tensor [K, *shape]
        The relaxed string, ``path[0] = a`` and ``path[-1] = b`` (input dtype and device).
    energy : ndarray float64 [K]
        Energy of each image.
    saddle_index : int
        Index of the highest image (the climbing image when climbing ran).
    saddle_energy : float
        Its energy: the refined barrier estimate (absolute energy).
    converged : bool
        The string stopped moving (and the climbing image reached a point of vanishing
        gradient) within tolerance before the step budget ran out.
    steps : int
        Iterations run, both phases, rejected trial moves included.
    initial_max_energy : float
        Highest image energy on the starting path (the images, not the continuous
        polyline): what the refinement improved on.
    saddle_grad_norm : float
        Gradient norm at the saddle image (near 0 at a true saddle after climbing).
    """

    path: torch.Tensor
    energy: np.ndarray
    saddle_index: int
    saddle_energy: float
    converged: bool
    steps: int
    initial_max_energy: float
    saddle_grad_norm: float


@dataclass
class _StringState:
    """The string between iterations: images, their energies and gradients, the step."""

    path: torch.Tensor
    u: torch.Tensor
    g: torch.Tensor
    dt: float
    grow: float = 1.1
    iterations: int = 0


def resample_polyline(points: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` points at equal arc length along the polyline through ``points``.

    Parameters
    ----------
    points : Tensor [M, D]
        Vertices in order (M >= 1; repeated vertices are fine).
    n : int
        Number of output points (>= 2); the first and last are the polyline's ends.

    Returns
    -------
    Tensor [n, D]
    """
    if points.shape[0] == 1:
        return points.expand(n, -1).clone()
    seg = torch.linalg.vector_norm(points[1:] - points[:-1], dim=1)
    s = torch.cat([seg.new_zeros(1), torch.cumsum(seg, 0)])
    total = s[-1]
    if float(total) == 0.0:
        return points[:1].expand(n, -1).clone()
    t = torch.linspace(0.0, 1.0, n, dtype=s.dtype, device=s.device) * total
    idx = (torch.searchsorted(s, t, right=True) - 1).clamp(0, points.shape[0] - 2)
    length = seg[idx]
    safe = torch.where(length > 0, length, torch.ones_like(length))
    w = torch.where(length > 0, (t - s[idx]) / safe, torch.zeros_like(t)).clamp(0.0, 1.0)
    out = points[idx] + w[:, None] * (points[idx + 1] - points[idx])
    out[0] = points[0]
    out[-1] = points[-1]
    return out


def _initial_path(
    a: torch.Tensor, b: torch.Tensor, init_path: torch.Tensor | None, via: torch.Tensor | None, k: int
) -> torch.Tensor:
    d = a.numel()
    middle: list[torch.Tensor] = []
    if init_path is not None:
        middle = [init_path.reshape(init_path.shape[0], d).to(a)]
    elif via is not None:
        middle = [via.reshape(1, d).to(a)]
    vertices = torch.cat([a.reshape(1, d), *middle, b.reshape(1, d)])
    return resample_polyline(vertices, k)


def string_method(
    energy_vg: ValueAndGrad | Energy,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    init_path: torch.Tensor | None = None,
    via: torch.Tensor | None = None,
    images: int = 32,
    steps: int = 500,
    step_size: float | None = None,
    tol: float = 1e-4,
    climb: bool = True,
    climb_steps: int | None = None,
    box: tuple[float, float] | None = None,
) -> PathResult:
    """Relax a path between two minima to the minimum energy path and find its saddle.

    Parameters
    ----------
    energy_vg : callable or Energy
        ``x [K, *shape] -> (U [K], dU/dx [K, *shape])``, e.g. ``Energy.value_and_grad_fn()``
        called inside ``energy.frozen()``. An :class:`Energy` is frozen here, and ``a``,
        ``b`` are moved to its device and dtype.
    a, b : Tensor [*shape]
        The two minima (fixed endpoints).
    init_path : Tensor [M, *shape], optional
        A starting path, e.g. the attraction-diffusion chain: the string starts on the
        polyline ``a -> init_path[0] -> ... -> init_path[-1] -> b``.
    via : Tensor [*shape], optional
        A single point to pass through, e.g. the attraction-diffusion path's peak: the
        string starts on ``a -> via -> b``. Without either, on the straight line.
    images : int
        Number of images K (>= 3), endpoints included.
    steps : int
        Iteration budget of the string phase.
    step_size : float, optional
        Initial time step ``dt``. By default the step that moves the steepest image by a
        tenth of the image spacing. It adapts: halved when a move raises any image's
        energy (the step is too large for the stiffest direction), grown by 10% after
        each accepted move.
    tol : float
        Relative tolerance: the string has converged when the largest image
        displacement per unit time falls below ``tol`` times the largest gradient norm
        on the starting path; the climbing image when its gradient norm does.
    climb : bool
        Run the climbing-image phase after the string phase (when the highest image is
        above both endpoints), for an accurate saddle energy.
    climb_steps : int, optional
        Iteration budget of the climbing phase (default ``steps``).
    box : (low, high), optional
        Clamp images into this box (e.g. the data range the model was trained on).

    Returns
    -------
    PathResult

    Raises
    ------
    NonFiniteEnergyError
        If the starting path has a non-finite energy or gradient.
    LandscapeError
        On inconsistent shapes or settings.

    Examples
    --------
    Two wells per coordinate, ``U = sum_i (x_i^2 - 1)^2``; the saddle between (-1, 1)
    and (1, 1) is (0, 1), at energy 1:

    >>> vg = lambda x: (((x**2 - 1) ** 2).sum(1), 4 * x * (x**2 - 1))
    >>> r = string_method(vg, torch.tensor([-1.0, 1.0]), torch.tensor([1.0, 1.0]), via=torch.tensor([0.0, 1.5]))
    >>> round(r.saddle_energy, 3), r.converged
    (1.0, True)

    Cost: two batched energy-and-gradient calls of K - 2 images per iteration (the
    trial move, checked for descent, then the redistributed string), at most
    ``steps + climb_steps`` iterations.

    A converged saddle energy is the highest saddle on the MEP the string relaxed to;
    it is at most the starting path's maximum when the starting path crosses the same
    saddle, but it is an estimate of a saddle, not a bound: where attraction-diffusion
    stepped over a saddle and underestimated it, the refined value is higher, and right.
    """
    if isinstance(energy_vg, Energy):
        energy = energy_vg
        energy.check_batch(a.unsqueeze(0))
        a = a.to(energy.device, energy.dtype)
        b = b.to(energy.device, energy.dtype)
        with energy.frozen():
            return string_method(
                energy.value_and_grad_fn(),
                a,
                b,
                init_path=init_path,
                via=via,
                images=images,
                steps=steps,
                step_size=step_size,
                tol=tol,
                climb=climb,
                climb_steps=climb_steps,
                box=box,
            )

    shape = tuple(a.shape)
    if tuple(b.shape) != shape:
        raise LandscapeError(f"path endpoints differ in shape: {list(a.shape)} and {list(b.shape)}")
    if init_path is not None and via is not None:
        raise LandscapeError("give either an initial path or a point to pass through, not both")
    if init_path is not None and tuple(init_path.shape[1:]) != shape:
        raise LandscapeError(f"initial path must have shape [M, {', '.join(map(str, shape))}], got {list(init_path.shape)}")
    if via is not None and tuple(via.shape) != shape:
        raise LandscapeError(f"via point must have shape {list(shape)}, got {list(via.shape)}")
    if images < 3:
        raise LandscapeError(f"a string needs at least 3 images, got {images}")
    if steps < 0 or (climb_steps is not None and climb_steps < 0) or tol < 0:
        raise LandscapeError("steps, climb_steps and tol must be non-negative")
    if step_size is not None and not step_size > 0:
        raise LandscapeError(f"step size must be positive, got {step_size}")
    climb_steps = steps if climb_steps is None else climb_steps

    k = images
    path = _initial_path(a.detach(), b.detach(), init_path, via, k)
    d = path.shape[1]

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, g = energy_vg(x.reshape(x.shape[0], *shape))
        return u.detach().reshape(x.shape[0]), g.detach().reshape(x.shape[0], d)

    u, g = evaluate(path)
    if not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(g).all())):
        raise NonFiniteEnergyError("the starting path of the string method has a non-finite energy or gradient")
    initial_max = float(u.max())
    g_norm = torch.linalg.vector_norm(g[1:-1], dim=1)
    scale = float(g_norm.max())
    spacing = float(torch.linalg.vector_norm(path[1] - path[0]))
    if scale == 0.0 or spacing == 0.0:  # flat path, or a == b: nothing to relax
        return _result(path, u, g, shape, True, 0, initial_max)
    dt = step_size if step_size is not None else 0.1 * spacing / scale
    min_dt = dt * 1e-12
    threshold = tol * scale
    # Moves may raise an energy by rounding noise alone; only a clear rise rejects a step.
    slack = 64.0 * torch.finfo(u.dtype).eps * (float(u.abs().max()) + 1.0)

    def step(
        path: torch.Tensor, u: torch.Tensor, g: torch.Tensor, dt: float, climber: int | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """One move + redistribution; None when the move is rejected."""
        force = g[1:-1].clone()
        descending = torch.ones(k - 2, dtype=torch.bool, device=u.device)
        if climber is not None:
            t = path[climber + 1] - path[climber - 1]
            t = t / torch.linalg.vector_norm(t).clamp_min(torch.finfo(t.dtype).tiny)
            gc = g[climber]
            force[climber - 1] = gc - 2.0 * torch.dot(gc, t) * t
            descending[climber - 1] = False
        trial = path.clone()
        trial[1:-1] -= dt * force
        if box is not None:
            trial[1:-1].clamp_(box[0], box[1])
        u_trial, _ = evaluate(trial[1:-1])
        if not bool(torch.isfinite(u_trial).all()):
            return None
        if bool((u_trial[descending] > u[1:-1][descending] + slack).any()):
            return None
        if climber is None:
            new = resample_polyline(trial, k)
        else:
            left = resample_polyline(trial[: climber + 1], climber + 1)
            right = resample_polyline(trial[climber:], k - climber)
            new = torch.cat([left, right[1:]])
        u_new, g_new = evaluate(new[1:-1])
        if not (bool(torch.isfinite(u_new).all()) and bool(torch.isfinite(g_new).all())):
            return None
        return (
            new,
            torch.cat([u[:1], u_new, u[-1:]]),
            torch.cat([g[:1], g_new, g[-1:]]),
        )

    # Step-size control: dt grows by 10% per accepted move until the first rejection,
    # then only shrinks. A dt that keeps changing would keep shifting the discrete fixed
    # point and the string would never settle.
    st = _StringState(path, u, g, dt)

    def relax(budget: int, climber: int | None) -> bool:
        """Iterate up to ``budget`` times; True once converged."""
        for _ in range(budget):
            st.iterations += 1
            out = step(st.path, st.u, st.g, st.dt, climber)
            if out is None:
                st.dt *= 0.5
                st.grow = 1.0
                if st.dt < min_dt:
                    return False
                continue
            move = float(torch.linalg.vector_norm(out[0] - st.path, dim=1).max()) / st.dt
            st.path, st.u, st.g = out
            st.dt *= st.grow
            if move <= threshold and (
                climber is None or float(torch.linalg.vector_norm(st.g[climber])) <= threshold
            ):
                return True
        return False

    converged = relax(steps, None)
    climber = int(torch.argmax(st.u[1:-1])) + 1
    if climb and float(st.u[climber]) > max(float(st.u[0]), float(st.u[-1])):
        # The result is then as good as the climb: a stationary string with its
        # highest image at a point of vanishing gradient.
        converged = relax(climb_steps, climber)
    return _result(st.path, st.u, st.g, shape, converged, st.iterations, initial_max)


def _result(
    path: torch.Tensor,
    u: torch.Tensor,
    g: torch.Tensor,
    shape: Sequence[int],
    converged: bool,
    iterations: int,
    initial_max: float,
) -> PathResult:
    energy = u.double().cpu().numpy()
    top = int(np.argmax(energy))
    return PathResult(
        path=path.reshape(path.shape[0], *shape),
        energy=energy,
        saddle_index=top,
        saddle_energy=float(energy[top]),
        converged=bool(converged),
        steps=iterations,
        initial_max_energy=initial_max,
        saddle_grad_norm=float(torch.linalg.vector_norm(g[top])),
    )


# ------------------------------------------------------------------------------ batched


def _resample_at(path: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Points at arc lengths ``targets [P, K]`` along polylines ``path [P, M, D]``."""
    seg = torch.linalg.vector_norm(path[:, 1:] - path[:, :-1], dim=2)
    s = torch.cat([seg.new_zeros(seg.shape[0], 1), torch.cumsum(seg, 1)], 1)
    idx = (torch.searchsorted(s.contiguous(), targets.contiguous(), right=True) - 1).clamp(0, path.shape[1] - 2)
    length = torch.gather(seg, 1, idx)
    start = torch.gather(s, 1, idx)
    safe = torch.where(length > 0, length, torch.ones_like(length))
    w = torch.where(length > 0, (targets - start) / safe, torch.zeros_like(targets)).clamp(0.0, 1.0)
    d = path.shape[2]
    p0 = torch.gather(path, 1, idx.unsqueeze(2).expand(-1, -1, d))
    p1 = torch.gather(path, 1, (idx + 1).unsqueeze(2).expand(-1, -1, d))
    return p0 + w.unsqueeze(2) * (p1 - p0)


def _redistribute(path: torch.Tensor, climber: torch.Tensor) -> torch.Tensor:
    """Equal arc length along each string; a climbing image (index > 0) stays put and
    the images on each side of it are redistributed separately."""
    p, k, _ = path.shape
    seg = torch.linalg.vector_norm(path[:, 1:] - path[:, :-1], dim=2)
    s = torch.cat([seg.new_zeros(p, 1), torch.cumsum(seg, 1)], 1)
    total = s[:, -1:]
    grid = torch.arange(k, device=path.device, dtype=path.dtype).expand(p, k)
    plain = grid / (k - 1) * total
    c = climber.clamp_min(1).unsqueeze(1)
    sc = torch.gather(s, 1, c)
    cf = c.to(path.dtype)
    left = grid / cf * sc
    right = sc + (grid - cf) / ((k - 1) - cf).clamp_min(1) * (total - sc)
    split = torch.where(grid <= cf, left, right)
    targets = torch.where((climber > 0).unsqueeze(1), split, plain)
    out = _resample_at(path, targets)
    out[:, 0], out[:, -1] = path[:, 0], path[:, -1]
    rows = torch.nonzero(climber > 0).flatten()
    if rows.numel():
        out[rows, climber[rows]] = path[rows, climber[rows]]
    return out


def string_method_batch(
    energy: Energy,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    via: torch.Tensor | None = None,
    images: int = 32,
    steps: int = 500,
    tol: float = 1e-4,
    climb: bool = True,
    climb_steps: int | None = None,
    box: tuple[float, float] | None = None,
) -> list[PathResult]:
    """:func:`string_method` for many pairs at once: all strings step as one batch.

    Parameters
    ----------
    energy : Energy
    a, b : Tensor [P, *shape]
        The endpoints of each string.
    via : Tensor [P, *shape], optional
        A point each string starts through (rows with a non-finite value start straight).
    images, steps, tol, climb, climb_steps, box :
        As for :func:`string_method`, the same for every string.

    Returns
    -------
    list of PathResult, one per pair, as :func:`string_method` would give each (up to
    the rounding of batched arithmetic): every string keeps its own step size, phase,
    climbing image and convergence test.

    Cost: two batched calls of at most ``P * (K - 2)`` images per iteration, at most
    ``steps + climb_steps`` iterations in all, instead of that many per pair.
    """
    energy.check_batch(a)
    energy.check_batch(b)
    if a.shape[0] != b.shape[0] or (via is not None and via.shape != a.shape):
        raise LandscapeError("string_method_batch needs as many endpoints (and via points) for a as for b")
    if images < 3:
        raise LandscapeError(f"a string needs at least 3 images, got {images}")
    if steps < 0 or (climb_steps is not None and climb_steps < 0) or tol < 0:
        raise LandscapeError("steps, climb_steps and tol must be non-negative")
    climb_steps = steps if climb_steps is None else climb_steps
    shape = tuple(a.shape[1:])
    n, k = a.shape[0], images
    if n == 0:
        return []
    dev, dt_ = energy.device, energy.dtype
    a = a.to(dev, dt_).reshape(n, -1)
    b = b.to(dev, dt_).reshape(n, -1)
    d = a.shape[1]
    paths = []
    for i in range(n):
        v = None
        if via is not None and bool(torch.isfinite(via[i]).all()):
            v = via[i].to(dev, dt_)
        paths.append(_initial_path(a[i], b[i], None, v, k))
    path = torch.stack(paths)  # [P, K, D]

    with energy.frozen():
        vg = energy.value_and_grad_fn()

        def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            m = x.shape[0] * x.shape[1]
            u, g = vg(x.reshape(m, *shape))
            return u.detach().reshape(x.shape[0], x.shape[1]), g.detach().reshape(x.shape[0], x.shape[1], d)

        u, g = evaluate(path)
        if not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(g).all())):
            raise NonFiniteEnergyError("a starting path of the string method has a non-finite energy or gradient")
        initial_max = u.max(1).values.double().cpu().numpy()
        scale = torch.linalg.vector_norm(g[:, 1:-1], dim=2).max(1).values
        spacing = torch.linalg.vector_norm(path[:, 1] - path[:, 0], dim=1)
        dt = 0.1 * spacing / scale.clamp_min(torch.finfo(dt_).tiny)
        min_dt = dt * 1e-12
        threshold = tol * scale
        slack = 64.0 * torch.finfo(dt_).eps * (u.abs().max(1).values + 1.0)
        grow = torch.full((n,), 1.1, device=dev, dtype=dt_)
        climber = torch.zeros(n, dtype=torch.long, device=dev)  # 0: no climbing image
        phase_iters = torch.zeros(n, dtype=torch.long, device=dev)
        iterations = torch.zeros(n, dtype=torch.long, device=dev)
        converged = torch.zeros(n, dtype=torch.bool, device=dev)
        # Flat paths (or a == b) have nothing to relax: done, converged.
        flat = (scale == 0) | (spacing == 0)
        converged |= flat
        active = ~flat
        in_climb = torch.zeros(n, dtype=torch.bool, device=dev)
        rows_all = torch.arange(n, device=dev)

        def end_phase(done: torch.Tensor, ok: torch.Tensor) -> None:
            """Strings whose phase ended: record convergence; string phase -> climb or stop."""
            nonlocal active
            converged[done] = ok[done]
            to_climb = done & ~in_climb & climb
            if bool(to_climb.any()):
                top = torch.argmax(u[:, 1:-1], dim=1) + 1
                higher = torch.gather(u, 1, top.unsqueeze(1)).squeeze(1) > torch.maximum(u[:, 0], u[:, -1])
                start = to_climb & higher & (climb_steps > 0)
                climber[start] = top[start]
                in_climb[start] = True
                phase_iters[start] = 0
                stop = done & ~start
            else:
                stop = done
            active = active & ~stop

        for _ in range(steps + climb_steps):
            budget = torch.where(in_climb, climb_steps, steps)
            out_of_budget = active & (phase_iters >= budget)
            if bool(out_of_budget.any()):
                end_phase(out_of_budget, torch.zeros_like(out_of_budget))
            idx = rows_all[active]
            if idx.numel() == 0:
                break
            iterations[idx] += 1
            phase_iters[idx] += 1
            pa, ua, ga, ca, dta = path[idx], u[idx], g[idx], climber[idx], dt[idx]
            force = ga[:, 1:-1].clone()
            descending = torch.ones(idx.numel(), k - 2, dtype=torch.bool, device=dev)
            climbing = ca > 0
            if bool(climbing.any()):
                r = torch.nonzero(climbing).flatten()
                c = ca[r]
                t = pa[r, c + 1] - pa[r, c - 1]
                t = t / torch.linalg.vector_norm(t, dim=1, keepdim=True).clamp_min(torch.finfo(dt_).tiny)
                gc = ga[r, c]
                force[r, c - 1] = gc - 2.0 * (gc * t).sum(1, keepdim=True) * t
                descending[r, c - 1] = False
            trial = pa.clone()
            trial[:, 1:-1] -= dta.reshape(-1, 1, 1) * force
            if box is not None:
                trial[:, 1:-1] = trial[:, 1:-1].clamp(box[0], box[1])
            u_trial, _ = evaluate(trial[:, 1:-1])
            ok = torch.isfinite(u_trial).all(1)
            ok &= ~((u_trial > ua[:, 1:-1] + slack[idx].unsqueeze(1)) & descending).any(1)
            new = _redistribute(trial, ca)
            u_new, g_new = evaluate(new[:, 1:-1])
            ok &= torch.isfinite(u_new).all(1) & torch.isfinite(g_new).all(2).all(1)
            # Rejected: halve the step, stop growing it; give up below the smallest step.
            bad = idx[~ok]
            dt[bad] *= 0.5
            grow[bad] = 1.0
            tiny_step = torch.zeros(n, dtype=torch.bool, device=dev)
            tiny_step[bad] = dt[bad] < min_dt[bad]
            if bool(tiny_step.any()):
                end_phase(tiny_step, torch.zeros_like(tiny_step))
                in_climb[tiny_step] = False  # a failed string phase does not climb either
                active = active & ~tiny_step
            good = idx[ok]
            if good.numel():
                newg = new[ok]
                move = torch.linalg.vector_norm(newg - pa[ok], dim=2).max(1).values / dt[good]
                path[good] = newg
                u[good] = torch.cat([ua[ok][:, :1], u_new[ok], ua[ok][:, -1:]], 1)
                g[good] = torch.cat([ga[ok][:, :1], g_new[ok], ga[ok][:, -1:]], 1)
                dt[good] *= grow[good]
                settled = move <= threshold[good]
                cg = climber[good]
                if bool((cg > 0).any()):
                    gnorm = torch.linalg.vector_norm(g[good, cg.clamp_min(0)], dim=1)
                    settled &= (cg == 0) | (gnorm <= threshold[good])
                done = torch.zeros(n, dtype=torch.bool, device=dev)
                done[good[settled]] = True
                if bool(done.any()):
                    end_phase(done, done)
        if bool(active.any()):
            end_phase(active.clone(), torch.zeros_like(active))

    results = []
    for i in range(n):
        results.append(
            _result(path[i], u[i], g[i], shape, bool(converged[i]), int(iterations[i]), float(initial_max[i]))
        )
    return results
