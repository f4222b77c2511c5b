"""dense heads of the stack (registered in MODELS)."""
