// sasrec.engines._scoring_kernel: the compiled scoring kernel of the "compiled" engine.
//
// One call encodes a batch of histories (the last position's hidden state:
// every block over the history's real positions, the last block for the last
// position only), scores the item table, applies the exclusions and returns
// the top-k; the same arithmetic and the same contract as
// sasrec.engines.numpy_sasrec.NumpySASRec.top_k, on the weights NumPySASRec
// already folded (attention scale and pre-LN gamma/beta in the projections).
// Where NumPy pays about a microsecond per call for ~100 tiny calls, this is
// straight loops; the GIL is released while it computes.
//
// Build: setup.py's optional extension (pip install, make kernel; plain -O3 for the x86-64 baseline;
// the hot loops are cloned for AVX2+FMA and AVX-512 and picked at load time
// by the CPU's features, so one build runs on any x86-64 machine).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SASREC_NO_CLONES)
// Runtime dispatch (GNU ifunc): one copy per instruction set, chosen once at load.
#define SASREC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SASREC_CLONES
#endif

namespace {

// Columns of the item table per scoring tile: d x 128 floats (25.6 KB at
// d = 50) stay in L1 while every row of the batch is scored against them.
constexpr int kTile = 128;
// Up to this k the top-k is a threshold scan with a sorted insert; above it,
// a partial sort of the eligible scores.
constexpr int kScanMaxK = 64;
// Score buffers up to this many floats (64 MiB) are kept for the next call.
constexpr std::size_t kKeptScoreFloats = std::size_t{16} << 20;
// Floats of slack after each dense layer's arrays (one vector).
constexpr int kSlack = 16;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Dense {
  int in = 0, out = 0;
  std::vector<float> kernel;  // (in, out) row-major
  std::vector<float> bias;    // (out,) or empty
};

struct Norm {
  std::vector<float> gamma, beta;  // empty: folded into the next projection
  float epsilon = 1e-6f;
};

struct Block {
  Dense qkv, output, inner, ffn_output;
  Norm attention_norm, feed_forward_norm;
};

std::vector<float> floats(const py::handle& value, const char* what, py::ssize_t rows,
                          py::ssize_t cols) {
  if (value.is_none()) return {};
  auto array = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(value);
  if (!array) throw std::invalid_argument(std::string(what) + ": not a float array");
  const bool ok = cols < 0 ? (array.ndim() == 1 && array.shape(0) == rows)
                           : (array.ndim() == 2 && array.shape(0) == rows && array.shape(1) == cols);
  if (!ok) {
    throw std::invalid_argument(std::string(what) + ": expected shape (" + std::to_string(rows) +
                                (cols < 0 ? "" : ", " + std::to_string(cols)) + ")");
  }
  return std::vector<float>(array.data(), array.data() + array.size());
}

Dense dense(const py::dict& block, const char* name, int in, int out) {
  py::tuple pair = block[name];
  Dense layer;
  layer.in = in;
  layer.out = out;
  layer.kernel = floats(pair[0], name, in, out);
  layer.bias = floats(pair[1], name, out, -1);
  // Slack for dense_chunk's whole-vector loads past the last column.
  layer.kernel.resize(layer.kernel.size() + kSlack, 0.0f);
  if (!layer.bias.empty()) layer.bias.resize(layer.bias.size() + kSlack, 0.0f);
  return layer;
}

Norm norm(const py::handle& value, const char* what, int d) {
  py::tuple triple = py::reinterpret_borrow<py::tuple>(value);
  Norm n;
  n.gamma = floats(triple[0], what, d, -1);
  n.beta = floats(triple[1], what, d, -1);
  n.epsilon = triple[2].cast<float>();
  return n;
}

// Sixteen floats: GCC lowers it to one zmm, two ymm or four xmm registers,
// whichever the clone's instruction set has.
typedef float Lanes __attribute__((vector_size(64), aligned(4)));
constexpr int kLanes = 16;
static_assert(kTile % kLanes == 0, "a tile is whole vectors");

inline __attribute__((always_inline)) Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// The first n (< kLanes) floats of p, zeros after.
inline __attribute__((always_inline)) Lanes load_head(const float* p, int n) {
  Lanes v = {};
  std::memcpy(&v, p, sizeof(float) * n);
  return v;
}

inline __attribute__((always_inline)) float lane_sum(const Lanes& v) {
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += v[l];
  return sum;
}

// y[r, j0 .. j0 + V * kLanes) of a dense layer, in V register accumulators.
// Weight and bias loads may read up to kLanes - 1 floats past column `out`
// (the arrays carry that slack); those lanes are never stored.
template <int V>
inline __attribute__((always_inline)) void dense_chunk(const float* xr, int in, const float* w,
                                                       int ldw, const float* b, int out, int j0,
                                                       float* yr) {
  Lanes acc[V];
  for (int v = 0; v < V; ++v) acc[v] = b != nullptr ? load(b + j0 + v * kLanes) : Lanes{};
  for (int c = 0; c < in; ++c) {
    const float xv = xr[c];
    const float* wc = w + static_cast<std::ptrdiff_t>(c) * ldw + j0;
    for (int v = 0; v < V; ++v) acc[v] += xv * load(wc + v * kLanes);
  }
  for (int v = 0; v < V; ++v) {
    const int j = j0 + v * kLanes;
    const int n = std::min(kLanes, out - j);
    if (n > 0) std::memcpy(yr + j, &acc[v], sizeof(float) * n);
  }
}

// y[r] = x[r] @ w (+ b) for `rows` rows; w is (in, ldw) row-major, of which
// columns [0, out) are used (callers offset w for a column slice).
SASREC_CLONES
void dense_rows(const float* x, int rows, int ldx, int in, const float* w, int ldw,
                const float* b, int out, float* y, int ldy) {
  constexpr int kWide = 4;  // 64 columns per pass over the inputs
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<std::ptrdiff_t>(r) * ldx;
    float* yr = y + static_cast<std::ptrdiff_t>(r) * ldy;
    int j0 = 0;
    for (; j0 + kWide * kLanes <= out; j0 += kWide * kLanes) {
      dense_chunk<kWide>(xr, in, w, ldw, b, out, j0, yr);
    }
    for (; j0 < out; j0 += kLanes) dense_chunk<1>(xr, in, w, ldw, b, out, j0, yr);
  }
}

