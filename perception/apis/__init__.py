"""High-level APIs: build a model from a config + checkpoint and run it on one frame."""
from .inference import inference_detector, init_model

__all__ = ["inference_detector", "init_model"]
