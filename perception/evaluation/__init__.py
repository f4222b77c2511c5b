"""Evaluation: thin adapters to the official evaluators (nuscenes-devkit, av2) and the stack's own."""
