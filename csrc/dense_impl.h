// Fused VSML dense-layer tick, written once with GCC vector extensions and compiled once per
// instruction set (dense_avx512.cc, dense_avx2.cc, dense_generic.cc, dense_scalar.cc). Include
// this file inside a per-ISA namespace after defining:
//   constexpr int W;                  SIMD lanes (floats per vector)
//   VSML_RCP_ESTIMATE(d)              reciprocal estimate of a vector `vf d` (or 1/d)
//
// Layout. States are the library's [A*B, N] rows (cell a*B + b); a cell's N state entries lie in
// the SIMD lanes (NV = N/W vectors), and its 4N gate pre-activations z = h @ Wh + u[a] + v[b] are
// 4*NV vectors (gate order i, f, g, o). Blocks of PM cells x JB column vectors are processed
// together so that each loaded piece of a row of Wh feeds PM*JB independent FMA chains, with the
// tile sized to the register file (kRegs: 4 cells x 4 vectors for N = 16 on AVX-512, 4 cells x 2
// vectors on AVX2); the scalar h[k] of each cell is broadcast from memory. All micro ticks of a
// group of cells run back to back while their state is in registers / L1, then the group's final
// h is added into the two reductions (sum over b per a, sum over a per b).
//
// Nonlinearities: sigma(x) = 1 / (1 + 2^y), y = -x*log2(e), and tanh(x) = (2^y - 1) / (-2 - (2^y - 1))
// with y = -2x*log2(e). 2^y = 2^n * 2^f, n = round(y) (float "magic number" rounding, whose bits
// also hold n), f in [-1/2, 1/2], 2^f = 1 + f*q(f) with the minimax polynomials fitted by
// csrc/fit_approx.py, and 2^n applied by adding n to the exponent bits; y is clamped to
// [-62, 62] (beyond that sigma and tanh are 0/1 or +-1 to float precision). tanh keeps a small
// relative error near 0 because 2^y - 1 is formed as 2^n * (f*q(f)) + (2^n - 1). Reciprocals are
// the hardware estimate refined by one Newton step. In the forward pass the products i*tanh(g)
// and o*tanh(c) share one reciprocal each: i*tanh(g) = (2^yg - 1) / ((1 + 2^yi) * (-2 - (2^yg - 1))).
//
// Backward: each group of cells recomputes its micro ticks from the inputs (keeping gates and
// states of every tick in a small L1 buffer), then walks the ticks backwards: dz from the gate
// derivatives, dh = dz @ Wh^T (lanes over N, dz broadcast from memory), and the pairs
// (h_{t-1}, dz_t) are collected in a chunk that is folded into dWh as one small register-blocked
// matrix product (dWh += H^T DZ) when full. du / dv are the sums of dz over b / a.

#include <cmath>
#include <cstdint>
#include <cstring>

typedef float vf __attribute__((vector_size(4 * W)));
typedef int32_t vi __attribute__((vector_size(4 * W)));

#define VSML_INLINE inline __attribute__((always_inline))

