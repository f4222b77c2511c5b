"""Fetch-on-demand: gather-multiply-accumulate over bounded chunks of outputs.

TorchSparse++'s fetch-on-demand dataflow never materialises the gathered features of a whole
layer: thread blocks fetch the rows of their pairs, multiply and accumulate straight into
the outputs.  The CPU analogue walks the outputs in chunks holding about ``chunk_size``
pairs (at most ``chunk_size + K - 1``: an output's pairs are never split).  For one chunk it
fetches the input rows of its pairs (one ``index_select`` into a reused scratch buffer),
multiplies them offset by offset into a reused product buffer (``mm(out=)``) and reduces the
products of every output with one ``embedding_bag(mode="sum")`` written to the chunk's output
rows.  No scatter-add and no full-layer buffer: temporary memory is
``O(chunk_size * (C_in + C_out))`` whatever the number of pairs.  The submanifold centre
offset is a plain ``mm`` of the chunk's own rows (no gather).

Precision: matmuls in the input dtype; embedding_bag accumulates bf16/fp16 in float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .views import MapView, as_view, bags, reduce_bags, weight_matrices


@dataclass(frozen=True)
class Chunk:
    """Outputs ``[lo, hi)``: input rows of their pairs, ``(offset, start, n)`` matmul
    segments of the buffer, and the bags reducing buffer rows into the chunk's outputs."""

    lo: int
    hi: int
    gather: Tensor
    segments: tuple[tuple[int, int, int], ...]
    bag_index: Tensor
    bag_offsets: Tensor


def make_chunks(view: MapView, chunk_size: int) -> tuple[Chunk, ...]:
    """Split the outputs into chunks; cached on the view per ``chunk_size``."""
    key = ("fetch_on_demand", chunk_size)
    if key in view.plans:
        return view.plans[key]  # type: ignore[return-value]
    k, centre, dev = view.kernel_volume, view.kernel_volume // 2, view.device
    offset_id = torch.repeat_interleave(torch.arange(k, device=dev),
                                        torch.tensor(view.counts, device=dev))
    keep = (offset_id != centre) | (not view.centre_identity)
    ins, outs, offset_id = view.in_idx[keep], view.out_idx[keep], offset_id[keep]
    per_out = torch.bincount(outs, minlength=view.num_out) + int(view.centre_identity)
    start = torch.cumsum(per_out, 0) - per_out
    chunk_of_out = start // chunk_size
    chunk_of_pair = chunk_of_out[outs]
    order = torch.argsort(chunk_of_pair, stable=True)  # keeps (offset, out) order inside
    ins, outs, offset_id = ins[order], outs[order], offset_id[order]
    pair_ptr = torch.searchsorted(chunk_of_pair[order], torch.arange(
        int(chunk_of_out[-1]) + 2 if view.num_out else 1, device=dev)).tolist()
    out_ptr = torch.searchsorted(chunk_of_out, torch.arange(len(pair_ptr), device=dev)).tolist()
    chunks = []
    for c in range(len(pair_ptr) - 1):
        lo, hi, plo, phi = out_ptr[c], out_ptr[c + 1], pair_ptr[c], pair_ptr[c + 1]
        counts = torch.bincount(offset_id[plo:phi], minlength=k).tolist()
        segments, pos = [], 0
        for j, n in enumerate(counts):
            if n:
                segments.append((j, pos, n))
                pos += n
        local = outs[plo:phi] - lo
        positions = torch.arange(phi - plo, device=dev)
        if view.centre_identity:  # centre products follow the pairs: row pos + r -> lo + r
            rows = torch.arange(hi - lo, device=dev)
            local, positions = torch.cat([local, rows]), torch.cat([positions, pos + rows])
        chunks.append(Chunk(lo, hi, ins[plo:phi], tuple(segments),
                            *bags(local, positions, hi - lo)))
    view.plans[key] = tuple(chunks)
    return view.plans[key]  # type: ignore[return-value]


def fetch_on_demand_forward(features: Tensor, weight: Tensor, kmap,
                            chunk_size: int = 65536) -> Tensor:
    """(num_out, C_out) output of the sparse conv, chunk by chunk (see module doc)."""
    view = as_view(kmap)
    w = weight_matrices(weight)
    c_in, c_out = w.shape[1], w.shape[2]
    chunks = make_chunks(view, chunk_size)
    out = features.new_empty((view.num_out, c_out))
    if not chunks:
        return out
    centre = view.centre_identity
    pairs = max(c.gather.numel() for c in chunks)
    gathered = features.new_empty((pairs, c_in))
    product = features.new_empty((pairs + (max(c.hi - c.lo for c in chunks) if centre else 0),
                                  c_out))
    for c in chunks:
        n = c.gather.numel()
        torch.index_select(features, 0, c.gather, out=gathered[:n])
        for j, s, m in c.segments:
            torch.mm(gathered[s:s + m], w[j], out=product[s:s + m])
        if centre:
            torch.mm(features[c.lo:c.hi], w[view.kernel_volume // 2],
                     out=product[n:n + c.hi - c.lo])
        out[c.lo:c.hi] = reduce_bags(product[:n + (c.hi - c.lo if centre else 0)],
                                     c.bag_index, c.bag_offsets)
    return out
