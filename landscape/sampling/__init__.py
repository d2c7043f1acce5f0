"""Sampling: the Langevin kernel (plain and Metropolis-adjusted) and batched chains.

One sampler serves training and mapping alike (:mod:`landscape.sampling.langevin`): pure
kernels ``init`` and ``langevin_step`` / ``mala_step`` over a state, and ``sample``, which
runs many chains as one batch.
"""
