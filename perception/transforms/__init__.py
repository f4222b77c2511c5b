"""Transforms of the stack (registered in :mod:`perception.registry`)."""