namespace {

constexpr float kLog2e = 1.44269504088896340736f;
constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds |y| < 2^22 to an integer
constexpr float kClamp = 62.0f;
constexpr float kGateOffsetI = -5.0f, kGateOffsetF = 5.0f;
constexpr float kLnEps = 1e-5f;
constexpr int NVMAX = 64;  // dynamic path: N <= 64 * W
constexpr int kChunk = 64;  // (h_{t-1}, dz_t) pairs per dWh update

// Polynomials q of 2^f = 1 + f*q(f) on [-1/2, 1/2], from csrc/fit_approx.py.
// sigma: degree 4, max rel. error of 2^f 1.09e-07.
constexpr float kS1 = 0x1.62e42ap-1f, kS2 = 0x1.ebf9bcp-3f, kS3 = 0x1.c6b754p-5f, kS4 = 0x1.3cea84p-7f,
                kS5 = 0x1.5bb9f4p-10f;
// tanh: degree 5, max rel. error of 2^f - 1 2.1e-08.
constexpr float kT1 = 0x1.62e430p-1f, kT2 = 0x1.ebfbdep-3f, kT3 = 0x1.c6af6ep-5f, kT4 = 0x1.3b2ba0p-7f,
                kT5 = 0x1.5f07b2p-10f, kT6 = 0x1.4308f0p-13f;

VSML_INLINE vf ld(const float* p) {
  vf r;
  std::memcpy(&r, p, sizeof(vf));
  return r;
}
VSML_INLINE void st(float* p, vf x) { std::memcpy(p, &x, sizeof(vf)); }
VSML_INLINE vf bc(float s) { return s - vf{}; }  // broadcast (s - 0 == s, also for -0)

// max / min with x86 semantics (the second operand is returned when either is NaN): clamps keep NaN.
#ifndef VSML_MAX
#define VSML_MAX(a, b) ((a) > (b) ? (a) : (b))
#define VSML_MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

VSML_INLINE vf rcp(vf d) {
  vf r = VSML_RCP_ESTIMATE(d);
  return r + r * (1.0f - d * r);  // one Newton step
}

// Instruction-set hooks (defaults: portable code). VSML_CLAMP(y): y limited to [-62, 62] with NaN
// passing through; VSML_SCALEF(p, n): p * 2^n for integral float n (else exponent-bit arithmetic).
#ifndef VSML_CLAMP
#define VSML_CLAMP(y) VSML_MIN(bc(kClamp), VSML_MAX(bc(-kClamp), (y)))
#endif

// y -> f, n with 2^y = 2^f * 2^n, n = round(y), f in [-1/2, 1/2]; t keeps n in its low mantissa bits.
struct Exp2Split {
  vf f, n, t;
};
VSML_INLINE Exp2Split exp2_split(vf y) {
  y = VSML_CLAMP(y);
  Exp2Split e;
  e.t = y + kMagic;
  e.n = e.t - kMagic;
  e.f = y - e.n;
  return e;
}
VSML_INLINE vf scale2n(vf p, const Exp2Split& e) {  // p * 2^n
#ifdef VSML_SCALEF
  return VSML_SCALEF(p, e.n);
#else
  return (vf)((vi)p + (((vi)e.t) << 23));  // t's low bits hold n (two's complement)
#endif
}

// 1 + 2^y: the denominator of a sigmoid.
VSML_INLINE vf exp2p1(vf y) {
  const Exp2Split e = exp2_split(y);
  const vf f = e.f;
  vf q = bc(kS5);
  q = q * f + kS4;
  q = q * f + kS3;
  q = q * f + kS2;
  q = q * f + kS1;
  return scale2n(q * f + 1.0f, e) + 1.0f;
}

// 2^y - 1 with y = -2x*log2(e); tanh(x) = em1 / (-2 - em1).
VSML_INLINE vf tanh_em1(vf x) {
  const Exp2Split e = exp2_split(x * (-2.0f * kLog2e));
  const vf f = e.f;
  vf q = bc(kT6);
  q = q * f + kT5;
  q = q * f + kT4;
  q = q * f + kT3;
  q = q * f + kT2;
  q = q * f + kT1;
  const vf s = scale2n(bc(1.0f), e);  // 2^n
  return s * (q * f) + (s - 1.0f);
}

// sigma(z + offset) = 1 / (1 + 2^y), y = -(z + offset)*log2(e)
VSML_INLINE vf den_i(vf z) { return exp2p1(z * -kLog2e + kGateOffsetI * -kLog2e); }
VSML_INLINE vf den_f(vf z) { return exp2p1(z * -kLog2e + kGateOffsetF * -kLog2e); }
VSML_INLINE vf den_o(vf z) { return exp2p1(z * -kLog2e); }

VSML_INLINE vf sigmoid(vf x) { return rcp(den_o(x)); }
VSML_INLINE vf tanh_(vf x) {
  vf e = tanh_em1(x);
  return e * rcp(-2.0f - e);
}

// Forward gates of K independent vectors (written stage by stage so that the K dependency
// chains interleave): (z_i, z_f, z_g, z_o, c) -> c' = f*c + i*g, h' = o*tanh(c').
template <int K>
VSML_INLINE void gates_fwd(const vf* zi, const vf* zf, const vf* zg, const vf* zo, vf* c, vf* h) {
  vf di[K], df[K], dO[K], eg[K];
#ifdef VSML_PROFILE_NO_GATES  // profiling builds of csrc/bench_dense.cc only: the cost of everything but the gates
  for (int k = 0; k < K; ++k) c[k] = zi[k] * c[k] + zf[k], h[k] = zg[k] * zo[k];
  return;
#endif
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) di[k] = den_i(zi[k]);
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) eg[k] = tanh_em1(zg[k]);
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) df[k] = den_f(zf[k]);
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) dO[k] = den_o(zo[k]);
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) c[k] = rcp(df[k]) * c[k] + eg[k] * rcp(di[k] * (-2.0f - eg[k]));
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) eg[k] = tanh_em1(c[k]);
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) h[k] = eg[k] * rcp(dO[k] * (-2.0f - eg[k]));
}

// All gate values of K vectors (backward pass): c updated in place.
template <int K>
VSML_INLINE void gates_all(const vf* zi, const vf* zf, const vf* zg, const vf* zo, vf* c, vf* i, vf* f, vf* g, vf* o,
                           vf* tc) {
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) i[k] = rcp(den_i(zi[k]));
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) g[k] = tanh_(zg[k]);
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) f[k] = rcp(den_f(zf[k]));
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) o[k] = rcp(den_o(zo[k]));
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) c[k] = f[k] * c[k] + i[k] * g[k];
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) tc[k] = tanh_(c[k]);
}

// Vector registers of the instruction set (AVX-512: 32; AVX2, SSE2 and NEON: 16). Register tiles
// (accumulators + operands + one broadcast) are sized to fit in them: a tile that does not fit is
// spilled to the stack on every iteration (csrc/bench_dense.cc measured the AVX2 backward pass
// 20-30 % faster once its tiles fit).
constexpr int kRegs = W >= 16 ? 32 : 16;

// Vectors per column block of a register tile with `rows` rows of accumulators over `cols` vectors
// (cols a power of two times 1 or 4*nv): the widest block with rows*jb accumulators + jb operands
// + 1 broadcast <= kRegs.
constexpr int col_block(int rows, int cols) {
  int jb = cols;
  while (jb > 1 && rows * jb + jb + 1 > kRegs) jb /= 2;
  return jb;
}

// Cells per matrix-product block and per group of gate evaluations (>= 8 gate vectors in flight:
// one vector's gate chain is ~170 cycles deep, so fewer leave the FMA ports idle). With 16
// registers (AVX2) and N = 2 vectors, blocks of 4 cells x 2 column vectors (col_block) measured
// 20-25 % faster than 2 cells x 4 columns (csrc/bench_dense.cc, forward and backward).
constexpr int block_cells(int nv) { return nv == 1 ? 4 : nv == 2 ? (kRegs >= 32 ? 2 : 4) : 1; }
constexpr int group_cells(int nv) { return nv == 1 ? 8 : nv == 2 ? 4 : 1; }

// ---------------------------------------------------------------------------------------------
// Cell-norm heads (scalar loops; 2M channels per cell)

struct HeadStats {
  float mean[2], rstd[2];
};

