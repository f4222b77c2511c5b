// Sort-merge neighbour search of submanifold kernel maps (see kernel_map_sorted.h).
#include "kernel_map_sorted.h"

#include <algorithm>

#include "coord_hash.h"
#include "radix_sort.h"

namespace perception_ops {
namespace {

constexpr int64_t kChunk = 4096;  // sorted positions per work item (cursors restart per item)
constexpr int64_t kFieldMask = 0xFFFF;

// One line offset (dz, dy): taps (a, b, *) of the kernel, offsets base_j .. base_j + kw - 1.
struct Line {
  int64_t dz, dy, base_j;
  bool centre;  // the (0, 0) line: only its taps with dx < 0 come before the centre offset
};

}  // namespace

bool sort_keys(const int32_t* c, int64_t n, SortedKeys& out) {
  out.keys.resize(n);
  out.rows.resize(n);
  bool sorted = true;
  for (int64_t r = 0; r < n; ++r) {
    out.keys[r] = pack_key(c[4 * r], c[4 * r + 1], c[4 * r + 2], c[4 * r + 3]);
    out.rows[r] = static_cast<int32_t>(r);
    sorted = sorted && (r == 0 || out.keys[r] > out.keys[r - 1]);
  }
  if (!sorted) {
    std::vector<int64_t> payload(out.rows.begin(), out.rows.end());
    radix_sort_pairs(out.keys, payload);
    for (int64_t r = 0; r < n; ++r) out.rows[r] = static_cast<int32_t>(payload[r]);
  }
  for (int64_t r = 1; r < n; ++r) {
    if (out.keys[r] == out.keys[r - 1]) return false;
  }
  return true;
}

void subm_neighbours_sorted(const SortedKeys& sorted, const int32_t* c,
                            const std::vector<int64_t>& shape, const std::vector<int64_t>& k,
                            const std::vector<int64_t>& d, int num_threads, int32_t* nbr) {
  const int64_t n = static_cast<int64_t>(sorted.keys.size());
  const int64_t kh = k[1], kw = k[2], K = k[0] * kh * kw, centre = K / 2;
  const int64_t reach = (kw / 2) * d[2];
  // Lines up to the centre line: their taps are the offsets j < centre (and the mirrors
  // K - 1 - j are filled from the same hits); j = centre is the identity.
  std::vector<Line> lines;
  for (int64_t a = 0; a < k[0]; ++a) {
    for (int64_t b = 0; b < kh; ++b) {
      const int64_t line = a * kh + b, centre_line = (k[0] / 2) * kh + kh / 2;
      if (line > centre_line) continue;
      lines.push_back({(a - k[0] / 2) * d[0], (b - kh / 2) * d[1], line * kw,
                       line == centre_line});
    }
  }
  const int64_t num_lines = static_cast<int64_t>(lines.size());
  const int64_t* keys = sorted.keys.data();
  const int32_t* rows = sorted.rows.data();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  // Each (row, offset) entry has one writer: the row for j <= centre, its mirror otherwise.
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 1) if (chunks > 1)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    std::vector<int64_t> cursor(num_lines, -1);  // per line: first key >= the last query
    for (int64_t q = ch * kChunk; q < std::min(n, (ch + 1) * kChunk); ++q) {
      const int32_t o = rows[q];
      const int32_t* v = c + 4 * static_cast<int64_t>(o);
      nbr[o * K + centre] = o;
      for (int64_t l = 0; l < num_lines; ++l) {
        const Line& line = lines[l];
        const int64_t z = v[1] + line.dz, y = v[2] + line.dy;
        if (z < 0 || z >= shape[0] || y < 0 || y >= shape[1]) continue;
        const int64_t x_lo = std::max<int64_t>(v[3] - reach, 0);
        const int64_t x_hi = line.centre ? v[3] - 1 : std::min(v[3] + reach, shape[2] - 1);
        if (x_hi < x_lo) continue;
        const int64_t first = pack_key(v[0], z, y, x_lo), last = pack_key(v[0], z, y, x_hi);
        int64_t p = cursor[l];
        if (p < 0) p = std::lower_bound(keys, keys + n, first) - keys;  // queries only grow
        while (p < n && keys[p] < first) ++p;
        cursor[l] = p;
        for (; p < n && keys[p] <= last; ++p) {
          const int64_t dx = (keys[p] & kFieldMask) - v[3];
          if (dx % d[2] != 0) continue;
          const int64_t j = line.base_j + dx / d[2] + kw / 2;
          const int32_t i = rows[p];
          nbr[o * K + j] = i;
          nbr[static_cast<int64_t>(i) * K + (K - 1 - j)] = o;
        }
      }
    }
  }
}

}  // namespace perception_ops
