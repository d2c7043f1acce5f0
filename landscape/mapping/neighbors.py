"""Nearest neighbours between batches of points (flattened, Euclidean), in chunks.

The one nearest-neighbour search of the library: the pairs of minima whose barriers are
estimated (:mod:`landscape.mapping.barriers`), the minima's spacing
(:mod:`landscape.mapping.settings`), the map minimum a funnel chain ended in, the distance
of a minimum to the data (:mod:`landscape.diagnosis`), the long-run check.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from landscape.errors import LandscapeError


def nearest(
    x: torch.Tensor, reference: torch.Tensor, k: int = 1, *, exclude_self: bool = False, chunk: int = 1024,
    progress: Callable[[int], None] | None = None, labels: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``reference`` to each row of ``x``, nearest first.

    Parameters
    ----------
    x : Tensor [N, *shape]
    reference : Tensor [M, *shape]
    k : int
        Neighbours per row (at most ``M``, or ``M - 1`` with ``exclude_self``).
    exclude_self : bool
        ``x`` is ``reference`` itself: row ``i`` is not its own neighbour (a duplicate
        point still is, at distance 0).
    chunk : int
        Rows of ``x`` per block, bounding memory at ``chunk * M`` distances.
    progress : callable, optional
        Called with the number of rows of ``x`` done, after each block.
    labels : (LongTensor [N], LongTensor [M]), optional
        A row of ``x`` is no neighbour of the rows of ``reference`` with its label (``k``
        must leave enough others; a row with none gets distance inf).

    Returns
    -------
    distance : Tensor float64 [N, k]
    index : LongTensor [N, k]
        Rows of ``reference``.

    Raises
    ------
    ValueError
        If the points' dimensions differ, or ``k`` is out of range.

    Examples
    --------
    >>> d, i = nearest(torch.tensor([[0.0], [3.0]]), torch.tensor([[1.0], [2.5], [9.0]]))
    >>> d[:, 0].tolist(), i[:, 0].tolist()
    ([1.0, 0.5], [0, 1])

    Cost: O(N * M * D) arithmetic, O(chunk * M) memory.
    """
    a = x.reshape(x.shape[0], -1).double()
    b = reference.reshape(reference.shape[0], -1).to(a.device).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"points of dimension {a.shape[1]} cannot be compared with reference points of dimension {b.shape[1]}")
    available = b.shape[0] - (1 if exclude_self else 0)
    if not 1 <= k <= max(available, 0):
        raise ValueError(f"{k} neighbours asked for among {available} reference points")
    dist = torch.empty(a.shape[0], k, dtype=torch.float64, device=a.device)
    index = torch.empty(a.shape[0], k, dtype=torch.int64, device=a.device)
    for start in range(0, a.shape[0], chunk):
        d = torch.cdist(a[start : start + chunk], b)
        if exclude_self:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + start] = float("inf")
        if labels is not None:
            d[labels[0][start : start + chunk, None].to(d.device) == labels[1][None, :].to(d.device)] = float("inf")
        best = torch.topk(d, k, dim=1, largest=False) if k > 1 else d.min(dim=1, keepdim=True)
        dist[start : start + chunk], index[start : start + chunk] = best.values, best.indices
        if progress is not None:
            progress(d.shape[0])
    return dist, index


def nearest_distance(
    x: torch.Tensor, reference: torch.Tensor, *, exclude_self: bool = False, chunk: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Euclidean distance from each row of ``x`` to its nearest row of ``reference``
    (float64 [N]); see :func:`nearest`."""
    return nearest(x, reference, 1, exclude_self=exclude_self, chunk=chunk, progress=progress)[0][:, 0]


def spacing(x: torch.Tensor, rows: int | None = None, *, progress: Callable[[int], None] | None = None
            ) -> torch.Tensor:
    """The distance (float64) from each of the first ``rows`` examples of ``x`` (all by
    default) to its nearest example of ``x`` that differs from it: how far apart examples
    lie, which an exact duplicate (at distance 0 from its twin) does not say.

    Raises
    ------
    LandscapeError
        ``x`` holds fewer than two different examples.

    Examples
    --------
    >>> spacing(torch.tensor([[0.0], [0.0], [2.0], [5.0]])).tolist()
    [2.0, 2.0, 2.0, 3.0]
    """
    flat = x.reshape(x.shape[0], -1)
    label = torch.unique(flat, dim=0, return_inverse=True)[1] if flat.shape[0] else flat.new_zeros(0, dtype=torch.long)
    if flat.shape[0] < 2 or int(label.max()) < 1:
        n = flat.shape[0]
        held = f"{n} example{'' if n == 1 else 's'}" if n < 2 else f"one example repeated {n} times"
        raise LandscapeError(f"the data hold {held}: their spacing needs at least 2 different examples")
    n = flat.shape[0] if rows is None else min(rows, flat.shape[0])
    return nearest(flat[:n], flat, progress=progress, labels=(label[:n], label))[0][:, 0]
