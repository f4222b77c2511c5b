"""necks of the stack (registered in MODELS)."""
