// Sort-merge neighbour search of submanifold kernel maps (ops/csrc/kernel_map_sorted.cpp).
//
// Voxels sorted by packed key (batch, z, y, x) lie line by line: the neighbours of voxel o on
// the line (batch, z + dz, y + dy) with x in [x - reach, x + reach] are one contiguous run of
// the sorted keys, and the start of that run only moves forward as o advances.  So one
// forward-moving cursor per line offset (dz, dy) finds every neighbour with sequential reads:
// no hash table, no random probes.  Rows of a frame usually arrive sorted (voxelizers and
// strided convs emit sorted coordinates); other orders are radix-sorted first.
#pragma once

#include <cstdint>
#include <vector>

namespace perception_ops {

// Packed keys of all rows in ascending order and the row holding each.
struct SortedKeys {
  std::vector<int64_t> keys;
  std::vector<int32_t> rows;
};

// Sorted keys of the contiguous (N, 4) int32 coords (already range-checked); a radix sort only
// when the rows are not in key order.  Returns false when two rows share a key.
bool sort_keys(const int32_t* coords, int64_t n, SortedKeys& out);

// Fill the (N, K) neighbour table nbr (pre-filled with -1) of a submanifold map with odd
// kernel k and dilation d: nbr[o * K + j] = input row of output o at offset j (C order).
void subm_neighbours_sorted(const SortedKeys& sorted, const int32_t* coords,
                            const std::vector<int64_t>& shape, const std::vector<int64_t>& k,
                            const std::vector<int64_t>& d, int num_threads, int32_t* nbr);

}  // namespace perception_ops
