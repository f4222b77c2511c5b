"""Two gloo processes on CPU evaluate like one: rank maps merged after a pass equal the
single-process map, and the next pass gives the same per-frame outputs (max and probabilistic)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from perception.models.map.hrmap_distributed import merge_across_ranks
from perception.models.map.hrmap_prior import HRMapPrior
from perception.structures.det_sample import DetSample
from perception.structures.geometry import make_transform, yaw_matrix
from perception.structures.map_instances import MapInstances

CLASSES = ("divider", "ped_crossing", "boundary")
FUSIONS = ("max", "probabilistic")
NUM_FRAMES = 7  # odd: the ranks' shards differ in size (a sampler without padding)


def frame(index: int) -> DetSample:
    """Frame ``index`` of a drive along world +x in one of two locations."""
    location = "north" if index % 3 else "south"
    sample = DetSample(token=f"t{index}", class_names=("car",),
                       lidar2global=make_transform(yaw_matrix(0.1 * index), [8.0 * index, 2.0 * index, 0.0]),
                       gt_boxes=np.zeros((0, 9), np.float32), gt_labels=np.zeros(0, np.int64),
                       metainfo={"location": location})
    return sample


def predict(prior: HRMapPrior, sample: DetSample) -> tuple[float, MapInstances]:
    """A stand-in detector whose output depends on the prior: a summary of the prior-fused
    features and a divider whose score grows with the prior it saw."""
    generator = torch.Generator().manual_seed(int(sample.token[1:]))
    bev = torch.randn(1, 8, 16, 8, generator=generator)
    with torch.no_grad():
        out = prior(bev, [sample], default_refs=torch.full((6, 4, 2), 0.5))
        _, mapped = prior.crops([sample], torch.device("cpu"))
    summary = float(out["bev"].double().sum() + out["query_init"].double().abs().sum())
    offset = float(int(sample.token[1:]) % 4) - 1.5
    points = np.stack([np.linspace(-10, 10, 10), np.full(10, offset * 4.0)], axis=1)[None]
    score = 0.5 + 0.4 * float(mapped.mean() > 0)
    return summary, MapInstances(points, np.array([int(sample.token[1:]) % 3]), CLASSES, np.array([False]),
                                 np.array([score]))


def evaluate(rank: int, world: int, fusion: str) -> dict:
    """Two passes over this rank's shard; returns every rank's outputs and the final maps."""
    torch.manual_seed(0)
    prior = HRMapPrior(class_names=CLASSES, bev_channels=8, map_range=(-15.0, -30.0, 15.0, 30.0),
                       resolution=0.5, global_map=dict(fusion=fusion, tile_cells=32, increment=60, decay=20),
                       aggregation=dict(prior_embed=4), query_init=dict(embed_dims=16, num_queries=6,
                                                                        num_points=4, max_queries=3))
    torch.nn.init.normal_(prior.aggregation.fuse[-1].weight)  # make the fused features see the prior
    prior.eval()
    passes = []
    for _ in range(2):
        outputs = {}
        for index in range(rank, NUM_FRAMES, world):
            sample = frame(index)
            outputs[sample.token], sample.pred_map = predict(prior, sample)
            prior.update([sample])
        merge_across_ranks(prior.global_map)
        prior.global_map.commit()
        passes.append(outputs)
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, passes)
        passes = [{k: v for p in gathered for k, v in p[i].items()} for i in range(2)]
    maps = {name: (r.tile_origin, r.base.copy()) for name, r in prior.global_map.locations.items()}
    return {"passes": passes, "maps": maps}


def _worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        results = {fusion: evaluate(rank, world, fusion) for fusion in FUSIONS}
        with open(f"{out}.{rank}", "wb") as stream:
            pickle.dump(results, stream)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    out = tmp_path / "results.pkl"
    mp.start_processes(_worker, args=(2, str(tmp_path / "rendezvous"), str(out)), nprocs=2, join=True,
                       start_method="fork")
    torch.set_num_threads(1)
    for fusion in FUSIONS:
        single = evaluate(0, 1, fusion)
        for rank in (0, 1):
            with open(f"{out}.{rank}", "rb") as stream:
                multi = pickle.load(stream)[fusion]
            assert sorted(multi["passes"][1]) == [f"t{i}" for i in range(NUM_FRAMES)]
            for first_or_second in (0, 1):
                assert multi["passes"][first_or_second] == single["passes"][first_or_second], (fusion, rank)
            assert multi["maps"].keys() == single["maps"].keys() == {"north", "south"}
            for name, (origin, base) in single["maps"].items():
                assert multi["maps"][name][0] == origin
                np.testing.assert_array_equal(multi["maps"][name][1], base)
        # the second pass saw the first pass's map: its outputs differ from the first pass
        assert single["passes"][0] != single["passes"][1]
        assert all(base.max() > 0 for _, base in single["maps"].values())


def test_merge_across_ranks_is_a_no_op_in_one_process() -> None:
    from perception.models.map.hrmap_global_map import GlobalRasterMap

    gmap = GlobalRasterMap(num_classes=3)
    assert merge_across_ranks(gmap) is gmap and not gmap.locations
