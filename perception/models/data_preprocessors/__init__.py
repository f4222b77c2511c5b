"""data preprocessors of the stack (registered in MODELS)."""
