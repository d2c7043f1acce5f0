"""Training and the runs built on it (installed as ``landscape.train``; imports the core
``landscape`` and ``landscape.data``, never the command line).

- :mod:`~landscape.train.config`: presets and ``--set`` overrides, typed;
- :mod:`~landscape.train.nets`: the energy networks;
- :mod:`~landscape.train.loop`: the ML learning loop, single process or torchrun;
- :mod:`~landscape.train.checkpoint`: the checkpoint contract, written atomically, read safely;
- :mod:`~landscape.train.diagnostics`: the oscillation statistics, the KL of a 2-D model;
- :mod:`~landscape.train.figures`: pictures of training;
- :mod:`~landscape.train.sampling`: chains from a checkpoint (``landscape sample``);
- :mod:`~landscape.train.check`: the long-run convergence verdict (``landscape check``);
- :mod:`~landscape.train.energies`: the energy of a checkpoint, a file or a map;
- :mod:`~landscape.train.runs`: whole runs on files (map, funnel, diagnose, compare);
- :mod:`~landscape.train.demo`: the demo.
"""
