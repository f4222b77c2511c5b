"""losses of the stack (registered in MODELS)."""
