"""The embedded default dataset: a seeded synthetic driving world written in real nuScenes
and Argoverse 2 formats (see :mod:`.types` for the in-memory form)."""
