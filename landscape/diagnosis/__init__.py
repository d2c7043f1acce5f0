"""Diagnosis: what a map says about the model behind it.

- :mod:`~landscape.diagnosis.spurious`: spurious minima (off the data, saturated, funnel sinks);
- :mod:`~landscape.diagnosis.labels`: basins against the classes of labelled data;
- :mod:`~landscape.diagnosis.report`: the self-contained HTML report of a diagnosis;
- :mod:`~landscape.diagnosis.compare`: two maps side by side.
"""
