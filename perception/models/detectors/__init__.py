"""detectors of the stack (registered in MODELS)."""
