"""Vector-map ground truth (perception/datasets/vector_map_gt.py): hand-made maps, the synthetic
world and the real Argoverse 2 log in ../shared/data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from perception.datasets.vector_map_geometry import clip_lines, make_lines, patch_box
from perception.datasets.vector_map_gt import MAP_CLASSES, VectorMapGTConfig, VectorMapGTError, build_map_instances
from perception.datasets.vector_map_sources import road_map_elements
from perception.evaluation.map_ap import resample_instances
from perception.structures import MapElement, invert_transform, make_transform, yaw_matrix

RANGE = (-10.0, -5.0, 10.0, 5.0)


def build(elements: list[MapElement], world2local: np.ndarray | None = None, **options):
    config = VectorMapGTConfig(pc_range=options.pop("pc_range", RANGE), **options)
    return build_map_instances(elements, np.eye(4) if world2local is None else world2local, config)


def of_class(gt, name: str) -> np.ndarray:
    return gt.points[gt.labels == gt.class_names.index(name)]


def signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def test_divider_clipped_and_resampled_by_arc_length() -> None:
    gt = build([MapElement("divider", [[-20.0, 1.0], [20.0, 1.0]])], num_points=5)
    assert gt.class_names == MAP_CLASSES and gt.labels.tolist() == [0] and not gt.closed.any()
    np.testing.assert_allclose(gt.points[0], [[-10, 1], [-5, 1], [0, 1], [5, 1], [10, 1]], atol=1e-5)
    # a line leaving and re-entering the patch gives two instances
    gt = build([MapElement("divider", [[-8.0, 0.0], [0.0, 8.0], [8.0, 0.0]])])
    assert len(gt) == 2
    assert np.abs(gt.points[..., 1]).max() <= 5.0 + 1e-5 and np.isclose(gt.points[..., 1].max(), 5.0)
    # unequal segments: 20 points evenly spaced along the 8 m L-shape (one every 8/19 m)
    gt = build([MapElement("divider", [[0.0, 0.0], [6.0, 0.0], [6.0, 2.0]])])
    steps = np.linalg.norm(np.diff(gt.points[0], axis=0), axis=1)
    assert steps.max() - steps.min() < 0.1 and steps.sum() == pytest.approx(8.0 - 2 * (8 / 19 - steps.max()), abs=0.2)


def test_dividers_meeting_end_to_end_merge() -> None:
    pieces = [MapElement("divider", [[0.0, 0.0], [3.0, 0.0]]), MapElement("divider", [[3.0, 0.0], [6.0, 1.0]])]
    assert len(build(pieces)) == 1 and len(build(pieces, merge_dividers=False)) == 2
    # three lines meeting at one node (a split) are not merged
    split = pieces + [MapElement("divider", [[3.0, 0.0], [6.0, -1.0]])]
    assert len(build(split)) == 3


def test_ped_crossing_clipped_closed_clockwise() -> None:
    crossing = MapElement("ped_crossing", [[8.0, -2.0], [14.0, -2.0], [14.0, 2.0], [8.0, 2.0]], closed=True)
    gt = build([crossing], num_points=20)
    assert gt.labels.tolist() == [1] and gt.closed.tolist() == [True]
    ring = gt.points[0]
    assert ring[:, 0].min() == pytest.approx(8.0) and ring[:, 0].max() == pytest.approx(10.0)  # cut at x = 10
    assert signed_area(ring) < 0  # clockwise exterior
    assert not np.allclose(ring[0], ring[-1])  # first vertex not repeated
    # 20 points on the 12 m perimeter of the 2 x 4 remainder: one every 0.6 m, all on its outline
    outline = shapely.box(8, -2, 10, 2).exterior
    assert shapely.distance(shapely.points(ring), outline).max() < 1e-5
    along = shapely.line_locate_point(outline, shapely.points(ring))
    assert np.abs(np.mod(np.diff(np.append(along, along[0])), 12.0)) == pytest.approx(np.full(20, 12.0 - 0.6), abs=1e-4)


def test_overlapping_crossings_merge_only_when_parallel() -> None:
    a = MapElement("ped_crossing", [[0.0, -4.0], [2.0, -4.0], [2.0, 1.0], [0.0, 1.0]], closed=True)
    b = MapElement("ped_crossing", [[0.0, 0.0], [2.0, 0.0], [2.0, 4.0], [0.0, 4.0]], closed=True)
    across = MapElement("ped_crossing", [[-6.0, 3.0], [1.0, 3.0], [1.0, 4.5], [-6.0, 4.5]], closed=True)
    assert len(build([a, b])) == 1  # one crossing drawn in two pieces
    assert len(build([a, b], merge_crossings=False)) == 2
    assert len(build([a, b, across])) == 2  # the perpendicular one at the corner stays apart


def test_boundary_from_drivable_area_union() -> None:
    left = MapElement("drivable_area", [[-20.0, -3.0], [0.0, -3.0], [0.0, 3.0], [-20.0, 3.0]], closed=True)
    right = MapElement("drivable_area", [[0.0, -3.0], [20.0, -3.0], [20.0, 3.0], [0.0, 3.0]], closed=True)
    gt = build([left, right])
    bounds = of_class(gt, "boundary")
    assert len(bounds) == 2 and not gt.closed.any()  # y = +-3 lines; the shared edge x = 0 is gone
    assert sorted(np.round(bounds[:, :, 1].mean(axis=1), 4).tolist()) == [-3.0, 3.0]
    assert np.abs(bounds[..., 0]).max() == pytest.approx(10.0)
    for line in bounds:  # drivable area on the right of the direction of travel (MapTR's orientation)
        direction = line[-1] - line[0]
        right_normal = np.array([direction[1], -direction[0]])
        assert np.dot(right_normal, -line[0]) > 0  # the origin (on the road) is to the right
    assert build_map_instances([], np.eye(4)).points.shape == (0, 20, 2)  # no elements: no instances


def test_block_of_drivable_areas_gives_exterior_and_hole_rings() -> None:
    rects = [(-8, -4, 8, -2), (-8, 2, 8, 4), (-8, -4, -6, 4), (6, -4, 8, 4)]  # a frame around an island
    areas = [MapElement("drivable_area", np.asarray(shapely.box(*r).exterior.coords)[:-1], closed=True) for r in rects]
    bounds = of_class(build(areas, num_points=40), "boundary")
    assert len(bounds) == 2
    # each a closed loop read as a polyline (first point = last point), along the outline
    np.testing.assert_allclose(bounds[:, 0], bounds[:, -1], atol=1e-5)
    areas_signed = sorted(signed_area(line[:-1]) for line in bounds)
    assert areas_signed == pytest.approx([-16 * 8, 12 * 4], rel=0.05)  # exterior clockwise, island counter-clockwise


def test_closed_ring_cut_by_patch_is_joined_across_its_first_vertex() -> None:
    ring = make_lines([np.array([[0.0, -3.0], [20.0, -3.0], [20.0, 3.0], [-20.0, 3.0], [-20.0, -3.0], [0.0, -3.0]])])
    patch = patch_box(RANGE)
    assert len(clip_lines(ring, patch, merge=False)) == 3 and len(clip_lines(ring, patch, merge=True)) == 2


def test_boundary_lines_source_and_small_pieces_dropped() -> None:
    elements = [MapElement("boundary", [[-30.0, 4.0], [30.0, 4.0]]),
                MapElement("boundary", [[9.95, -4.0], [11.0, -4.0]]),  # 5 cm inside the patch
                MapElement("drivable_area", [[-5.0, -1.0], [5.0, -1.0], [5.0, 1.0]], closed=True)]
    assert len(of_class(build(elements, boundary_source="lines"), "boundary")) == 1  # 5 cm piece < min_length
    assert len(of_class(build(elements, boundary_source="lines", min_length=0.0), "boundary")) == 2
    assert len(of_class(build(elements), "boundary")) == 1  # auto: the drivable triangle's outline
    loop = of_class(build(elements), "boundary")[0]
    np.testing.assert_allclose(loop[0], loop[-1], atol=1e-5)  # a whole ring inside the patch: a closed-loop polyline


def test_world_to_local_transform_and_class_order() -> None:
    lidar2global = make_transform(yaw_matrix(np.pi / 2), np.array([100.0, 50.0, 3.0]))
    world = [MapElement("divider", [[100.0, 40.0, 0.0], [100.0, 60.0, 0.0]]),  # along world y = local x
             MapElement("ped_crossing", [[96.0, 52.0], [96.0, 54.0], [94.0, 54.0], [94.0, 52.0]], closed=True)]
    gt = build(world, invert_transform(lidar2global), class_names=("ped_crossing", "divider"))
    assert gt.class_names == ("ped_crossing", "divider") and sorted(gt.labels.tolist()) == [0, 1]
    divider = gt.points[gt.labels == 1][0]
    np.testing.assert_allclose(divider[:, 1], 0.0, atol=1e-5)
    np.testing.assert_allclose(divider[[0, -1], 0], [-10.0, 10.0], atol=1e-5)  # clipped at local x = +-10
    crossing = gt.points[gt.labels == 0][0]
    np.testing.assert_allclose([crossing[:, 0].min(), crossing[:, 0].max()], [2.0, 4.0], atol=1e-5)
    np.testing.assert_allclose([crossing[:, 1].min(), crossing[:, 1].max()], [4.0, 5.0], atol=1e-5)  # cut at y=5


@pytest.mark.parametrize("bad, match", [
    (dict(pc_range=(10, 0, -10, 5)), "pc_range"), (dict(num_points=1), "num_points"),
    (dict(class_names=("divider", "lane")), "class_names"), (dict(boundary_source="curbs"), "boundary_source"),
    (dict(min_length=-1.0), "min_length"), (dict(sources={"divider": ("divider",)}), "sources"),
])
def test_bad_config(bad: dict, match: str) -> None:
    with pytest.raises(VectorMapGTError, match=match):
        VectorMapGTConfig(**bad)


def test_bad_matrix() -> None:
    with pytest.raises(VectorMapGTError, match="world2local"):
        build_map_instances([MapElement("divider", [[0.0, 0.0], [1.0, 0.0]])], np.eye(3))


# ------------------------------------------------------------------ synthetic world


def test_synthetic_world_boundaries_follow_its_road_edges() -> None:
    from perception.datasets.synthetic.world import build_town

    road_map = build_town().road_map
    elements = road_map_elements(road_map)
    x0, y0, x1, y1 = road_map.bounds
    centre = make_transform(np.eye(3), np.array([(x0 + x1) / 2, (y0 + y1) / 2, 0.0]))
    config = VectorMapGTConfig(pc_range=(-30.0, -15.0, 30.0, 15.0))
    gt = build_map_instances(elements, invert_transform(centre), config)
    counts = np.bincount(gt.labels, minlength=3)
    assert (counts > 0).all(), counts
    assert np.all(np.abs(gt.points[..., 0]) <= 30 + 1e-4) and np.all(np.abs(gt.points[..., 1]) <= 15 + 1e-4)
    assert gt.closed.tolist() == (gt.labels == 1).tolist()
    # boundaries built from the union of road segments lie on the world's own road-edge lines
    edges = shapely.multilinestrings([shapely.linestrings(np.asarray(b)[:, :2]) for b in road_map.boundaries])
    edges = shapely.transform(edges, lambda xy: xy - centre[:2, 3])
    sampled = resample_instances(of_class(gt, "boundary"), np.zeros(counts[2], bool), 50).reshape(-1, 2)
    assert np.percentile(shapely.distance(shapely.points(sampled), edges), 95) < 0.05


# ------------------------------------------------------------------ real Argoverse 2 log


@pytest.fixture(scope="module")
def av2_frame_and_gt(av2_sensor_log_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from perception.datasets.av2 import AV2SensorDataset
    from perception.datasets.av2.create_infos import create_infos

    infos = create_infos(av2_sensor_log_dir.parents[1], "val", tmp_path_factory.mktemp("av2map"), max_sweeps=0)
    dataset = AV2SensorDataset(ann_file=str(infos), data_root=str(av2_sensor_log_dir.parents[1]), with_map=True)
    frame = dataset.get_frame(1)
    config = VectorMapGTConfig(pc_range=(-30.0, -15.0, 30.0, 15.0))
    return frame, config, build_map_instances(frame.map_elements, invert_transform(frame.lidar2global), config)


def _lidar_views(frame) -> tuple[np.ndarray, cKDTree]:
    """Elevated (0.5-4 m) static returns (points inside annotated objects removed) and a tree of ground returns."""
    points = frame.points[:, :3].astype(np.float64)
    points = points[(np.abs(points[:, 0]) < 32) & (np.abs(points[:, 1]) < 17)]
    candidates = points[(points[:, 2] > 0.5) & (points[:, 2] < 4.0)]
    elevated = candidates[~frame.boxes.points_in_boxes(candidates).any(axis=1), :2]
    return elevated, cKDTree(points[points[:, 2] < 0.2, :2])


def _lidar_agreement(elevated: np.ndarray, ground: cKDTree, gt) -> dict[str, float]:
    """How the ground truth sits in the LiDAR sweep: ``divider_clear``: share of divider samples
    with no elevated static return within 1 m (painted lines run through free road);
    ``divider_ground`` / ``boundary_ground``: share of samples with a ground return (z < 0.2 m)
    within 1 m; ``outside``: share of elevated static returns (buildings, poles, trees) more than
    0.3 m from a boundary that lie on its outer (left) side, the drivable area being on the
    right of every boundary."""
    out = {}
    for name in ("divider", "boundary"):
        mask = gt.labels == gt.class_names.index(name)
        samples = resample_instances(gt.points[mask], gt.closed[mask], 100).reshape(-1, 2)
        out[f"{name}_ground"] = float(np.mean([len(n) > 0 for n in ground.query_ball_point(samples, 1.0)]))
        if name == "divider":
            near = cKDTree(elevated).query_ball_point(samples, 1.0)
            out["divider_clear"] = float(np.mean([len(n) == 0 for n in near]))
    lines = resample_instances(of_class(gt, "boundary"), np.zeros(int((gt.labels == 2).sum()), bool), 200)
    starts, ends = lines[:, :-1].reshape(-1, 2), lines[:, 1:].reshape(-1, 2)
    query = elevated[(np.abs(elevated[:, 0]) < 29) & (np.abs(elevated[:, 1]) < 14)]
    segments = shapely.linestrings(np.stack([starts, ends], axis=1))
    (_, nearest), distance = shapely.STRtree(segments).query_nearest(shapely.points(query), return_distance=True,
                                                                       all_matches=False)
    rel, segment = query - starts[nearest], (ends - starts)[nearest]
    cross = segment[:, 0] * rel[:, 1] - segment[:, 1] * rel[:, 0]
    out["outside"] = float(np.mean(cross[distance > 0.3] > 0))
    return out


def _passes(agreement: dict[str, float]) -> bool:
    return (agreement["divider_clear"] > 0.98 and agreement["outside"] > 0.93
            and agreement["divider_ground"] > 0.6 and agreement["boundary_ground"] > 0.6)


@pytest.mark.real_data
@pytest.mark.slow
def test_av2_ground_truth_matches_the_lidar_sweep(av2_frame_and_gt, tmp_path: Path) -> None:
    frame, config, gt = av2_frame_and_gt
    counts = np.bincount(gt.labels, minlength=3)
    assert counts[0] >= 2 and counts[1] >= 2 and counts[2] >= 2, counts  # dividers, crossings, boundaries
    assert gt.points.shape[1:] == (20, 2) and gt.closed.tolist() == (gt.labels == 1).tolist()
    assert np.all(np.abs(gt.points[..., 0]) <= 30 + 1e-4) and np.all(np.abs(gt.points[..., 1]) <= 15 + 1e-4)
    elevated, ground = _lidar_views(frame)
    agreement = _lidar_agreement(elevated, ground, gt)
    assert _passes(agreement), agreement
    # the same checks reject ground truth built with a small error in the pose: 6 deg of yaw, a mirror
    for error in (make_transform(yaw_matrix(np.deg2rad(6.0)), np.zeros(3)), np.diag([1.0, -1.0, 1.0, 1.0])):
        wrong = build_map_instances(frame.map_elements, error @ invert_transform(frame.lidar2global), config)
        assert not _passes(_lidar_agreement(elevated, ground, wrong)), _lidar_agreement(elevated, ground, wrong)
    from perception.visualization.map_draw import render_map_comparison

    out = render_map_comparison(tmp_path / "overlay.png", gt, points=frame.points, pc_range=config.pc_range)
    assert out.stat().st_size > 20_000
