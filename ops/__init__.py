"""Kernels of the stack, installed under the import name ``perception_ops``.

Each op has a plain PyTorch reference implementation, a native CPU path and, where it pays,
a Triton GPU kernel; a dispatcher picks by device and tuned configuration.  ``ops`` knows
nothing about models or datasets.
"""
