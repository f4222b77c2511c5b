// Open-addressing hash table of packed sparse-voxel keys (int64 key -> int32 row).
//
// Keys follow perception_ops/sparse/coords.py: bit 63 = 0, batch in bits 48..62 and
// z / y / x in 16 bits each.  Capacity is a power of two >= 4 * N (load factor <= 0.25) with
// linear probing after a murmur3 finaliser.  A slot holds only the int32 row (-1 = empty) and
// keys are compared through the per-row key array: the slots of one LiDAR frame (~512 KiB)
// stay in L2, and most neighbour queries miss, ending at an empty slot without a key read.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace perception_ops {

// Pack in-range (batch, z, y, x) into the int64 key of coords.py.
inline int64_t pack_key(int64_t b, int64_t z, int64_t y, int64_t x) {
  return (b << 48) | (z << 32) | (y << 16) | x;
}

// murmur3 fmix64: spreads the structured key bits over the whole word.
inline uint64_t mix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

class CoordHashTable {
 public:
  // Empty table over the packed keys of rows 0..N-1 (moved in; nothing inserted yet).
  explicit CoordHashTable(std::vector<int64_t> row_keys) : row_keys_(std::move(row_keys)) {
    const uint64_t n = row_keys_.size();
    uint64_t capacity = 16;
    while (capacity < 4 * n) capacity <<= 1;
    mask_ = capacity - 1;
    slots_.assign(capacity, -1);
  }

  int64_t key(int64_t row) const { return row_keys_[row]; }

  // Insert row under its key.  Safe to call from several threads at once (a slot is claimed
  // with a compare-and-swap).  Returns -1, or the row already stored under the same key.
  int32_t insert(int32_t row) {
    const int64_t key = row_keys_[row];
    uint64_t slot = mix64(static_cast<uint64_t>(key)) & mask_;
    while (true) {
      int32_t seen = __atomic_load_n(&slots_[slot], __ATOMIC_RELAXED);
      if (seen < 0) {
        int32_t expected = -1;
        if (__atomic_compare_exchange_n(&slots_[slot], &expected, row, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
          return -1;
        }
        seen = expected;  // another thread claimed the slot first: look at its row
      }
      if (row_keys_[seen] == key) return seen;
      slot = (slot + 1) & mask_;
    }
  }

  // Row stored under key, or -1.  Only call once all inserts have finished.
  int32_t find(int64_t key) const {
    uint64_t slot = mix64(static_cast<uint64_t>(key)) & mask_;
    while (true) {
      const int32_t row = slots_[slot];
      if (row < 0 || row_keys_[row] == key) return row;
      slot = (slot + 1) & mask_;
    }
  }

 private:
  std::vector<int64_t> row_keys_;  // packed key of every row
  std::vector<int32_t> slots_;     // row index or -1 (empty)
  uint64_t mask_ = 0;
};

}  // namespace perception_ops