// a . b over n floats, in vector partial sums.
SASREC_CLONES
float dot(const float* a, const float* b, int n) {
  Lanes acc = {};
  int c = 0;
  for (; c + kLanes <= n; c += kLanes) acc += load(a + c) * load(b + c);
  if (c < n) acc += load_head(a + c, n - c) * load_head(b + c, n - c);
  return lane_sum(acc);
}

// S[b, t * kTile + j] = H[b] . table[t * kTile + j] for rows b0..b0+R, over
// the tile's columns in chunks of V vectors: R x V accumulators stay in
// registers and each loaded table vector serves R rows.
template <int R, int V>
inline __attribute__((always_inline)) void score_chunk(const float* hidden, int b0, int d,
                                                       const float* tile, float* scores,
                                                       std::ptrdiff_t ld_scores, int column) {
  Lanes acc[R][V] = {};
  for (int c = 0; c < d; ++c) {
    const float* row = tile + static_cast<std::ptrdiff_t>(c) * kTile;
    for (int v = 0; v < V; ++v) {
      Lanes w;
      std::memcpy(&w, row + v * kLanes, sizeof(w));
      for (int r = 0; r < R; ++r) acc[r][v] += hidden[static_cast<std::ptrdiff_t>(b0 + r) * d + c] * w;
    }
  }
  for (int r = 0; r < R; ++r) {
    float* out = scores + (b0 + r) * ld_scores + column;
    for (int v = 0; v < V; ++v) std::memcpy(out + v * kLanes, &acc[r][v], sizeof(Lanes));
  }
}

// Every tile against every row: R rows at a time, then one at a time.
template <int R, int V>
inline __attribute__((always_inline)) void score_all(const float* hidden, int batch, int d,
                                                     const float* tiles, int num_tiles,
                                                     float* scores, std::ptrdiff_t ld_scores) {
  static_assert(kTile % (V * kLanes) == 0, "a tile is whole chunks");
  for (int t = 0; t < num_tiles; ++t) {
    const float* tile = tiles + static_cast<std::ptrdiff_t>(t) * d * kTile;
    for (int column = 0; column < kTile; column += V * kLanes) {
      const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(t) * kTile + column;
      int b = 0;
      for (; b + R <= batch; b += R) score_chunk<R, V>(hidden, b, d, tile + column, scores, ld_scores, at);
      for (; b < batch; ++b) score_chunk<1, V>(hidden, b, d, tile + column, scores, ld_scores, at);
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SASREC_NO_CLONES)
// Explicit copies per instruction set, each with the register blocking its
// register file holds (AVX-512: 32 zmm; AVX2: 16 ymm), picked once by CPUID.
__attribute__((target("arch=x86-64-v4"))) void score_tiles_v4(const float* h, int batch, int d,
                                                              const float* tiles, int num_tiles,
                                                              float* s, std::ptrdiff_t ld) {
  score_all<4, 4>(h, batch, d, tiles, num_tiles, s, ld);  // 16 zmm accumulators
}
__attribute__((target("arch=x86-64-v3"))) void score_tiles_v3(const float* h, int batch, int d,
                                                              const float* tiles, int num_tiles,
                                                              float* s, std::ptrdiff_t ld) {
  score_all<2, 2>(h, batch, d, tiles, num_tiles, s, ld);  // 8 ymm accumulators
}
#endif
void score_tiles_baseline(const float* h, int batch, int d, const float* tiles, int num_tiles,
                          float* s, std::ptrdiff_t ld) {
  score_all<1, 2>(h, batch, d, tiles, num_tiles, s, ld);  // 8 xmm accumulators
}

using ScoreTiles = void (*)(const float*, int, int, const float*, int, float*, std::ptrdiff_t);

ScoreTiles pick_score_tiles() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SASREC_NO_CLONES)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return score_tiles_v4;
  if (__builtin_cpu_supports("x86-64-v3")) return score_tiles_v3;
#endif
  return score_tiles_baseline;
}