// msg = h @ whead + bhead, then statistics of each half.
inline HeadStats head_msg(const float* h, const float* whead, const float* bhead, int64_t n, int64_t m, float* msg) {
  const int64_t m2 = 2 * m;
  for (int64_t j = 0; j < m2; ++j) msg[j] = bhead[j];
  for (int64_t k = 0; k < n; ++k) {
    const float hk = h[k];
    const float* w = whead + k * m2;
    for (int64_t j = 0; j < m2; ++j) msg[j] += hk * w[j];
  }
  HeadStats s;
  for (int half = 0; half < 2; ++half) {
    const float* x = msg + half * m;
    float mu = 0.0f;
    for (int64_t j = 0; j < m; ++j) mu += x[j];
    mu /= (float)m;
    float var = 0.0f;
    for (int64_t j = 0; j < m; ++j) var += (x[j] - mu) * (x[j] - mu);
    var /= (float)m;
    s.mean[half] = mu;
    s.rstd[half] = 1.0f / std::sqrt(var + kLnEps);
  }
  return s;
}

// Adds the normalised forward half to red_f and the backward half to red_b.
inline void heads_fwd(const float* h, const FwdUnit& x, float* red_f, float* red_bk, float* msg) {
  const int64_t m = x.m;
  HeadStats s = head_msg(h, x.whead, x.bhead, x.n, m, msg);
  for (int64_t j = 0; j < m; ++j) red_f[j] += (msg[j] - s.mean[0]) * s.rstd[0];
  for (int64_t j = 0; j < m; ++j) red_bk[j] += (msg[m + j] - s.mean[1]) * s.rstd[1];
}

// Backward through heads + LayerNorm of one cell: gf, gb = cotangents of its normalised halves.
// Adds to dh [N], dwhead [N, 2M], dbhead [2M]; msg: 4M floats of scratch.
inline void heads_bwd(const float* h, const BwdUnit& x, const float* gf, const float* gb, float* dh, float* msg) {
  const int64_t n = x.n, m = x.m, m2 = 2 * m;
  HeadStats s = head_msg(h, x.whead, x.bhead, n, m, msg);
  float* dx = msg + m2;
  for (int half = 0; half < 2; ++half) {
    const float* g = half ? gb : gf;
    const float* xm = msg + half * m;
    float mg = 0.0f, mgy = 0.0f;
    for (int64_t j = 0; j < m; ++j) {
      const float y = (xm[j] - s.mean[half]) * s.rstd[half];
      mg += g[j];
      mgy += g[j] * y;
    }
    mg /= (float)m;
    mgy /= (float)m;
    for (int64_t j = 0; j < m; ++j) {
      const float y = (xm[j] - s.mean[half]) * s.rstd[half];
      dx[half * m + j] = s.rstd[half] * (g[j] - mg - y * mgy);
    }
  }
  for (int64_t j = 0; j < m2; ++j) x.dbhead[j] += dx[j];
  for (int64_t k = 0; k < n; ++k) {
    const float* w = x.whead + k * m2;
    float* dw = x.dwhead + k * m2;
    const float hk = h[k];
    float acc = 0.0f;
    for (int64_t j = 0; j < m2; ++j) {
      acc += w[j] * dx[j];
      dw[j] += hk * dx[j];
    }
    dh[k] += acc;
  }
}

// ---------------------------------------------------------------------------------------------
// Cell-norm heads, vectorised: a cell's 2M channels are MV2 = 2M/W vectors. Used when each half
// (M channels) is either whole vectors (M % W == 0) or one half of a vector (2M == W, M a power of
// two); otherwise the scalar loops above run.

constexpr int MV2MAX = 512 / W;

inline bool vec_heads(int64_t m) {
  return m > 0 && (2 * m) % W == 0 && (m % W == 0 || (2 * m == W && (m & (m - 1)) == 0));
}

VSML_INLINE vi lane_index() {
  vi r;
  for (int l = 0; l < W; ++l) r[l] = l;
  return r;
}

// Sum over aligned segments of `seg` lanes (a power of two <= W), left in every lane of the segment.
VSML_INLINE vf seg_sum(vf x, int64_t seg) {
  const vi idx = lane_index();
  for (int64_t s = 1; s < seg; s <<= 1) x += __builtin_shuffle(x, idx ^ (int)s);
  return x;
}

#ifndef VSML_SQRT
VSML_INLINE vf vsqrt(vf x) {
  for (int l = 0; l < W; ++l) x[l] = std::sqrt(x[l]);
  return x;
}
#define VSML_SQRT(x) vsqrt(x)
#endif

// msg = h @ whead + bhead (mv2 vectors); y = msg normalised per half; rstd per lane.
VSML_INLINE void head_norm(const float* h, const float* whead, const float* bhead, int64_t n, int64_t m, vf* y,
                           vf* rstd) {
  const int mv2 = (int)(2 * m / W);
  vf msg[MV2MAX], odd[MV2MAX];  // two accumulators per vector: independent FMA chains
  for (int j = 0; j < mv2; ++j) msg[j] = ld(bhead + j * W), odd[j] = vf{};
  int64_t k = 0;
  for (; k + 1 < n; k += 2) {
    const vf h0 = bc(h[k]), h1 = bc(h[k + 1]);
    const float* w = whead + k * 2 * m;
    for (int j = 0; j < mv2; ++j) {
      msg[j] += h0 * ld(w + j * W);
      odd[j] += h1 * ld(w + 2 * m + j * W);
    }
  }
  for (; k < n; ++k)
    for (int j = 0; j < mv2; ++j) msg[j] += bc(h[k]) * ld(whead + k * 2 * m + j * W);
  for (int j = 0; j < mv2; ++j) msg[j] += odd[j];
  const float inv_m = 1.0f / (float)m;
  if (2 * m == W) {  // both halves in one vector
    const vf d = msg[0] - seg_sum(msg[0], m) * inv_m;
    rstd[0] = rcp(VSML_SQRT(seg_sum(d * d, m) * inv_m + kLnEps));
    y[0] = d * rstd[0];
    return;
  }
  const int hv = mv2 / 2;
  for (int half = 0; half < 2; ++half) {
    vf s = msg[half * hv];
    for (int j = 1; j < hv; ++j) s += msg[half * hv + j];
    const vf mean = seg_sum(s, W) * inv_m;
    vf ss = vf{};
    for (int j = 0; j < hv; ++j) {
      y[half * hv + j] = msg[half * hv + j] - mean;
      ss += y[half * hv + j] * y[half * hv + j];
    }
    const vf r = rcp(VSML_SQRT(seg_sum(ss, W) * inv_m + kLnEps));
    for (int j = 0; j < hv; ++j) {
      rstd[half * hv + j] = r;
      y[half * hv + j] *= r;
    }
  }
}

