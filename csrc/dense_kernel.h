// Fused VSML dense-layer tick: interface shared by the per-ISA kernels (dense_*.cc) and the XLA
// FFI handlers (ffi.cc). See dense_impl.h for the algorithm and docs/benchmarks.md for an overview.
#pragma once

#include <cstdint>

namespace vsml {

// One work unit of the forward pass: one (group, batch element) and the inputs a in [a0, a1),
// i.e. the cells a*B + b for those a and every b (consecutive in memory).
//
// Core mode (m == 0): R = n channels; red_a[a] = sum_b h_ab (rows a0..a1 written),
// red_b[b] = sum_{a in [a0, a1)} h_ab (this unit's partial sum, written).
// Cell-norm mode (m > 0): R = m; per cell msg = h_ab @ whead + bhead (2m channels: forward head
// then backward head), each half layer-normalised (no affine); red_b[b] sums the forward halves,
// red_a[a] the backward halves.
struct FwdUnit {
  int64_t a, b, n, m, ticks;   // A inputs, B outputs, state size N, head channels M (0: core)
  const float* wh;             // [N, 4N]
  const float* u;              // [A, 4N]   fwd_in @ wx[:M]
  const float* v;              // [B, 4N]   bwd_in @ wx[M:] + bias
  const float* h;              // [A*B, N]
  const float* c;              // [A*B, N]
  const float* whead;          // [N, 2M] (cell-norm mode)
  const float* bhead;          // [2M]
  float* h_out;                // [A*B, N]
  float* c_out;                // [A*B, N]
  float* red_a;                // [A, R]
  float* red_b;                // [B, R] partial of this unit
  int64_t a0, a1;
  float* scratch;              // fwd_scratch_floats(m, b, a1 - a0) floats, private to the unit
};

// One work unit of the backward pass (same split). Inputs as FwdUnit plus the cotangents; whT is
// wh transposed ([4N, N]). Outputs: dh, dc ([A*B, N], rows of this unit), du (rows a0..a1,
// written), and this unit's partial sums dv [B, 4N], dwh [N, 4N], dwhead [N, 2M], dbhead [2M].
struct BwdUnit {
  int64_t a, b, n, m, ticks;
  const float* wh;
  const float* whT;
  const float* u;
  const float* v;
  const float* h;
  const float* c;
  const float* whead;
  const float* bhead;
  const float* dh_out;         // [A*B, N]
  const float* dc_out;         // [A*B, N]
  const float* dred_a;         // [A, R]
  const float* dred_b;         // [B, R]
  float* dh;                   // [A*B, N]
  float* dc;                   // [A*B, N]
  float* du;                   // [A, 4N]
  float* dv;                   // [B, 4N] partial
  float* dwh;                  // [N, 4N] partial
  float* dwhead;               // [N, 2M] partial
  float* dbhead;               // [2M] partial
  int64_t a0, a1;
  float* scratch;              // bwd_scratch_floats(n, m, ticks, b, a1 - a0) floats, private to the unit
};

int64_t fwd_scratch_floats(int64_t m, int64_t b, int64_t na);
int64_t bwd_scratch_floats(int64_t n, int64_t m, int64_t ticks, int64_t b, int64_t na);

// A kernel set compiled for one instruction set. `supports(n)` says whether it handles state
// size n (the SIMD width must divide n, except for the scalar set).
struct KernelSet {
  const char* name;
  int width;
  void (*fwd)(const FwdUnit&);
  void (*bwd)(const BwdUnit&);
  // Elementwise approximations, for tests: kind 0 = sigmoid, 1 = tanh.
  void (*eval)(int kind, int64_t count, const float* x, float* y);
};

namespace avx512 { const KernelSet* kernels(int64_t n); }
namespace avx2 { const KernelSet* kernels(int64_t n); }
namespace generic { const KernelSet* kernels(int64_t n); }
namespace scalar { const KernelSet* kernels(int64_t n); }

}  // namespace vsml