const ScoreTiles score_tiles = pick_score_tiles();

// The largest of values[0..n) (-inf for none; NaN never wins). Explicit
// vectors: without -ffast-math GCC keeps a float max reduction scalar.
SASREC_CLONES
float max_of(const float* values, int n) {
  float best = kNegInf;
  int j = 0;
  if (n >= kLanes) {
    Lanes most;
    std::memcpy(&most, values, sizeof(Lanes));
    for (j = kLanes; j + kLanes <= n; j += kLanes) {
      Lanes v;
      std::memcpy(&v, values + j, sizeof(Lanes));
      most = v > most ? v : most;
    }
    for (int l = 0; l < kLanes; ++l) best = most[l] > best ? most[l] : best;
  }
  for (; j < n; ++j) best = values[j] > best ? values[j] : best;
  return best;
}

// S[b, i] = H[b] . table[i] straight from the row-major (N + 1, d) table: the
// path of tables too large for a second, tiled copy (one dot product per
// item and row, slower than the tiles).
void score_table_rows(const float* hidden, int batch, int d, const float* table, int columns,
                      float* scores, std::ptrdiff_t ld_scores) {
  for (int b = 0; b < batch; ++b) {
    const float* h = hidden + static_cast<std::ptrdiff_t>(b) * d;
    float* out = scores + b * ld_scores;
    for (int i = 0; i < columns; ++i) out[i] = dot(h, table + static_cast<std::ptrdiff_t>(i) * d, d);
  }
}

// LayerNorm of each row in place, as sasrec.engines.numpy_sasrec._layer_norm
// (sums in vector partial sums).
SASREC_CLONES
void layer_norm_rows(float* x, int rows, int d, const float* gamma, const float* beta,
                     float epsilon) {
  const float inv = 1.0f / static_cast<float>(d);
  for (int r = 0; r < rows; ++r) {
    float* xr = x + static_cast<std::ptrdiff_t>(r) * d;
    Lanes acc = {};
    int c = 0;
    for (; c + kLanes <= d; c += kLanes) acc += load(xr + c);
    float sum = lane_sum(acc);
    for (; c < d; ++c) sum += xr[c];
    const float mean = sum * inv;
    for (c = 0; c < d; ++c) xr[c] -= mean;
    const float var = dot(xr, xr, d);
    const float denom = std::sqrt(var * inv + epsilon);
    for (c = 0; c < d; ++c) xr[c] /= denom;
    if (gamma != nullptr) {
      for (c = 0; c < d; ++c) xr[c] = xr[c] * gamma[c] + beta[c];
    }
  }
}

void layer_norm(float* x, int rows, int d, const Norm& n) {
  const bool affine = !n.gamma.empty();
  layer_norm_rows(x, rows, d, affine ? n.gamma.data() : nullptr, affine ? n.beta.data() : nullptr,
                  n.epsilon);
}