// Adds the cell's normalised messages to 2M-wide rows: red_f2 (forward half used), red_b2 (backward half).
VSML_INLINE void heads_fwd_vec(const float* h, const FwdUnit& x, float* red_f2, float* red_b2) {
  const int mv2 = (int)(2 * x.m / W);
  vf y[MV2MAX], r[MV2MAX];
  head_norm(h, x.whead, x.bhead, x.n, x.m, y, r);
  for (int j = 0; j < mv2; ++j) {
    st(red_f2 + j * W, ld(red_f2 + j * W) + y[j]);
    st(red_b2 + j * W, ld(red_b2 + j * W) + y[j]);
  }
}

// Backward of one cell's heads: g2 = cotangent of its normalised 2M channels. Writes dx (2M) and
// adds whead @ dx to dh (N floats); the caller accumulates dwhead (h x dx) and dbhead (dx).
VSML_INLINE void heads_bwd_vec(const float* h, const BwdUnit& x, const vf* g2, float* dx, const float* wheadT,
                               float* dh) {
  const int64_t m = x.m, n = x.n;
  const int mv2 = (int)(2 * m / W);
  vf y[MV2MAX], r[MV2MAX];
  head_norm(h, x.whead, x.bhead, n, m, y, r);
  const float inv_m = 1.0f / (float)m;
  if (2 * m == W) {
    const vf mg = seg_sum(g2[0], m) * inv_m, mgy = seg_sum(g2[0] * y[0], m) * inv_m;
    st(dx, r[0] * (g2[0] - mg - y[0] * mgy));
  } else {
    const int hv = mv2 / 2;
    for (int half = 0; half < 2; ++half) {
      vf sg = vf{}, sgy = vf{};
      for (int j = 0; j < hv; ++j) {
        sg += g2[half * hv + j];
        sgy += g2[half * hv + j] * y[half * hv + j];
      }
      const vf mg = seg_sum(sg, W) * inv_m, mgy = seg_sum(sgy, W) * inv_m;
      for (int j = 0; j < hv; ++j) {
        const int i = half * hv + j;
        st(dx + i * W, r[i] * (g2[i] - mg - y[i] * mgy));
      }
    }
  }
  // dh += whead @ dx, lanes over N (whead^T rows), when W divides N; else scalar
  if (n % W == 0) {
    const int nv = (int)(n / W);
    for (int q = 0; q < nv; ++q) {
      vf a0 = vf{}, a1 = vf{};
      int64_t j = 0;
      for (; j + 1 < 2 * m; j += 2) {
        a0 += bc(dx[j]) * ld(wheadT + j * n + q * W);
        a1 += bc(dx[j + 1]) * ld(wheadT + (j + 1) * n + q * W);
      }
      for (; j < 2 * m; ++j) a0 += bc(dx[j]) * ld(wheadT + j * n + q * W);
      st(dh + q * W, ld(dh + q * W) + a0 + a1);
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      float acc = 0.0f;
      for (int64_t j = 0; j < 2 * m; ++j) acc += wheadT[j * n + k] * dx[j];
      dh[k] += acc;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forward

// Cell indices of a group: a, b and the rows u[a], v[b].
template <int P>
struct GroupIdx {
  const float* up[P];
  const float* vp[P];
  int64_t ia[P], ib[P];
  VSML_INLINE GroupIdx(const float* u, const float* v, int64_t cell0, int64_t B, int64_t F) {
    int64_t a = cell0 / B, b = cell0 - a * B;  // one division per group
    for (int p = 0; p < P; ++p) {
      ia[p] = a;
      ib[p] = b;
      up[p] = u + a * F;
      vp[p] = v + b * F;
      if (++b == B) b = 0, ++a;
    }
  }
};

// z = h @ wh + u[a] + v[b] for the P cells of a group, PM cells (4*nv*PM accumulators) at a time;
// h[k] of cell p is read at hs[p*hstride + k]. Result: zb[(p*4*nv + j)*W ...].
template <int NV, int P, int PM>
VSML_INLINE void group_matmul(const float* wh, const GroupIdx<P>& g, const float* hs, int64_t hstride, int64_t n,
                              int nv, float* zb) {
  constexpr int JB = col_block(PM, NV > 0 ? 4 * NV : 4);  // 4*nv is a multiple of 4
  const int64_t F = 4 * n;
  for (int s0 = 0; s0 < P; s0 += PM)
    for (int j0 = 0; j0 < 4 * nv; j0 += JB) {
      vf acc[PM][JB];
#pragma GCC unroll 16
      for (int p = 0; p < PM; ++p)
#pragma GCC unroll 16
        for (int j = 0; j < JB; ++j) acc[p][j] = ld(g.up[s0 + p] + (j0 + j) * W) + ld(g.vp[s0 + p] + (j0 + j) * W);
      for (int64_t k = 0; k < n; ++k) {
        const float* wrow = wh + k * F + j0 * W;
        vf w[JB];
#pragma GCC unroll 16
        for (int j = 0; j < JB; ++j) w[j] = ld(wrow + j * W);
#pragma GCC unroll 16
        for (int p = 0; p < PM; ++p) {
          const vf hb = bc(hs[(s0 + p) * hstride + k]);
#pragma GCC unroll 16
          for (int j = 0; j < JB; ++j) acc[p][j] += hb * w[j];
        }
      }
#pragma GCC unroll 16
      for (int p = 0; p < PM; ++p)
#pragma GCC unroll 16
        for (int j = 0; j < JB; ++j) st(zb + ((s0 + p) * 4 * nv + j0 + j) * W, acc[p][j]);
    }
}

// Where a forward unit puts each cell's normalised messages (cell-norm mode).
struct HeadsOut {
  bool vec;     // vectorised heads (vec_heads(m)): 2M-wide partial rows below
  float* rb2;   // [B][2M]      forward halves summed over this unit's a
  float* ra2;   // [a1-a0][2M]  backward halves summed over b
  float* msg;   // scalar path scratch
};

template <int NV, int P>
VSML_INLINE void fwd_group(const FwdUnit& x, int64_t cell0, int nv_dyn, float* zb, const HeadsOut& ho_) {
  constexpr int NVB = NV > 0 ? NV : NVMAX;
  constexpr int PM = P < block_cells(NV) ? P : block_cells(NV);
  const int nv = NV > 0 ? NV : nv_dyn;
  const int64_t n = x.n;
  const GroupIdx<P> g(x.u, x.v, cell0, x.b, 4 * n);
  vf cs[P][NVB];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int q = 0; q < nv; ++q) cs[p][q] = ld(x.c + (cell0 + p) * n + q * W);

  for (int64_t t = 0; t < x.ticks; ++t) {
    group_matmul<NV, P, PM>(x.wh, g, (t == 0 ? x.h : x.h_out) + cell0 * n, n, n, nv, zb);
    if constexpr (NV > 0) {
      constexpr int K = P * NV;
      vf zi[K], zf[K], zg[K], zo[K], c[K], h[K];
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
        for (int q = 0; q < NV; ++q) {
          const float* z = zb + (p * 4 * NV + q) * W;
          zi[p * NV + q] = ld(z);
          zf[p * NV + q] = ld(z + NV * W);
          zg[p * NV + q] = ld(z + 2 * NV * W);
          zo[p * NV + q] = ld(z + 3 * NV * W);
          c[p * NV + q] = cs[p][q];
        }
      gates_fwd<K>(zi, zf, zg, zo, c, h);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
        for (int q = 0; q < NV; ++q) {
          cs[p][q] = c[p * NV + q];
          st(x.h_out + (cell0 + p) * n + q * W, h[p * NV + q]);
        }
    } else {
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < nv; ++q) {
          const float* z = zb + (p * 4 * nv + q) * W;
          const vf zi = ld(z), zf = ld(z + nv * W), zg = ld(z + 2 * nv * W), zo = ld(z + 3 * nv * W);
          vf h;
          gates_fwd<1>(&zi, &zf, &zg, &zo, &cs[p][q], &h);
          st(x.h_out + (cell0 + p) * n + q * W, h);
        }
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    float* ho = x.h_out + (cell0 + p) * n;
#pragma GCC unroll 16
    for (int q = 0; q < nv; ++q) st(x.c_out + (cell0 + p) * n + q * W, cs[p][q]);
    if (x.m == 0) {
      float* ra = x.red_a + g.ia[p] * n;
      float* rb = x.red_b + g.ib[p] * n;
#pragma GCC unroll 16
      for (int q = 0; q < nv; ++q) {
        const vf hv = ld(ho + q * W);
        st(ra + q * W, ld(ra + q * W) + hv);
        st(rb + q * W, ld(rb + q * W) + hv);
      }
    } else {
      if (ho_.vec)
        heads_fwd_vec(ho, x, ho_.rb2 + g.ib[p] * 2 * x.m, ho_.ra2 + (g.ia[p] - x.a0) * 2 * x.m);
      else
        heads_fwd(ho, x, x.red_b + g.ib[p] * x.m, x.red_a + g.ia[p] * x.m, ho_.msg);
    }
  }
}

template <int NV>
void fwd_unit(const FwdUnit& x) {
  constexpr int P = group_cells(NV);
  constexpr int NVB = NV > 0 ? NV : NVMAX;
  const int nv = (int)(x.n / W);
  const int64_t r = x.m ? x.m : x.n, m2 = 2 * x.m, na = x.a1 - x.a0;
  std::memset(x.red_a + x.a0 * r, 0, sizeof(float) * na * r);
  std::memset(x.red_b, 0, sizeof(float) * x.b * r);
  alignas(64) float zb[P * 4 * NVB * W];
  float msg[4 * 256];
  HeadsOut heads{x.m > 0 && vec_heads(x.m), x.scratch, x.scratch + x.b * m2, msg};
  if (heads.vec) std::memset(x.scratch, 0, sizeof(float) * (x.b + na) * m2);
  const int64_t end = x.a1 * x.b;
  int64_t cell = x.a0 * x.b;
  for (; cell + P <= end; cell += P) fwd_group<NV, P>(x, cell, nv, zb, heads);
  for (; cell < end; ++cell) fwd_group<NV, 1>(x, cell, nv, zb, heads);
  if (heads.vec) {  // the used halves of the 2M-wide rows
    for (int64_t b = 0; b < x.b; ++b) std::memcpy(x.red_b + b * x.m, heads.rb2 + b * m2, sizeof(float) * x.m);
    for (int64_t a = 0; a < na; ++a)
      std::memcpy(x.red_a + (x.a0 + a) * x.m, heads.ra2 + a * m2 + x.m, sizeof(float) * x.m);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

constexpr int kMaxGroup = 8;

struct BwdScratch {
  float* hist;    // [T+1][P][N] states h_0..h_T
  float* gates;   // [T][P][6][N]: c_{t-1}, i, f, g, o, tanh(c_t)
  float* hc;      // [kChunk][N]  h_{t-1} of the dWh chunk
  float* dzc;     // [kChunk][4N] dz_t of the dWh chunk
  float* zb;      // [P][4N] pre-activations of a group
  float* msg;     // [4M + N] heads scratch (scalar path)
  // vectorised heads (cell-norm mode)
  float* g2b;     // [B][2M]     cotangent rows: forward half = dred_b[b], backward half 0
  float* g2a;     // [a1-a0][2M] forward half 0, backward half = dred_a[a]
  float* wheadT;  // [2M][N]
  float* hc2;     // [kChunk][N]  h_T of the dwhead chunk
  float* dxc;     // [kChunk][2M] message cotangents of the dwhead chunk
  float* dbh;     // [2M]
  int64_t count, count2;
};

inline BwdScratch carve(float* s, int64_t n, int64_t m, int64_t ticks, int64_t b, int64_t na) {
  BwdScratch r;
  const int64_t m2 = 2 * m;
  r.hist = s;
  s += (ticks + 1) * kMaxGroup * n;
  r.gates = s;
  s += ticks * kMaxGroup * 6 * n;
  r.hc = s;
  s += kChunk * n;
  r.dzc = s;
  s += kChunk * 4 * n;
  r.zb = s;
  s += kMaxGroup * 4 * n;
  r.msg = s;
  s += 4 * m + n;
  r.g2b = s;
  s += b * m2;
  r.g2a = s;
  s += na * m2;
  r.wheadT = s;
  s += m2 * n;
  r.hc2 = s;
  s += kChunk * n;
  r.dxc = s;
  s += kChunk * m2;
  r.dbh = s;
  r.count = r.count2 = 0;
  return r;
}

// dst [K][J] += A^T @ Bm over `count` rows (A: [count][K], Bm: [count][J], J = jv*W), 4x4 register tiles.
inline void outer_acc(float* dst, int64_t K, int jv, const float* A, const float* Bm, int64_t count) {
  const int64_t J = (int64_t)jv * W;
  for (int64_t k0 = 0; k0 < K; k0 += 4) {
    const int rn = (int)(K - k0 < 4 ? K - k0 : 4);
    for (int j0 = 0; j0 < jv; j0 += 4) {
      const int jn = jv - j0 < 4 ? jv - j0 : 4;
      vf acc[4][4];
      for (int r = 0; r < rn; ++r)
        for (int j = 0; j < jn; ++j) acc[r][j] = ld(dst + (k0 + r) * J + (j0 + j) * W);
      for (int64_t c = 0; c < count; ++c) {
        vf d[4];
        for (int j = 0; j < jn; ++j) d[j] = ld(Bm + c * J + (j0 + j) * W);
        for (int r = 0; r < rn; ++r) {
          const vf hb = bc(A[c * K + k0 + r]);
          for (int j = 0; j < jn; ++j) acc[r][j] += hb * d[j];
        }
      }
      for (int r = 0; r < rn; ++r)
        for (int j = 0; j < jn; ++j) st(dst + (k0 + r) * J + (j0 + j) * W, acc[r][j]);
    }
  }
}

// dwh [N, 4N] += hc^T @ dzc over the chunk's `count` rows: a tile of R rows (k0..) x JB vectors (j0..).
template <int R, int JB>
VSML_INLINE void dwh_tile(const BwdUnit& x, const BwdScratch& s, int64_t k0, int j0) {
  const int64_t n = x.n, F = 4 * n;
  float* dst = x.dwh + k0 * F + j0 * W;
  const float* dz = s.dzc + j0 * W;
  const float* hc = s.hc + k0;
  vf acc[R][JB];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int j = 0; j < JB; ++j) acc[r][j] = ld(dst + r * F + j * W);
  for (int64_t c = 0; c < s.count; ++c) {
    vf d[JB];
#pragma GCC unroll 16
    for (int j = 0; j < JB; ++j) d[j] = ld(dz + c * F + j * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const vf hb = bc(hc[c * n + r]);
#pragma GCC unroll 16
      for (int j = 0; j < JB; ++j) acc[r][j] += hb * d[j];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int j = 0; j < JB; ++j) st(dst + r * F + j * W, acc[r][j]);
}

constexpr int kDwhCols = kRegs >= 32 ? 4 : 2;  // divides 4*nv; 16 registers: 4 rows x 2 (measured fastest on AVX2)
constexpr int kDwhRows = (kRegs - kDwhCols - 1) / kDwhCols < 4 ? (kRegs - kDwhCols - 1) / kDwhCols : 4;

template <int NV>
void flush_chunk(const BwdUnit& x, BwdScratch& s, int nv) {
  for (int j0 = 0; j0 < 4 * nv; j0 += kDwhCols) {
    int64_t k = 0;
    for (; k + kDwhRows <= x.n; k += kDwhRows) dwh_tile<kDwhRows, kDwhCols>(x, s, k, j0);
    for (; k < x.n; ++k) dwh_tile<1, kDwhCols>(x, s, k, j0);
  }
  s.count = 0;
}

template <int NV, int P>
VSML_INLINE void bwd_group(const BwdUnit& x, int64_t cell0, int nv_dyn, BwdScratch& s) {
  constexpr int NVB = NV > 0 ? NV : NVMAX;
  constexpr int PM = P < block_cells(NV) ? P : block_cells(NV);
  const int nv = NV > 0 ? NV : nv_dyn;
  const int64_t n = x.n, F = 4 * n, T = x.ticks;
  const GroupIdx<P> gi(x.u, x.v, cell0, x.b, F);
  auto H = [&](int64_t t, int p) { return s.hist + (t * P + p) * n; };
  auto G = [&](int64_t t, int p, int which) { return s.gates + ((t * P + p) * 6 + which) * n; };

  // ---- recompute the micro ticks, keeping states and gates
  vf cs[P][NVB];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    std::memcpy(H(0, p), x.h + (cell0 + p) * n, sizeof(float) * n);
#pragma GCC unroll 16
    for (int q = 0; q < nv; ++q) cs[p][q] = ld(x.c + (cell0 + p) * n + q * W);
  }
  for (int64_t t = 0; t < T; ++t) {
    group_matmul<NV, P, PM>(x.wh, gi, H(t, 0), n, n, nv, s.zb);
    constexpr int K = NV > 0 ? P * NV : 1;
    const int groups = NV > 0 ? 1 : P * nv;
    for (int gg = 0; gg < groups; ++gg) {
      vf zi[K], zf[K], zg[K], zo[K], c[K], i[K], f[K], g[K], o[K], tc[K];
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) {
        const int p = (gg * K + k) / nv, q = (gg * K + k) % nv;
        const float* z = s.zb + (p * 4 * nv + q) * W;
        zi[k] = ld(z);
        zf[k] = ld(z + nv * W);
        zg[k] = ld(z + 2 * nv * W);
        zo[k] = ld(z + 3 * nv * W);
        c[k] = cs[p][q];
        st(G(t, p, 0) + q * W, c[k]);
      }
      gates_all<K>(zi, zf, zg, zo, c, i, f, g, o, tc);
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) {
        const int p = (gg * K + k) / nv, q = (gg * K + k) % nv;
        cs[p][q] = c[k];
        st(G(t, p, 1) + q * W, i[k]);
        st(G(t, p, 2) + q * W, f[k]);
        st(G(t, p, 3) + q * W, g[k]);
        st(G(t, p, 4) + q * W, o[k]);
        st(G(t, p, 5) + q * W, tc[k]);
        st(H(t + 1, p) + q * W, o[k] * tc[k]);
      }
    }
  }

  // ---- cotangent of the final h
  vf dh[P][NVB], dc[P][NVB];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    const int64_t cell = cell0 + p;
    if (x.m == 0) {
      const float* ga = x.dred_a + gi.ia[p] * n;
      const float* gb = x.dred_b + gi.ib[p] * n;
#pragma GCC unroll 16
      for (int q = 0; q < nv; ++q) dh[p][q] = ld(x.dh_out + cell * n + q * W) + ld(gb + q * W) + ld(ga + q * W);
    } else {
      float* dhh = s.msg + 4 * x.m;
      std::memcpy(dhh, x.dh_out + cell * n, sizeof(float) * n);
      if (vec_heads(x.m)) {
        const int64_t m2 = 2 * x.m;
        const int mv2 = (int)(m2 / W);
        vf g2[MV2MAX];
        for (int j = 0; j < mv2; ++j)
          g2[j] = ld(s.g2b + gi.ib[p] * m2 + j * W) + ld(s.g2a + (gi.ia[p] - x.a0) * m2 + j * W);
        if (s.count2 == kChunk) {
          outer_acc(x.dwhead, n, mv2, s.hc2, s.dxc, s.count2);
          s.count2 = 0;
        }
        float* dx = s.dxc + s.count2 * m2;
        std::memcpy(s.hc2 + s.count2 * n, H(T, p), sizeof(float) * n);
        ++s.count2;
        heads_bwd_vec(H(T, p), x, g2, dx, s.wheadT, dhh);
        for (int j = 0; j < mv2; ++j) st(s.dbh + j * W, ld(s.dbh + j * W) + ld(dx + j * W));
      } else {
        heads_bwd(H(T, p), x, x.dred_b + gi.ib[p] * x.m, x.dred_a + gi.ia[p] * x.m, dhh, s.msg);
      }
#pragma GCC unroll 16
      for (int q = 0; q < nv; ++q) dh[p][q] = ld(dhh + q * W);
    }
#pragma GCC unroll 16
    for (int q = 0; q < nv; ++q) dc[p][q] = ld(x.dc_out + cell * n + q * W);
  }

  // ---- backwards through the ticks
  vf duv[P][4 * NVB];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int j = 0; j < 4 * nv; ++j) duv[p][j] = vf{};
  for (int64_t t = T - 1; t >= 0; --t) {
    if (s.count + P > kChunk) flush_chunk<NV>(x, s, nv);
    float* dz0 = s.dzc + s.count * F;
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      float* dz = dz0 + p * F;
      std::memcpy(s.hc + (s.count + p) * n, H(t, p), sizeof(float) * n);
#pragma GCC unroll 16
      for (int q = 0; q < nv; ++q) {
        const vf cp = ld(G(t, p, 0) + q * W), i = ld(G(t, p, 1) + q * W), f = ld(G(t, p, 2) + q * W);
        const vf g = ld(G(t, p, 3) + q * W), o = ld(G(t, p, 4) + q * W), tc = ld(G(t, p, 5) + q * W);
        const vf dho = dh[p][q] * o;
        const vf dct = dc[p][q] + dho * (1.0f - tc * tc);
        const vf dzi = dct * g * (i * (1.0f - i));
        const vf dzf = dct * cp * (f * (1.0f - f));
        const vf dzg = dct * i * (1.0f - g * g);
        const vf dzo = dho * tc * (1.0f - o);  // dh * tanh(c) * o(1 - o)
        dc[p][q] = dct * f;
        st(dz + q * W, dzi);
        st(dz + (nv + q) * W, dzf);
        st(dz + (2 * nv + q) * W, dzg);
        st(dz + (3 * nv + q) * W, dzo);
        duv[p][q] += dzi;
        duv[p][nv + q] += dzf;
        duv[p][2 * nv + q] += dzg;
        duv[p][3 * nv + q] += dzo;
      }
    }
    // dh = dz @ Wh^T; S accumulators per output vector (independent FMA chains) where registers allow
    constexpr int S = 2 * P * NVB + 2 * NVB + 1 <= kRegs ? 2 : 1;
    vf acc[S][P][NVB];
