"""The bridge builds its detector for live use: one network run per frame, even when the
config asks for flip test-time augmentation for offline evaluation."""
from __future__ import annotations

from pathlib import Path

import perception.apis
from perception.bridge.stack import DetectorStack
from perception.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = CONFIGS / "centerpoint" / "centerpoint_tiny_synthetic.py"


def test_live_stack_turns_flip_tta_off(monkeypatch) -> None:
    built = []
    real_init_model = perception.apis.init_model

    def recording_init_model(*args, **kwargs):
        built.append(real_init_model(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(perception.apis, "init_model", recording_init_model)
    assert load_config(TINY).model.test_cfg.pts.flip_tta is True  # the offline setting
    stack = DetectorStack.from_files(TINY, checkpoint=None)
    assert built[0].pts_bbox_head.test_cfg["flip_tta"] is False
    assert "car" in stack.class_names
