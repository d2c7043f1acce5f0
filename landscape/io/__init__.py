"""Files and records: what a map is made of, how it is stored, where energies come from.

- :mod:`~landscape.io.records`: the in-memory map (one type per concept);
- :mod:`~landscape.io.schema`: the map file's schema, declared once;
- :mod:`~landscape.io.mapfile`: writing, reading and updating map files;
- :mod:`~landscape.io.progress`: the state of unfinished work on a map, to resume it;
- :mod:`~landscape.io.views`: what a map says, read off it for pictures and summaries;
- :mod:`~landscape.io.sources`: energies from Python functions, your networks, TorchScript;
- :mod:`~landscape.io.files`: the atomic writer, the weights-only torch loader, JSON.
"""
