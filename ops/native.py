"""Access to the compiled CPU kernels (``perception_ops._C``), built by ``pip install``.

When the extension was not built (no compiler at install time, ``PERCEPTION_NO_NATIVE=1``)
:func:`native_module` returns ``None`` once with a logged warning and the ops use their
PyTorch paths, which compute the same results.
"""
from __future__ import annotations

import functools
import logging
from types import ModuleType

LOGGER = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def native_module() -> ModuleType | None:
    """The compiled extension, or ``None`` (warned about once) when it is not built."""
    try:
        import torch  # noqa: F401  (the extension links against libtorch)

        from . import _C
    except ImportError as error:
        LOGGER.warning("perception_ops native CPU kernels not available (%s); using the PyTorch paths. "
                       "Reinstall with a C++ compiler (make install) to build them.", error)
        return None
    return _C


def has_native() -> bool:
    """True when the compiled CPU kernels are importable."""
    return native_module() is not None
