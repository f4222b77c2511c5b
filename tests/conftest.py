"""Shared fixtures: paths to the real samples in ../shared/data (skipped when absent)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real samples."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def nuscenes_keyframe_dir() -> Path:
    """Folder with one nuScenes keyframe: .pcd.bin, six JPEGs and an mmdet3d info pickle."""
    return _require(SHARED_DATA / "nuscenes-keyframe")


@pytest.fixture(scope="session")
def av2_sensor_log_dir() -> Path:
    """One Argoverse 2 sensor-dataset log (two sweeps, annotations, poses, calibration, map)."""
    return _require(SHARED_DATA / "av2" / "sensor" / "val" / "7fab2350-7eaf-3b7e-a39d-6937a4c1bede")


@pytest.fixture(scope="session")
def av2_motion_scenario_dir() -> Path:
    """One Argoverse 2 motion-forecasting scenario and its map."""
    return _require(
        SHARED_DATA / "av2" / "motion-forecasting" / "val" / "0a1e6f0a-1817-4a98-b02e-db8c9327d151"
    )


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated synthetic world (2 scenes x 1 s, no images, nuScenes + AV2 formats + infos),
    so tests of tools that read a dataset run on a fresh clone without `make demo`."""
    from perception.datasets.synthetic.create import Settings, create_dataset

    out = tmp_path_factory.mktemp("synthetic") / "data"
    return create_dataset(Settings(out=out, scenes=2, seed=3, sensor_duration=1.0, with_images=False,
                                   formats=("nuscenes", "av2"), val_fraction=0.5, workers=1))
