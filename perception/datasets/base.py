"""Base class of every dataset: an mmengine ``BaseDataset`` over an info file that yields
:class:`~perception.structures.Frame` objects.

Info files hold only paths, matrices and annotations (no devkit scans at training time);
:meth:`FrameDataset.frame_from_info` turns one info record into a ``Frame`` by reading the
sensor files.  The pipeline receives ``{"frame": Frame, "sample_idx": int, "data_root": str}``
(the root lets map transforms find ``<data_root>/maps`` without restating it).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any

from mmengine.dataset import BaseDataset

from ..structures import Frame


class FrameDataset(BaseDataset):
    """mmengine dataset whose items start as :class:`Frame` objects."""

    @abstractmethod
    def frame_from_info(self, info: dict[str, Any]) -> Frame:
        """Load the sensor files of one info record into a :class:`Frame`."""

    def get_frame(self, index: int) -> Frame:
        """The :class:`Frame` of item ``index`` (no pipeline applied)."""
        return self.frame_from_info(self.get_data_info(index))

    def prepare_data(self, index: int) -> Any:
        """Load the frame and run the pipeline on ``{"frame", "sample_idx", "data_root"}``."""
        return self.pipeline({"frame": self.get_frame(index), "sample_idx": index, "data_root": self.data_root})