#pragma GCC unroll 16
    for (int r = 0; r < S; ++r)
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
        for (int q = 0; q < nv; ++q) acc[r][p][q] = vf{};
    for (int64_t j = 0; j < F; j += S) {
#pragma GCC unroll 16
      for (int r = 0; r < S; ++r) {
        const float* w = x.whT + (j + r) * n;
#pragma GCC unroll 16
        for (int q = 0; q < nv; ++q) {
          const vf wq = ld(w + q * W);
#pragma GCC unroll 16
          for (int p = 0; p < P; ++p) acc[r][p][q] += bc(dz0[p * F + j + r]) * wq;
        }
      }
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
      for (int q = 0; q < nv; ++q) dh[p][q] = S == 2 ? acc[0][p][q] + acc[S - 1][p][q] : acc[0][p][q];
    s.count += P;
  }

  // ---- outputs
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    const int64_t cell = cell0 + p;
#pragma GCC unroll 16
    for (int q = 0; q < nv; ++q) {
      st(x.dh + cell * n + q * W, dh[p][q]);
      st(x.dc + cell * n + q * W, dc[p][q]);
    }
    float* du = x.du + gi.ia[p] * F;
    float* dv = x.dv + gi.ib[p] * F;
#pragma GCC unroll 16
    for (int j = 0; j < 4 * nv; ++j) {
      st(du + j * W, ld(du + j * W) + duv[p][j]);
      st(dv + j * W, ld(dv + j * W) + duv[p][j]);
    }
  }
}

