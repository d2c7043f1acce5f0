"""Nearest-neighbour distances between batches of points (flattened), in chunks."""

from __future__ import annotations

import torch


def nearest_distance(
    x: torch.Tensor, reference: torch.Tensor, *, exclude_self: bool = False, chunk: int = 1024
) -> torch.Tensor:
    """Euclidean distance from each row of ``x`` to its nearest row of ``reference``.

    Parameters
    ----------
    x : Tensor [N, *shape]
    reference : Tensor [M, *shape]
    exclude_self : bool
        ``x`` is ``reference`` itself: skip the zero distance of each row to itself
        (leave-one-out nearest neighbour, the data's own spacing).
    chunk : int
        Rows of ``x`` per block, bounding memory at ``chunk * M`` distances.

    Returns
    -------
    Tensor [N], float64.

    Cost: O(N * M * D) arithmetic, O(chunk * M) memory.
    """
    a = x.reshape(x.shape[0], -1).double()
    b = reference.reshape(reference.shape[0], -1).to(a.device).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"points of dimension {a.shape[1]} cannot be compared with reference points of dimension {b.shape[1]}")
    out = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[0], chunk):
        d = torch.cdist(a[start : start + chunk], b)
        if exclude_self:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + start] = float("inf")
        out[start : start + chunk] = d.min(dim=1).values
    return out
