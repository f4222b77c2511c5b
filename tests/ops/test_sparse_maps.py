"""Dense neighbour maps and the mask order agree with the CSR kernel map."""
from __future__ import annotations

import torch

from perception_ops.sparse.kernel_map import build_conv_map, build_subm_map
from perception_ops.sparse.maps import in_out_map, mask_order, out_in_map


def _coords(seed: int, count: int, shape: tuple[int, int, int], batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    cells = torch.randperm(batch * shape[0] * shape[1] * shape[2], generator=generator)[:count]
    b, rest = cells // (shape[0] * shape[1] * shape[2]), cells % (shape[0] * shape[1] * shape[2])
    z, rest = rest // (shape[1] * shape[2]), rest % (shape[1] * shape[2])
    y, x = rest // shape[2], rest % shape[2]
    return torch.stack([b, z, y, x], dim=1).to(torch.int32)


def test_out_in_and_in_out_maps_match_pairs() -> None:
    for seed in range(5):
        coords = _coords(seed, 200, (6, 9, 9))
        for kmap in (build_subm_map(coords, (6, 9, 9), 3), build_conv_map(coords, (6, 9, 9), 3, 2, 1)):
            forward, backward = out_in_map(kmap), in_out_map(kmap)
            assert forward.shape == (kmap.num_out, kmap.kernel_volume)
            assert backward.shape == (kmap.num_in, kmap.kernel_volume)
            assert int((forward >= 0).sum()) == len(kmap.in_indices) == int((backward >= 0).sum())
            for j in range(kmap.kernel_volume):
                ins, outs = kmap.pairs(j)
                assert torch.equal(forward[outs.long(), j], ins)
                assert torch.equal(backward[ins.long(), j], outs)
            assert torch.equal(forward >= 0, kmap.masks_as_bool())


def test_mask_order_groups_equal_masks() -> None:
    coords = _coords(7, 300, (5, 8, 8))
    neighbours = out_in_map(build_subm_map(coords, (5, 8, 8), 3))
    order = mask_order(neighbours)
    assert torch.equal(torch.sort(order).values, torch.arange(len(neighbours)))
    masks = [tuple((neighbours[o] >= 0).tolist()) for o in order.tolist()]
    assert masks == sorted(masks, reverse=True)  # descending lexicographic = descending bitmask


def test_mask_order_wide_kernel_and_empty() -> None:
    coords = _coords(3, 120, (7, 7, 7), batch=1)
    neighbours = out_in_map(build_subm_map(coords, (7, 7, 7), 5))  # K = 125 > 62 bits
    order = mask_order(neighbours)
    masks = [tuple((neighbours[o] >= 0).tolist()) for o in order.tolist()]
    assert masks == sorted(masks, reverse=True)
    assert mask_order(torch.empty(0, 27, dtype=torch.int32)).numel() == 0