template <int NV>
void bwd_unit(const BwdUnit& x) {
  constexpr int P = group_cells(NV);
  const int nv = (int)(x.n / W);
  const int64_t n = x.n, F = 4 * n;
  std::memset(x.du + x.a0 * F, 0, sizeof(float) * (x.a1 - x.a0) * F);
  std::memset(x.dv, 0, sizeof(float) * x.b * F);
  std::memset(x.dwh, 0, sizeof(float) * n * F);
  if (x.m) {
    std::memset(x.dwhead, 0, sizeof(float) * n * 2 * x.m);
    std::memset(x.dbhead, 0, sizeof(float) * 2 * x.m);
  }
  const int64_t m = x.m, m2 = 2 * m, na = x.a1 - x.a0;
  BwdScratch s = carve(x.scratch, n, m, x.ticks, x.b, na);
  const bool vec = m > 0 && vec_heads(m);
  if (vec) {
    std::memset(s.g2b, 0, sizeof(float) * (x.b + na) * m2);
    for (int64_t b = 0; b < x.b; ++b) std::memcpy(s.g2b + b * m2, x.dred_b + b * m, sizeof(float) * m);
    for (int64_t a = 0; a < na; ++a) std::memcpy(s.g2a + a * m2 + m, x.dred_a + (x.a0 + a) * m, sizeof(float) * m);
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < m2; ++j) s.wheadT[j * n + k] = x.whead[k * m2 + j];
    std::memset(s.dbh, 0, sizeof(float) * m2);
  }
  const int64_t end = x.a1 * x.b;
  int64_t cell = x.a0 * x.b;
  for (; cell + P <= end; cell += P) bwd_group<NV, P>(x, cell, nv, s);
  for (; cell < end; ++cell) bwd_group<NV, 1>(x, cell, nv, s);
  if (s.count) flush_chunk<NV>(x, s, nv);
  if (vec) {
    if (s.count2) outer_acc(x.dwhead, n, (int)(m2 / W), s.hc2, s.dxc, s.count2);
    for (int64_t j = 0; j < m2; ++j) x.dbhead[j] += s.dbh[j];
  }
}

// ---------------------------------------------------------------------------------------------

void eval_approx(int kind, int64_t count, const float* xs, float* ys) {
  int64_t i = 0;
  for (; i + W <= count; i += W) st(ys + i, kind == 0 ? sigmoid(ld(xs + i)) : tanh_(ld(xs + i)));
  if (i < count) {
    float buf[W] = {};
    std::memcpy(buf, xs + i, sizeof(float) * (count - i));
    st(buf, kind == 0 ? sigmoid(ld(buf)) : tanh_(ld(buf)));
    std::memcpy(ys + i, buf, sizeof(float) * (count - i));
  }
}

template <int NV>
constexpr KernelSet make_set(const char* name) {
  return KernelSet{name, W, &fwd_unit<NV>, &bwd_unit<NV>, &eval_approx};
}

}  // namespace

// Kernel set for state size n, or nullptr when this width cannot run it.
inline const KernelSet* select_set(int64_t n, const KernelSet& nv1, const KernelSet& nv2, const KernelSet& dyn) {
  if (n <= 0 || n % W != 0 || n / W > NVMAX) return nullptr;
  if (n / W == 1) return &nv1;
  if (n / W == 2) return &nv2;
  return &dyn;
}
