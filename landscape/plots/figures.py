"""The names this module used to hold, from where they live now (kept for one release).

Import from the modules themselves:

- views of a map (no matplotlib): :mod:`landscape.io.views`;
- figures, saving, images, colours: :mod:`landscape.plots.common`;
- the disconnectivity graph: :mod:`landscape.plots.tree`;
- representatives, 2-D energies, levels: :mod:`landscape.plots.maps`;
- the funnel probe: :mod:`landscape.plots.funnel`.
"""

from __future__ import annotations

from landscape.io.files import atomic_path
from landscape.io.views import (
    TreeMerge,
    ad_temperature,
    basin_tree_of,
    data_range,
    describe_source,
    leaf_basins,
    level_name,
    map_alpha,
    map_dataset,
    map_temperature,
    minima_kind,
    partition_of,
    short_source,
    spurious_minima,
    tree_merges,
)
from landscape.plots.common import (
    check_picture_path,
    new_figure,
    save_figure,
    show_image,
)
from landscape.plots.funnel import draw_funnel, plot_funnel
from landscape.plots.maps import (
    draw_levels,
    draw_map_2d,
    draw_representatives,
    plot_levels,
    plot_map_2d,
    plot_representatives,
)
from landscape.plots.tree import draw_map_tree, draw_tree, plot_tree

#: Pictures are written through the library's one atomic writer.
atomic_output = atomic_path


__all__ = [
    "TreeMerge",
    "ad_temperature",
    "atomic_output",
    "basin_tree_of",
    "check_picture_path",
    "data_range",
    "describe_source",
    "draw_funnel",
    "draw_levels",
    "draw_map_2d",
    "draw_map_tree",
    "draw_representatives",
    "draw_tree",
    "leaf_basins",
    "level_name",
    "map_alpha",
    "map_dataset",
    "map_temperature",
    "minima_kind",
    "new_figure",
    "partition_of",
    "plot_funnel",
    "plot_levels",
    "plot_map_2d",
    "plot_representatives",
    "plot_tree",
    "save_figure",
    "short_source",
    "show_image",
    "spurious_minima",
    "tree_merges",
]
