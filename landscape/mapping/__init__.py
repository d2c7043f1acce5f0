"""Mapping: from an energy to its minima, the barriers between them, their tree and basins.

- :mod:`~landscape.mapping.minima`: quench and merge: metastable states;
- :mod:`~landscape.mapping.neighbors`: nearest neighbours between batches of points;
- :mod:`~landscape.mapping.paths`: the string method (saddles between two minima);
- :mod:`~landscape.mapping.barriers`: which pairs of minima, their estimates, refinement;
- :mod:`~landscape.mapping.tree`: the barrier tree (disconnectivity graph) and its text;
- :mod:`~landscape.mapping.ad`: attraction-diffusion, the basins of a pull;
- :mod:`~landscape.mapping.settings`: the map's settings and the policy that chooses them;
- :mod:`~landscape.mapping.pipeline`: ``build_map`` and ``extend_map``, the stages in order;
- :mod:`~landscape.mapping.funnel`: the noise-level funnel probe of a map.
"""