class Kernel {
 public:
  Kernel(const py::dict& settings, const py::list& blocks) {
    num_items_ = settings["num_items"].cast<int>();
    max_len_ = settings["max_len"].cast<int>();
    d_ = settings["hidden_dim"].cast<int>();
    heads_ = settings["num_heads"].cast<int>();
    window_ = settings["window"].is_none() ? 0 : settings["window"].cast<int>();
    norm_first_ = settings["norm_first"].cast<bool>();
    scale_ = settings["scale"].cast<float>();
    if (num_items_ < 1 || max_len_ < 1 || d_ < 1 || heads_ < 1 || d_ % heads_ != 0) {
      throw std::invalid_argument("scoring kernel: bad model settings");
    }
    head_dim_ = d_ / heads_;
    const int columns = num_items_ + 1;
    // The (N + 1, d) table is the NumPy engine's array, referenced (not copied):
    // embedding rows are gathered from it, one cache line run per item.
    table_ = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(settings["table"]);
    if (!table_ || table_.ndim() != 2 || table_.shape(0) != columns || table_.shape(1) != d_) {
      throw std::invalid_argument("item table: expected a float32 array of shape (" +
                                  std::to_string(columns) + ", " + std::to_string(d_) + ")");
    }
    table_rows_ = table_.data();
    num_tiles_ = (columns + kTile - 1) / kTile;
    tile_table_ = settings["tile_table"].cast<bool>();
    positions_ = floats(settings["positions"], "position embeddings", max_len_, d_);
    final_norm_ = norm(settings["final_norm"], "final_norm", d_);
    for (const py::handle& value : blocks) {
      py::dict block = py::reinterpret_borrow<py::dict>(value);
      const int ffn = block["ffn_dim"].cast<int>();
      Block b;
      b.qkv = dense(block, "query_key_value", d_, 3 * d_);
      b.output = dense(block, "output", d_, d_);
      b.inner = dense(block, "inner", d_, ffn);
      b.ffn_output = dense(block, "ffn_output", ffn, d_);
      b.attention_norm = norm(block["attention_norm"], "attention_norm", d_);
      b.feed_forward_norm = norm(block["feed_forward_norm"], "feed_forward_norm", d_);
      blocks_.push_back(std::move(b));
    }
    if (blocks_.empty()) throw std::invalid_argument("scoring kernel: no blocks");
  }

  py::tuple top_k(const py::object& histories, int k, const py::object& exclude,
                  const py::object& deny, const py::object& allow) {
    std::vector<std::vector<std::int64_t>> rows;
    const int width = read_histories(histories, &rows);
    const int batch = static_cast<int>(rows.size());
    const int kk = std::max(0, std::min(k, num_items_));
    std::vector<char> excluded = read_flags(exclude, batch);
    std::vector<std::vector<std::int64_t>> denied = read_id_lists(deny, batch, "deny_ids");
    std::vector<char> has_allow;
    std::vector<std::vector<std::int64_t>> allowed =
        read_id_lists(allow, batch, "allow_ids", &has_allow);
    py::array_t<std::int32_t> ids({batch, kk});
    py::array_t<float> scores({batch, kk});
    py::array_t<float> attention({batch, width});
    std::int32_t* ids_out = ids.mutable_data();
    float* scores_out = scores.mutable_data();
    float* attention_out = attention.mutable_data();
    // Built here, under the GIL, by the first call (serialised; the scoring
    // below only reads it): an engine whose top_k never runs (the ann
    // retrieval reads encode only) never pays the memory.
    if (tile_table_ && tiles_.empty()) build_tiles();
    {
      py::gil_scoped_release release;
      std::vector<float> hidden(static_cast<std::size_t>(batch) * d_);
      encode_rows(rows, width, hidden.data(), attention_out);
      const std::ptrdiff_t ld = static_cast<std::ptrdiff_t>(num_tiles_) * kTile;
      // Per thread, reused: a batch's score rows (every cell is written before it is read).
      thread_local std::vector<float> all_scores;
      thread_local std::vector<float> kept;
      thread_local std::vector<std::pair<float, std::int32_t>> pool;
      if (all_scores.size() < static_cast<std::size_t>(batch) * ld) all_scores.resize(batch * ld);
      if (tile_table_) {
        score_tiles(hidden.data(), batch, d_, tiles_.data(), num_tiles_, all_scores.data(), ld);
      } else {
        score_table_rows(hidden.data(), batch, d_, table_rows_, num_items_ + 1, all_scores.data(), ld);
      }
      for (int r = 0; r < batch; ++r) {
        float* row = all_scores.data() + r * ld;
        mask_row(row, rows[r], excluded[r] != 0, denied[r], has_allow[r] != 0, allowed[r], &kept);
        select(row, kk, ids_out + static_cast<std::ptrdiff_t>(r) * kk,
               scores_out + static_cast<std::ptrdiff_t>(r) * kk, &pool);
      }
      // A huge catalogue's rows are not kept between calls.
      if (all_scores.size() > kKeptScoreFloats) std::vector<float>().swap(all_scores);
    }
    return py::make_tuple(ids, scores, attention);
  }

