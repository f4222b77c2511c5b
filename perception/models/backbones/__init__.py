"""Backbones (registered in ``perception.registry.MODELS``)."""
from .second import SECOND
from .sparse_blocks import SparseBasicBlock, SparseStack, make_sparse_convmodule
from .sparse_encoder import SparseEncoder
from .flatformer import FlatFormer, SSTWindowBackbone

__all__ = ["FlatFormer", "SSTWindowBackbone", "SECOND", "SparseBasicBlock", "SparseEncoder", "SparseStack", "make_sparse_convmodule"]
from .resnet import ResNet  # noqa: F401,E402
