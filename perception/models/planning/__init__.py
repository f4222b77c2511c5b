"""STR planning / prediction models: context encoders, GPT-2 backbone, key-point decoders."""
from .diffusion import DiffusionKeypointDecoder
from .encoders import RasterContextEncoder, VectorContextEncoder
from .gpt2 import PRESETS, GPT2Backbone
from .str_model import STR

__all__ = ["DiffusionKeypointDecoder", "GPT2Backbone", "PRESETS", "RasterContextEncoder", "STR",
           "VectorContextEncoder"]