  py::tuple encode(const py::object& histories) {
    std::vector<std::vector<std::int64_t>> rows;
    const int width = read_histories(histories, &rows);
    const int batch = static_cast<int>(rows.size());
    py::array_t<float> hidden({batch, d_});
    py::array_t<float> attention({batch, width});
    float* hidden_out = hidden.mutable_data();
    float* attention_out = attention.mutable_data();
    {
      py::gil_scoped_release release;
      encode_rows(rows, width, hidden_out, attention_out);
    }
    return py::make_tuple(hidden, attention);
  }

 private:
  // Tiled copy of the (N + 1, d) table: tile t holds (d, kTile) contiguous, so
  // a tile is one stream for the scoring loop; padding columns are zeros.
  void build_tiles() {
    const int columns = num_items_ + 1;
    std::vector<float> tiles(static_cast<std::size_t>(num_tiles_) * d_ * kTile, 0.0f);
    for (int i = 0; i < columns; ++i) {
      float* tile = tiles.data() + static_cast<std::ptrdiff_t>(i / kTile) * d_ * kTile;
      const float* row = table_rows_ + static_cast<std::ptrdiff_t>(i) * d_;
      for (int c = 0; c < d_; ++c) tile[c * kTile + i % kTile] = row[c];
    }
    tiles_.swap(tiles);
  }

  // Reads a sequence of 1-D integer arrays; keeps each row's last max_len ids.
  // Returns the attention width: the longest kept row, at least 1.
  int read_histories(const py::object& histories, std::vector<std::vector<std::int64_t>>* rows) const {
    if (!py::isinstance<py::sequence>(histories) || py::isinstance<py::str>(histories)) {
      throw py::type_error("histories must be a sequence of 1-D integer arrays, received " +
                           std::string(py::str(py::type::of(histories).attr("__name__"))));
    }
    py::sequence seq = py::reinterpret_borrow<py::sequence>(histories);
    const py::ssize_t batch = py::len(seq);
    rows->resize(batch);
    int width = 1;
    for (py::ssize_t r = 0; r < batch; ++r) {
      py::array array = py::array::ensure(seq[r]);
      if (!array) {
        throw py::type_error("histories[" + std::to_string(r) + "] is not an array of item ids");
      }
      const char kind = array.dtype().kind();
      if (array.size() > 0 && (array.ndim() != 1 || (kind != 'i' && kind != 'u'))) {
        throw py::type_error("histories[" + std::to_string(r) +
                             "] must be a 1-D integer array of item ids, received dtype " +
                             std::string(py::str(array.dtype())) + " with " +
                             std::to_string(array.ndim()) + " dimension(s)");
      }
      std::vector<std::int64_t>& row = (*rows)[r];
      const py::ssize_t size = array.size();
      if (size == 0) continue;
      const py::ssize_t keep = std::min<py::ssize_t>(size, max_len_);
      if (array.dtype().is(py::dtype::of<std::int32_t>()) && (array.flags() & py::array::c_style)) {
        // The predictor's rows: read in place, no converted copy.
        const auto* data = static_cast<const std::int32_t*>(array.data());
        row.assign(data + size - keep, data + size);
      } else {
        auto ids = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(array);
        const std::int64_t* data = ids.data();
        row.assign(data + size - keep, data + size);
      }
      width = std::max(width, static_cast<int>(keep));
    }
    return width;
  }

  static std::vector<char> read_flags(const py::object& value, int batch) {
    std::vector<char> flags(batch, 0);
    if (PySequence_Check(value.ptr()) && !py::isinstance<py::str>(value)) {
      const Py_ssize_t size = PyObject_Length(value.ptr());
      if (size >= 0) {
        if (size != batch) {
          throw std::invalid_argument("exclude_history has " + std::to_string(size) +
                                      " entries for " + std::to_string(batch) + " histories");
        }
        py::sequence seq = py::reinterpret_borrow<py::sequence>(value);
        for (int r = 0; r < batch; ++r) flags[r] = PyObject_IsTrue(seq[r].ptr()) == 1;
        return flags;
      }
      PyErr_Clear();  // a 0-d array: one flag for every row
    }
    const int truth = PyObject_IsTrue(value.ptr());
    if (truth < 0) throw py::error_already_set();
    std::fill(flags.begin(), flags.end(), static_cast<char>(truth));
    return flags;
  }

