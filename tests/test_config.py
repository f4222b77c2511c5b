"""Config loading: _base_ inheritance, and errors that name the key and the file."""
from __future__ import annotations

from pathlib import Path

import pytest

from perception.config import ConfigError, load_config
from perception.registry import TRANSFORMS


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture()
def base_config(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "base.py",
        "point_cloud_range = [-50.0, -50.0, -5.0, 50.0, 50.0, 3.0]\n"
        "train_pipeline = [dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range)]\n"
        "train_cfg = dict(max_epochs=2)\n",
    )


def test_base_inheritance_and_build(tmp_path: Path, base_config: Path) -> None:
    child = _write(tmp_path / "child.py", "_base_ = ['./base.py']\ntrain_cfg = dict(max_epochs=5)\n")
    cfg = load_config(child)
    assert cfg.train_cfg.max_epochs == 5
    transform = TRANSFORMS.build(cfg.train_pipeline[0])
    assert list(transform.bounds) == [-50.0, -50.0, -5.0, 50.0, 50.0, 3.0]


def test_cfg_options_override(tmp_path: Path, base_config: Path) -> None:
    cfg = load_config(base_config, {"train_cfg.max_epochs": 7})
    assert cfg.train_cfg.max_epochs == 7


def test_unknown_component_key_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "typo.py", "train_pipeline = [dict(type='PointsRangeFilter', point_cloud_rnage=[0, 0, 0, 1, 1, 1])]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "point_cloud_rnage" in message and str(path) in message and "point_cloud_range" in message
    assert "train_pipeline[0]" in message


def test_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "wrong_type.py", "train_pipeline = [dict(type='ObjectNameFilter', classes='car')]\n")
    # a string is not a Sequence[str] of class names here: the annotation says Sequence
    with pytest.raises(ConfigError, match=r"classes.*ObjectNameFilter"):
        load_config(path)


def test_misspelt_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "top.py", "trian_cfg = dict(max_epochs=1)\n")
    with pytest.raises(ConfigError, match=r"trian_cfg.*train_cfg"):
        load_config(path)


def test_missing_file_and_missing_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.py")
    path = _write(tmp_path / "orphan.py", "_base_ = ['./missing_base.py']\n")
    with pytest.raises(ConfigError, match="orphan.py"):
        load_config(path)


def test_syntax_error_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.py", "train_cfg = dict(max_epochs=\n")
    with pytest.raises(ConfigError, match="broken.py"):
        load_config(path)


def test_kwargs_are_followed_to_the_base_class(tmp_path: Path) -> None:
    """AV2SensorDataset passes **kwargs to mmengine's BaseDataset: keys of neither are errors."""
    path = _write(
        tmp_path / "ds.py",
        "train_dataloader = dict(dataset=dict(type='AV2SensorDataset', ann_file='x.pkl', lazy_init=True,"
        " load_sweep=2))\n",
    )
    with pytest.raises(ConfigError, match=r"train_dataloader.dataset.load_sweep.*load_sweeps"):
        load_config(path)
    ok = _write(tmp_path / "ok.py", "train_dataloader = dict(dataset=dict(type='AV2SensorDataset', "
                "ann_file='x.pkl', lazy_init=True, load_sweeps=2))\n")
    assert load_config(ok).train_dataloader.dataset.load_sweeps == 2
