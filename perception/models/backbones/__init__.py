"""Backbones (registered in ``perception.registry.MODELS``)."""
from .sparse_blocks import SparseBasicBlock, SparseStack, make_sparse_convmodule
from .sparse_encoder import SparseEncoder

__all__ = ["SparseBasicBlock", "SparseEncoder", "SparseStack", "make_sparse_convmodule"]