  // Per row, the ids of deny_ids / allow_ids (None -> no list; for allow_ids a
  // None row is "no allow list", recorded in present).
  static std::vector<std::vector<std::int64_t>> read_id_lists(const py::object& value, int batch,
                                                              const char* what,
                                                              std::vector<char>* present = nullptr) {
    std::vector<std::vector<std::int64_t>> lists(batch);
    if (present != nullptr) present->assign(batch, 0);
    if (value.is_none()) return lists;
    py::sequence seq = py::reinterpret_borrow<py::sequence>(value);
    if (static_cast<int>(py::len(seq)) != batch) {
      throw std::invalid_argument(std::string(what) + " has " + std::to_string(py::len(seq)) +
                                  " rows for " + std::to_string(batch) + " histories");
    }
    for (int r = 0; r < batch; ++r) {
      py::object item = seq[r];
      if (item.is_none()) continue;  // no ids for this row (allow_ids: no allow list)
      if (present != nullptr) (*present)[r] = 1;
      auto ids = py::array_t<std::int64_t, py::array::forcecast>::ensure(item);
      if (!ids) {
        throw py::type_error(std::string(what) + "[" + std::to_string(r) + "] is not an array of ids");
      }
      lists[r].assign(ids.data(), ids.data() + ids.size());
    }
    return lists;
  }

  bool in_range(std::int64_t id) const { return id > 0 && id <= num_items_; }

  // Item `id`'s embedding row.
  const float* item_row(std::int64_t id) const { return table_rows_ + id * d_; }

