"""Pictures: each ``draw_*`` draws into a matplotlib axes (or figure) it is given and
returns it, so pictures combine; each ``plot_*`` is a thin saver (new figure, draw, save
atomically, return the path). What they draw is read off a map by :mod:`landscape.io.views`.

- :mod:`~landscape.plots.common`: figures, saving, images, colours, captions;
- :mod:`~landscape.plots.tree`: the disconnectivity graph;
- :mod:`~landscape.plots.maps`: basin representatives, a 2-D energy, basins per level;
- :mod:`~landscape.plots.funnel`: the funnel probe;
- :mod:`~landscape.plots.compare`: two maps side by side;
- :mod:`~landscape.plots.report`: the spurious-minima report's pictures.
"""
