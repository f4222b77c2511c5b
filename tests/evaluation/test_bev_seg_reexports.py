"""The old homes of the BEV-seg figure and class list still import (thin re-exports of
perception.visualization.bev_seg_figure and perception.structures.bev_seg_classes)."""
from __future__ import annotations

import perception.evaluation.bev_seg_figure as old_figure
import perception.visualization.bev_seg_figure as figure
from perception.evaluation.bev_seg_metric import BEVSegMetric
from perception.models.dense_heads.bev_seg_head import BEVSegmentationHead
from perception.structures.bev_seg_classes import BEV_SEG_CLASSES
from perception.transforms.bev_seg import LoadBEVSegmentation
from perception.transforms.bev_seg_raster import BEV_SEG_CLASSES as OLD_CLASSES


def test_old_figure_path_re_exports() -> None:
    for name in ("paint", "save_bev_seg_figure", "SEG_COLORS", "PAINT_ORDER"):
        assert getattr(old_figure, name) is getattr(figure, name)


def test_one_class_list_everywhere() -> None:
    assert OLD_CLASSES is BEV_SEG_CLASSES
    assert BEV_SEG_CLASSES == ("drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider")
    assert BEVSegMetric().classes == BEV_SEG_CLASSES
    for fn in (BEVSegmentationHead.__init__, LoadBEVSegmentation.__init__):
        assert fn.__defaults__ is not None and BEV_SEG_CLASSES in fn.__defaults__ or \
            fn.__kwdefaults__ and BEV_SEG_CLASSES in fn.__kwdefaults__.values()