  void encode_rows(const std::vector<std::vector<std::int64_t>>& rows, int width, float* hidden,
                   float* attention) const {
    std::fill(attention, attention + rows.size() * static_cast<std::size_t>(width), 0.0f);
    Scratch s(max_len_, d_, blocks_);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      encode_one(rows[r], hidden + r * d_, attention + r * width + width, &s);
    }
  }

  struct Scratch {
    std::vector<float> x, normed, qkv, context, attended, inner, ffn, weights, head_sum;
    std::vector<int> columns;
    Scratch(int max_len, int d, const std::vector<Block>& blocks) {
      int ffn_dim = d;
      for (const Block& b : blocks) ffn_dim = std::max(ffn_dim, b.inner.out);
      const std::size_t n = static_cast<std::size_t>(max_len);
      x.resize(n * d);
      normed.resize(n * d);
      qkv.resize(n * 3 * d);
      context.resize(n * d);
      attended.resize(n * d);
      inner.resize(n * ffn_dim);
      ffn.resize(n * d);
      weights.resize(n);
      head_sum.resize(n);
      columns.resize(n);
    }
  };

  // One history: hidden state of its last position into hidden[0..d), the last
  // block's head-averaged attention right-aligned ending at attention_end.
  void encode_one(const std::vector<std::int64_t>& ids, float* hidden, float* attention_end,
                  Scratch* s) const {
    const int length = static_cast<int>(ids.size());
    std::fill(hidden, hidden + d_, 0.0f);
    // A padding last position (or an empty history) has a zero state, as in
    // the NumPy engine; its attention is left at zero.
    if (length == 0 || !in_range(ids[length - 1])) return;
    // Only real positions take part: a padding key is masked for every real
    // query and a padding position's state is zeroed, so leaving them out
    // changes nothing. Columns keep the window's distances.
    int n = 0;
    for (int i = 0; i < length; ++i) {
      if (!in_range(ids[i])) continue;
      float* xr = s->x.data() + static_cast<std::ptrdiff_t>(n) * d_;
      const float* e = item_row(ids[i]);
      const float* p = positions_.data() + static_cast<std::ptrdiff_t>(max_len_ - length + i) * d_;
      for (int c = 0; c < d_; ++c) xr[c] = e[c] * scale_ + p[c];
      s->columns[n++] = i;
    }
    const int last = static_cast<int>(blocks_.size()) - 1;
    for (int index = 0; index <= last; ++index) {
      apply_block(blocks_[index], n, index == last, s,
                  index == last ? attention_end - length : nullptr);
    }
    // With query_last the block left the last position's state in row 0.
    std::memcpy(hidden, s->x.data(), sizeof(float) * d_);
    layer_norm(hidden, 1, d_, final_norm_);
  }

  // The block on s->x (n rows); with query_last only the last row is a query
  // and its new state is written to row 0; attention (the row's columns
  // 0..length) gets the head-averaged weights of that query.
  void apply_block(const Block& b, int n, bool query_last, Scratch* s, float* attention) const {
    const int d = d_;
    const int queries = query_last ? 1 : n;
    const int first_query = n - queries;
    const float* source = s->x.data();
    if (norm_first_) {
      std::memcpy(s->normed.data(), s->x.data(), sizeof(float) * n * d);
      layer_norm(s->normed.data(), n, d, b.attention_norm);
      source = s->normed.data();
    }
    // Queries, keys and values in one (n, 3d) buffer; with query_last only the
    // last row's query is computed.
    const float* bias = b.qkv.bias.empty() ? nullptr : b.qkv.bias.data();
    float* qkv = s->qkv.data();
    if (query_last) {
      dense_rows(source + static_cast<std::ptrdiff_t>(n - 1) * d, 1, d, d, b.qkv.kernel.data(),
                 3 * d, bias, d, qkv + static_cast<std::ptrdiff_t>(n - 1) * 3 * d, 3 * d);
      dense_rows(source, n, d, d, b.qkv.kernel.data() + d, 3 * d, bias ? bias + d : nullptr, 2 * d,
                 qkv + d, 3 * d);
    } else {
      dense_rows(source, n, d, d, b.qkv.kernel.data(), 3 * d, bias, 3 * d, qkv, 3 * d);
    }
    const int hd = head_dim_;
    if (attention != nullptr) std::fill(s->head_sum.begin(), s->head_sum.begin() + n, 0.0f);
    for (int qi = first_query; qi < n; ++qi) {
      const float* q = qkv + static_cast<std::ptrdiff_t>(qi) * 3 * d;
      // Keys: causal (ki <= qi) and, with a window, column distance < window.
      int first_key = 0;
      if (window_ > 0) {
        while (first_key < qi && s->columns[first_key] <= s->columns[qi] - window_) ++first_key;
      }
      float* ctx = s->context.data() + static_cast<std::ptrdiff_t>(qi - first_query) * d;
      for (int h = 0; h < heads_; ++h) {
        float* w = s->weights.data();
        float top = kNegInf;
        for (int ki = first_key; ki <= qi; ++ki) {
          const float* key = qkv + static_cast<std::ptrdiff_t>(ki) * 3 * d + d + h * hd;
          const float score = dot(q + h * hd, key, hd);
          w[ki] = score;
          top = std::max(top, score);
        }
        float sum = 0.0f;
        for (int ki = first_key; ki <= qi; ++ki) {
          w[ki] = std::exp(w[ki] - top);
          sum += w[ki];
        }
        float* out = ctx + h * hd;
        std::fill(out, out + hd, 0.0f);
        for (int ki = first_key; ki <= qi; ++ki) {
          w[ki] /= sum;
          const float* value = qkv + static_cast<std::ptrdiff_t>(ki) * 3 * d + 2 * d + h * hd;
          for (int c = 0; c < hd; ++c) out[c] += w[ki] * value[c];
        }
        if (attention != nullptr) {
          for (int ki = first_key; ki <= qi; ++ki) s->head_sum[ki] += w[ki];
        }
      }
    }
    if (attention != nullptr) {
      const float inv = 1.0f / static_cast<float>(heads_);
      for (int ki = 0; ki < n; ++ki) attention[s->columns[ki]] = heads_ == 1 ? s->head_sum[ki] : s->head_sum[ki] * inv;
    }
    float* attended = s->attended.data();
    dense_rows(s->context.data(), queries, d, d, b.output.kernel.data(), d,
               b.output.bias.empty() ? nullptr : b.output.bias.data(), d, attended, d);
    // Residual: x' = x[queries] + attended, into rows 0..queries of s->x.
    float* x = s->x.data();
    for (int r = 0; r < queries; ++r) {
      const float* in = x + static_cast<std::ptrdiff_t>(first_query + r) * d;
      float* out = x + static_cast<std::ptrdiff_t>(r) * d;
      const float* a = attended + static_cast<std::ptrdiff_t>(r) * d;
      for (int c = 0; c < d; ++c) out[c] = in[c] + a[c];
    }
    if (norm_first_) {
      std::memcpy(s->normed.data(), x, sizeof(float) * queries * d);
      layer_norm(s->normed.data(), queries, d, b.feed_forward_norm);
      feed_forward(b, s->normed.data(), queries, s);
      for (int i = 0; i < queries * d; ++i) x[i] += s->ffn[i];
    } else {
      layer_norm(x, queries, d, b.attention_norm);
      feed_forward(b, x, queries, s);
      for (int i = 0; i < queries * d; ++i) x[i] += s->ffn[i];
      layer_norm(x, queries, d, b.feed_forward_norm);
    }
  }

  void feed_forward(const Block& b, const float* x, int rows, Scratch* s) const {
    const int f = b.inner.out;
    dense_rows(x, rows, d_, d_, b.inner.kernel.data(), f,
               b.inner.bias.empty() ? nullptr : b.inner.bias.data(), f, s->inner.data(), f);
    for (int i = 0; i < rows * f; ++i) s->inner[i] = std::max(s->inner[i], 0.0f);
    dense_rows(s->inner.data(), rows, f, f, b.ffn_output.kernel.data(), d_,
               b.ffn_output.bias.empty() ? nullptr : b.ffn_output.bias.data(), d_, s->ffn.data(), d_);
  }

  // The NumPy engine's exclusions, in its order: padding, history, deny, allow.
  void mask_row(float* row, const std::vector<std::int64_t>& history, bool exclude,
                const std::vector<std::int64_t>& deny, bool has_allow,
                const std::vector<std::int64_t>& allow, std::vector<float>* kept) const {
    row[0] = kNegInf;
    if (exclude) {
      for (std::int64_t id : history) {
        if (in_range(id)) row[id] = kNegInf;
      }
    }
    for (std::int64_t id : deny) {
      if (in_range(id)) row[id] = kNegInf;
    }
    if (has_allow) {
      kept->clear();
      for (std::int64_t id : allow) kept->push_back(in_range(id) ? row[id] : kNegInf);
      std::fill(row, row + num_items_ + 1, kNegInf);
      for (std::size_t i = 0; i < allow.size(); ++i) {
        if (in_range(allow[i])) row[allow[i]] = (*kept)[i];
      }
      row[0] = kNegInf;
    }
  }

  // Exact top-k of row[1..N]: best first, ties by lower id; slots with no
  // finite score hold id 0 and -inf.
  void select(const float* row, int k, std::int32_t* ids, float* values,
              std::vector<std::pair<float, std::int32_t>>* pool) const {
    std::fill(ids, ids + k, 0);
    std::fill(values, values + k, kNegInf);
    if (k == 0) return;
    const int columns = num_items_ + 1;
    if (k <= kScanMaxK) {
      int count = 0;
      float threshold = kNegInf;  // the k-th best so far (-inf until k are held)
      // Blocks whose maximum cannot enter the top-k are skipped whole: once
      // k are held, almost every block.
      constexpr int kBlock = 64;
      for (int base = 1; base < columns; base += kBlock) {
        const int end = std::min(columns, base + kBlock);
        if (!(max_of(row + base, end - base) > threshold)) continue;
        for (int j = base; j < end; ++j) {
          const float v = row[j];
          if (!(v > threshold)) continue;
          // Insert after every held value >= v (equal scores: lower id first).
          int pos = count < k ? count++ : k - 1;
          while (pos > 0 && values[pos - 1] < v) {
            values[pos] = values[pos - 1];
            ids[pos] = ids[pos - 1];
            --pos;
          }
          values[pos] = v;
          ids[pos] = j;
          if (count == k) threshold = values[k - 1];
        }
      }
      return;
    }
    pool->clear();
    for (int j = 1; j < columns; ++j) {
      if (row[j] > kNegInf) pool->emplace_back(row[j], j);
    }
    auto better = [](const std::pair<float, std::int32_t>& a, const std::pair<float, std::int32_t>& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    const std::size_t take = std::min<std::size_t>(k, pool->size());
    if (take < pool->size()) std::nth_element(pool->begin(), pool->begin() + take, pool->end(), better);
    std::sort(pool->begin(), pool->begin() + take, better);
    for (std::size_t i = 0; i < take; ++i) {
      values[i] = (*pool)[i].first;
      ids[i] = (*pool)[i].second;
    }
  }

  int num_items_ = 0, max_len_ = 0, d_ = 0, heads_ = 1, head_dim_ = 0, window_ = 0, num_tiles_ = 0;
  bool norm_first_ = true;
  bool tile_table_ = true;  // false: score from the (N + 1, d) table itself (no copy)
  float scale_ = 1.0f;
  std::vector<float> tiles_, positions_;
  py::array_t<float> table_;            // keeps the NumPy table alive
  const float* table_rows_ = nullptr;   // its data, read without the GIL
  std::vector<Block> blocks_;
  Norm final_norm_;
};

}  // namespace

PYBIND11_MODULE(_scoring_kernel, m) {
  m.doc() = "The compiled scoring kernel of sasrec.engines.compiled_engine.";
  py::class_<Kernel>(m, "Kernel")
      .def(py::init<const py::dict&, const py::list&>(), py::arg("settings"), py::arg("blocks"))
      .def("top_k", &Kernel::top_k, py::arg("histories"), py::arg("k"),
           py::arg("exclude_history"), py::arg("deny_ids"), py::arg("allow_ids"),
           "(ids int32 (B, k'), scores float32 (B, k'), attention float32 (B, W))")
      .def("encode", &Kernel::encode, py::arg("histories"),
           "(hidden float32 (B, d), attention float32 (B, W))");
}
