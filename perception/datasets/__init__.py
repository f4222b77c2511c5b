"""Datasets: one sub-package per source, all producing :class:`perception.structures.Frame`."""
