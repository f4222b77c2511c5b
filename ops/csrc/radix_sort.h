// LSD radix sort of packed voxel keys (used to sort the outputs of strided conv maps).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace perception_ops {

// Stable LSD radix sort of non-negative keys with their payloads, 11-bit digits, over the
// low bits that differ between keys only (typically 4 passes for one LiDAR frame).
inline void radix_sort_pairs(std::vector<int64_t>& keys, std::vector<int64_t>& values) {
  const size_t n = keys.size();
  if (n < 2) return;
  uint64_t varying = 0;
  for (int64_t k : keys) varying |= static_cast<uint64_t>(k ^ keys[0]);
  if (varying == 0) return;
  const int bits = 64 - __builtin_clzll(varying);
  constexpr int kDigitBits = 11;
  constexpr uint64_t kDigitMask = (uint64_t{1} << kDigitBits) - 1;
  std::vector<int64_t> keys_tmp(n), values_tmp(n);
  std::vector<size_t> start(kDigitMask + 1);
  for (int shift = 0; shift < bits; shift += kDigitBits) {
    std::fill(start.begin(), start.end(), 0);
    for (int64_t k : keys) ++start[(static_cast<uint64_t>(k) >> shift) & kDigitMask];
    size_t sum = 0;
    for (size_t& s : start) {  // exclusive prefix sum: first position of every digit
      const size_t count = s;
      s = sum;
      sum += count;
    }
    for (size_t idx = 0; idx < n; ++idx) {
      const size_t pos = start[(static_cast<uint64_t>(keys[idx]) >> shift) & kDigitMask]++;
      keys_tmp[pos] = keys[idx];
      values_tmp[pos] = values[idx];
    }
    keys.swap(keys_tmp);
    values.swap(values_tmp);
  }
}

}  // namespace perception_ops
