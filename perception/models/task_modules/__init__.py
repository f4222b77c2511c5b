"""task modules of the stack (registered in MODELS)."""
