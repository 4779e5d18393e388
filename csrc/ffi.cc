// XLA FFI handlers of the fused VSML dense-layer tick (registered from vsml/kernels/_ffi.py).
//
// Every operand may carry extra leading "group" dimensions (one per vmap level, ffi_call's
// vmap_method="expand_dims"): a group dimension of size 1 is broadcast, so shared weights are not
// copied per ES member or episode. The work of one call is split into units (group, batch element,
// range of inputs a) that depend on the shapes only, never on the thread count, so results are
// bit-identical however many threads run them. Units run on XLA's intra-op thread pool (plus the
// calling thread); partial sums over units are added in a fixed order afterwards.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dense_kernel.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace vsml {

int64_t fwd_scratch_floats(int64_t m, int64_t b, int64_t na) { return (b + na) * 2 * m + 64; }

int64_t bwd_scratch_floats(int64_t n, int64_t m, int64_t ticks, int64_t b, int64_t na) {
  constexpr int64_t P = 8, kChunkRows = 64;  // kMaxGroup, kChunk of dense_impl.h (carve())
  return (ticks + 1) * P * n + ticks * P * 6 * n + kChunkRows * n + kChunkRows * 4 * n + P * 4 * n + 4 * m + n +
         (b + na) * 2 * m + 2 * m * n + kChunkRows * (n + 2 * m) + 2 * m + 64;
}

namespace {

// ---- instruction-set selection ------------------------------------------------------------

std::atomic<int> g_forced_isa{-1};  // widest instruction set to use: -1 = best available, else index into kIsaNames
const char* const kIsaNames[] = {"avx512", "avx2", "generic", "scalar"};

bool cpu_has(int isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == 0) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("fma");
  if (isa == 1) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  if (isa <= 1) return false;
#endif
  return true;
}

const KernelSet* isa_kernels(int isa, int64_t n) {
  if (!cpu_has(isa)) return nullptr;
  switch (isa) {
    case 0: return avx512::kernels(n);
    case 1: return avx2::kernels(n);
    case 2: return generic::kernels(n);
    default: return scalar::kernels(n);
  }
}

const KernelSet* select_kernels(int64_t n) {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  for (int isa = forced >= 0 ? forced : 0; isa < 4; ++isa)
    if (const KernelSet* k = isa_kernels(isa, n)) return k;
  return nullptr;
}

int forced_threads() {
  static const int t = [] {
    const char* s = std::getenv("VSML_KERNEL_THREADS");
    return s ? std::atoi(s) : 0;
  }();
  return t;
}

// ---- parallel loop on the FFI thread pool ----------------------------------------------------

// Runs fn(item, worker) for item in [0, count). The calling thread works too; tasks scheduled on
// the pool that start after all items are claimed return at once (they only touch `shared`).
template <class Fn>
void parallel_for(ffi::ThreadPool& pool, int64_t count, int64_t max_workers, Fn&& fn) {
  int64_t workers = std::min<int64_t>(count, max_workers);
  if (workers <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i, 0);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0}, done{0}, worker_ids{1};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto shared = std::make_shared<Shared>();
  auto run = [shared, count, &fn](int64_t worker) {
    for (int64_t i; (i = shared->next.fetch_add(1)) < count;) {
      fn(i, worker);
      if (shared->done.fetch_add(1) + 1 == count) {
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->cv.notify_all();
      }
    }
  };
  for (int64_t w = 1; w < workers; ++w) {
    pool.Schedule([shared, run]() { run(shared->worker_ids.fetch_add(1)); });
  }
  run(0);
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done.load() == count; });
}

int64_t max_workers(ffi::ThreadPool& pool) {
  if (forced_threads() > 0) return forced_threads();
  return std::max<int64_t>(1, pool.num_threads());
}

// Growable per-thread scratch (never shrinks: steady-state calls do not allocate).
float* thread_scratch(size_t floats) {
  thread_local std::vector<float> buf;
  if (buf.size() < floats) buf.resize(floats);
  return buf.data();
}

// ---- shapes -------------------------------------------------------------------------------

// Element offset of each group of an operand with `lead` leading dims (each 1 = broadcast, or
// equal to the output's) and `base` elements per group.
ffi::Error group_offsets(ffi::Span<const int64_t> dims, size_t nlead, const std::vector<int64_t>& out_lead,
                         int64_t base, const char* name, std::vector<int64_t>& offs) {
  if (dims.size() < nlead) return ffi::Error::InvalidArgument(std::string("vsml fused kernel: bad rank of ") + name);
  std::vector<int64_t> stride(nlead, 0);
  int64_t s = base;
  for (size_t i = nlead; i-- > 0;) {
    if (dims[i] != 1 && dims[i] != out_lead[i])
      return ffi::Error::InvalidArgument(std::string("vsml fused kernel: group dims of ") + name + " do not broadcast");
    stride[i] = dims[i] == 1 ? 0 : s;
    s *= dims[i];
  }
  int64_t groups = 1;
  for (int64_t d : out_lead) groups *= d;
  offs.assign(groups, 0);
  std::vector<int64_t> idx(nlead, 0);
  for (int64_t g = 0; g < groups; ++g) {
    int64_t off = 0;
    for (size_t i = 0; i < nlead; ++i) off += idx[i] * stride[i];
    offs[g] = off;
    for (size_t i = nlead; i-- > 0;) {
      if (++idx[i] < out_lead[i]) break;
      idx[i] = 0;
    }
  }
  return ffi::Error::Success();
}

bool tail_is(ffi::Span<const int64_t> dims, std::initializer_list<int64_t> want) {
  if (dims.size() < want.size()) return false;
  size_t i = dims.size() - want.size();
  for (int64_t w : want) {
    if (w >= 0 && dims[i] != w) return false;
    ++i;
  }
  return true;
}

struct Geometry {
  size_t nlead;
  std::vector<int64_t> lead;
  int64_t groups, batch, a, b, n, m, r, units;
  const KernelSet* ks;
};

int64_t units_per_example(int64_t a, int64_t b) {
  const int64_t want = (a * b + 255) / 256;
  return std::max<int64_t>(1, std::min<int64_t>({want, a, 32}));
}

ffi::Error geometry(ffi::AnyBuffer::Dimensions wh, ffi::AnyBuffer::Dimensions u, ffi::AnyBuffer::Dimensions v,
                    ffi::AnyBuffer::Dimensions h, ffi::AnyBuffer::Dimensions c, ffi::AnyBuffer::Dimensions out_h,
                    const ffi::AnyBuffer::Dimensions* whead, int64_t ticks, Geometry& geo) {
  if (h.size() < 3) return ffi::Error::InvalidArgument("vsml fused kernel: h must be [..., batch, A*B, N]");
  geo.nlead = h.size() - 3;
  const size_t L = geo.nlead;
  geo.lead.assign(out_h.begin(), out_h.begin() + L);
  geo.groups = 1;
  for (int64_t d : geo.lead) geo.groups *= d;
  geo.batch = h[L];
  geo.n = h[L + 2];
  if (u.size() != L + 3 || v.size() != L + 3 || c.size() != L + 3 || wh.size() != L + 2)
    return ffi::Error::InvalidArgument("vsml fused kernel: operand ranks do not match");
  geo.a = u[L + 1];
  geo.b = v[L + 1];
  const int64_t n = geo.n;
  if (u[L] != geo.batch || v[L] != geo.batch || c[L] != geo.batch || !tail_is(u, {4 * n}) || !tail_is(v, {4 * n}) ||
      !tail_is(wh, {n, 4 * n}) || h[L + 1] != geo.a * geo.b || !tail_is(c, {geo.a * geo.b, n}))
    return ffi::Error::InvalidArgument("vsml fused kernel: inconsistent shapes (want wh [N,4N], u [batch,A,4N], "
                                       "v [batch,B,4N], h and c [batch,A*B,N])");
  if (ticks < 1) return ffi::Error::InvalidArgument("vsml fused kernel: micro ticks must be >= 1");
  geo.m = 0;
  if (whead) {
    if (whead->size() != L + 2 || (*whead)[L] != n || (*whead)[L + 1] % 2 != 0 || (*whead)[L + 1] < 2 ||
        (*whead)[L + 1] > 512)
      return ffi::Error::InvalidArgument("vsml fused kernel: whead must be [N, 2M] with 1 <= M <= 256");
    geo.m = (*whead)[L + 1] / 2;
  }
  geo.r = geo.m ? geo.m : n;
  geo.units = units_per_example(geo.a, geo.b);
  geo.ks = select_kernels(n);
  if (!geo.ks) return ffi::Error::InvalidArgument("vsml fused kernel: no kernel for this state size (N <= 64 needed)");
  return ffi::Error::Success();
}

#define VSML_CHECK(expr)              \
  do {                                \
    ffi::Error _e = (expr);           \
    if (_e.failure()) return _e;      \
  } while (0)

// ---- forward ------------------------------------------------------------------------------

ffi::Error dense_fwd(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> wh, ffi::Buffer<ffi::F32> u,
                     ffi::Buffer<ffi::F32> v, ffi::Buffer<ffi::F32> h, ffi::Buffer<ffi::F32> c,
                     const ffi::Buffer<ffi::F32>* whead, const ffi::Buffer<ffi::F32>* bhead,
                     ffi::ResultBuffer<ffi::F32> h_out, ffi::ResultBuffer<ffi::F32> c_out,
                     ffi::ResultBuffer<ffi::F32> red_b, ffi::ResultBuffer<ffi::F32> red_a, int64_t ticks) {
  Geometry g;
  ffi::AnyBuffer::Dimensions whd = whead ? whead->dimensions() : ffi::AnyBuffer::Dimensions();
  VSML_CHECK(geometry(wh.dimensions(), u.dimensions(), v.dimensions(), h.dimensions(), c.dimensions(),
                      h_out->dimensions(), whead ? &whd : nullptr, ticks, g));
  const int64_t n = g.n, F = 4 * n, cells = g.a * g.b, L = g.nlead;
  std::vector<int64_t> o_wh, o_u, o_v, o_h, o_c, o_wd, o_bd;
  VSML_CHECK(group_offsets(wh.dimensions(), L, g.lead, n * F, "wh", o_wh));
  VSML_CHECK(group_offsets(u.dimensions(), L, g.lead, g.batch * g.a * F, "u", o_u));
  VSML_CHECK(group_offsets(v.dimensions(), L, g.lead, g.batch * g.b * F, "v", o_v));
  VSML_CHECK(group_offsets(h.dimensions(), L, g.lead, g.batch * cells * n, "h", o_h));
  VSML_CHECK(group_offsets(c.dimensions(), L, g.lead, g.batch * cells * n, "c", o_c));
  if (whead) {
    VSML_CHECK(group_offsets(whead->dimensions(), L, g.lead, n * 2 * g.m, "whead", o_wd));
    if (bhead->dimensions().size() != L + 1 || bhead->dimensions()[L] != 2 * g.m)
      return ffi::Error::InvalidArgument("vsml fused kernel: bhead must be [2M]");
    VSML_CHECK(group_offsets(bhead->dimensions(), L, g.lead, 2 * g.m, "bhead", o_bd));
  }
  const int64_t examples = g.groups * g.batch, total = examples * g.units, part = g.b * g.r;
  const int64_t workers = std::min<int64_t>(total, max_workers(pool));
  const int64_t work = fwd_scratch_floats(g.m, g.b, g.a / g.units + 1);
  float* partial = thread_scratch(total * part + workers * work);
  float* worker_scratch = partial + total * part;
  parallel_for(pool, total, workers, [&](int64_t item, int64_t worker) {
    const int64_t e = item / g.units, unit = item % g.units, grp = e / g.batch, ex = e % g.batch;
    FwdUnit x;
    x.a = g.a;
    x.b = g.b;
    x.n = n;
    x.m = g.m;
    x.ticks = ticks;
    x.wh = wh.typed_data() + o_wh[grp];
    x.u = u.typed_data() + o_u[grp] + ex * g.a * F;
    x.v = v.typed_data() + o_v[grp] + ex * g.b * F;
    x.h = h.typed_data() + o_h[grp] + ex * cells * n;
    x.c = c.typed_data() + o_c[grp] + ex * cells * n;
    x.whead = whead ? whead->typed_data() + o_wd[grp] : nullptr;
    x.bhead = whead ? bhead->typed_data() + o_bd[grp] : nullptr;
    x.h_out = h_out->typed_data() + e * cells * n;
    x.c_out = c_out->typed_data() + e * cells * n;
    x.red_a = red_a->typed_data() + e * g.a * g.r;
    x.red_b = partial + item * part;
    x.a0 = unit * g.a / g.units;
    x.a1 = (unit + 1) * g.a / g.units;
    x.scratch = worker_scratch + worker * work;
    g.ks->fwd(x);
  });
  for (int64_t e = 0; e < examples; ++e) {
    float* out = red_b->typed_data() + e * part;
    const float* p = partial + e * g.units * part;
    std::memcpy(out, p, sizeof(float) * part);
    for (int64_t k = 1; k < g.units; ++k)
      for (int64_t i = 0; i < part; ++i) out[i] += p[k * part + i];
  }
  return ffi::Error::Success();
}

// ---- backward -----------------------------------------------------------------------------

ffi::Error dense_bwd(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> wh, ffi::Buffer<ffi::F32> u,
                     ffi::Buffer<ffi::F32> v, ffi::Buffer<ffi::F32> h, ffi::Buffer<ffi::F32> c,
                     const ffi::Buffer<ffi::F32>* whead, const ffi::Buffer<ffi::F32>* bhead,
                     ffi::Buffer<ffi::F32> dh_out, ffi::Buffer<ffi::F32> dc_out, ffi::Buffer<ffi::F32> dred_b,
                     ffi::Buffer<ffi::F32> dred_a, ffi::ResultBuffer<ffi::F32> dwh, ffi::ResultBuffer<ffi::F32> du,
                     ffi::ResultBuffer<ffi::F32> dv, ffi::ResultBuffer<ffi::F32> dh, ffi::ResultBuffer<ffi::F32> dc,
                     ffi::ResultBuffer<ffi::F32>* dwhead, ffi::ResultBuffer<ffi::F32>* dbhead, int64_t ticks) {
  Geometry g;
  ffi::AnyBuffer::Dimensions whd = whead ? whead->dimensions() : ffi::AnyBuffer::Dimensions();
  VSML_CHECK(geometry(wh.dimensions(), u.dimensions(), v.dimensions(), h.dimensions(), c.dimensions(),
                      dh->dimensions(), whead ? &whd : nullptr, ticks, g));
  const int64_t n = g.n, F = 4 * n, cells = g.a * g.b, L = g.nlead, m2 = 2 * g.m;
  std::vector<int64_t> o_wh, o_u, o_v, o_h, o_c, o_wd, o_bd, o_dh, o_dc, o_rb, o_ra;
  VSML_CHECK(group_offsets(wh.dimensions(), L, g.lead, n * F, "wh", o_wh));
  VSML_CHECK(group_offsets(u.dimensions(), L, g.lead, g.batch * g.a * F, "u", o_u));
  VSML_CHECK(group_offsets(v.dimensions(), L, g.lead, g.batch * g.b * F, "v", o_v));
  VSML_CHECK(group_offsets(h.dimensions(), L, g.lead, g.batch * cells * n, "h", o_h));
  VSML_CHECK(group_offsets(c.dimensions(), L, g.lead, g.batch * cells * n, "c", o_c));
  VSML_CHECK(group_offsets(dh_out.dimensions(), L, g.lead, g.batch * cells * n, "dh", o_dh));
  VSML_CHECK(group_offsets(dc_out.dimensions(), L, g.lead, g.batch * cells * n, "dc", o_dc));
  VSML_CHECK(group_offsets(dred_b.dimensions(), L, g.lead, g.batch * g.b * g.r, "dred_b", o_rb));
  VSML_CHECK(group_offsets(dred_a.dimensions(), L, g.lead, g.batch * g.a * g.r, "dred_a", o_ra));
  if (whead) {
    VSML_CHECK(group_offsets(whead->dimensions(), L, g.lead, n * m2, "whead", o_wd));
    VSML_CHECK(group_offsets(bhead->dimensions(), L, g.lead, m2, "bhead", o_bd));
  }
  const int64_t examples = g.groups * g.batch, total = examples * g.units;
  const int64_t part = g.b * F + n * F + n * m2 + m2;  // dv, dwh, dwhead, dbhead partials per unit
  const int64_t workers = std::min<int64_t>(total, max_workers(pool));
  const int64_t work = bwd_scratch_floats(n, g.m, ticks, g.b, g.a / g.units + 1);
  const int64_t wht = g.groups * F * n;
  float* scratch = thread_scratch(total * part + workers * work + wht);
  float* partial = scratch;
  float* worker_scratch = partial + total * part;
  float* whT = worker_scratch + workers * work;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const float* w = wh.typed_data() + o_wh[grp];
    float* t = whT + grp * F * n;
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < F; ++j) t[j * n + k] = w[k * F + j];
  }
  parallel_for(pool, total, workers, [&](int64_t item, int64_t worker) {
    const int64_t e = item / g.units, unit = item % g.units, grp = e / g.batch, ex = e % g.batch;
    BwdUnit x;
    x.a = g.a;
    x.b = g.b;
    x.n = n;
    x.m = g.m;
    x.ticks = ticks;
    x.wh = wh.typed_data() + o_wh[grp];
    x.whT = whT + grp * F * n;
    x.u = u.typed_data() + o_u[grp] + ex * g.a * F;
    x.v = v.typed_data() + o_v[grp] + ex * g.b * F;
    x.h = h.typed_data() + o_h[grp] + ex * cells * n;
    x.c = c.typed_data() + o_c[grp] + ex * cells * n;
    x.whead = whead ? whead->typed_data() + o_wd[grp] : nullptr;
    x.bhead = whead ? bhead->typed_data() + o_bd[grp] : nullptr;
    x.dh_out = dh_out.typed_data() + o_dh[grp] + ex * cells * n;
    x.dc_out = dc_out.typed_data() + o_dc[grp] + ex * cells * n;
    x.dred_b = dred_b.typed_data() + o_rb[grp] + ex * g.b * g.r;
    x.dred_a = dred_a.typed_data() + o_ra[grp] + ex * g.a * g.r;
    x.dh = dh->typed_data() + e * cells * n;
    x.dc = dc->typed_data() + e * cells * n;
    x.du = du->typed_data() + e * g.a * F;
    float* p = partial + item * part;
    x.dv = p;
    x.dwh = p + g.b * F;
    x.dwhead = x.dwh + n * F;
    x.dbhead = x.dwhead + n * m2;
    x.a0 = unit * g.a / g.units;
    x.a1 = (unit + 1) * g.a / g.units;
    x.scratch = worker_scratch + worker * work;
    g.ks->bwd(x);
  });
  // Fixed-order sums of the partials: dv per example, dwh / dwhead / dbhead per group.
  for (int64_t e = 0; e < examples; ++e) {
    float* out = dv->typed_data() + e * g.b * F;
    const float* p = partial + e * g.units * part;
    std::memcpy(out, p, sizeof(float) * g.b * F);
    for (int64_t k = 1; k < g.units; ++k)
      for (int64_t i = 0; i < g.b * F; ++i) out[i] += p[k * part + i];
  }
  const int64_t wpart = n * F + n * m2 + m2;
  std::vector<float> acc(wpart);
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t k = 0; k < g.batch * g.units; ++k) {
      const float* p = partial + (grp * g.batch * g.units + k) * part + g.b * F;
      for (int64_t i = 0; i < wpart; ++i) acc[i] += p[i];
    }
    std::memcpy(dwh->typed_data() + grp * n * F, acc.data(), sizeof(float) * n * F);
    if (whead) {
      std::memcpy((*dwhead)->typed_data() + grp * n * m2, acc.data() + n * F, sizeof(float) * n * m2);
      std::memcpy((*dbhead)->typed_data() + grp * m2, acc.data() + n * F + n * m2, sizeof(float) * m2);
    }
  }
  return ffi::Error::Success();
}

// ---- handler bodies -----------------------------------------------------------------------

using Buf = ffi::Buffer<ffi::F32>;
using Ret = ffi::ResultBuffer<ffi::F32>;

ffi::Error fwd_core(ffi::ThreadPool pool, Buf wh, Buf u, Buf v, Buf h, Buf c, Ret h_out, Ret c_out, Ret red_b,
                    Ret red_a, int64_t ticks) {
  return dense_fwd(pool, wh, u, v, h, c, nullptr, nullptr, h_out, c_out, red_b, red_a, ticks);
}

ffi::Error fwd_cellnorm(ffi::ThreadPool pool, Buf wh, Buf u, Buf v, Buf h, Buf c, Buf whead, Buf bhead, Ret h_out,
                        Ret c_out, Ret red_b, Ret red_a, int64_t ticks) {
  return dense_fwd(pool, wh, u, v, h, c, &whead, &bhead, h_out, c_out, red_b, red_a, ticks);
}

ffi::Error bwd_core(ffi::ThreadPool pool, Buf wh, Buf u, Buf v, Buf h, Buf c, Buf dh_out, Buf dc_out, Buf dred_b,
                    Buf dred_a, Ret dwh, Ret du, Ret dv, Ret dh, Ret dc, int64_t ticks) {
  return dense_bwd(pool, wh, u, v, h, c, nullptr, nullptr, dh_out, dc_out, dred_b, dred_a, dwh, du, dv, dh, dc,
                   nullptr, nullptr, ticks);
}

ffi::Error bwd_cellnorm(ffi::ThreadPool pool, Buf wh, Buf u, Buf v, Buf h, Buf c, Buf whead, Buf bhead, Buf dh_out,
                        Buf dc_out, Buf dred_b, Buf dred_a, Ret dwh, Ret du, Ret dv, Ret dh, Ret dc, Ret dwhead,
                        Ret dbhead, int64_t ticks) {
  return dense_bwd(pool, wh, u, v, h, c, &whead, &bhead, dh_out, dc_out, dred_b, dred_a, dwh, du, dv, dh, dc,
                   &dwhead, &dbhead, ticks);
}

// ---- bindings -----------------------------------------------------------------------------
// Every handler takes the thread pool, float32 operands, float32 results and the tick count, in
// that order; only the operand and result counts differ.

// (A binding can only be moved by the FFI itself, so each step returns the FFI's own result: N >= 1.)
template <size_t N, typename B>
auto with_args(B&& binding) {
  static_assert(N >= 1);
  if constexpr (N == 1) return std::move(binding).template Arg<Buf>();
  else return with_args<N - 1>(std::move(binding).template Arg<Buf>());
}

template <size_t N, typename B>
auto with_rets(B&& binding) {
  static_assert(N >= 1);
  if constexpr (N == 1) return std::move(binding).template Ret<Buf>();
  else return with_rets<N - 1>(std::move(binding).template Ret<Buf>());
}

// The binding of a handler with `Args` float32 operands and `Rets` float32 results.
template <size_t Args, size_t Rets>
auto binding() {
  return with_rets<Rets>(with_args<Args>(ffi::Ffi::Bind().Ctx<ffi::ThreadPool>())).template Attr<int64_t>("ticks");
}

}  // namespace
}  // namespace vsml

// ---- exported symbols ---------------------------------------------------------------------

#pragma GCC visibility push(default)

// operands wh, u, v, h, c (+ whead, bhead); results h, c, red_b, red_a
XLA_FFI_DEFINE_HANDLER_SYMBOL(VsmlDenseFwd, vsml::fwd_core, (vsml::binding<5, 4>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(VsmlDenseFwdCellNorm, vsml::fwd_cellnorm, (vsml::binding<7, 4>()));
// operands wh, u, v, h, c (+ whead, bhead), dh_out, dc_out, dred_b, dred_a; results dwh, du, dv, dh, dc (+ dwhead, dbhead)
XLA_FFI_DEFINE_HANDLER_SYMBOL(VsmlDenseBwd, vsml::bwd_core, (vsml::binding<9, 5>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(VsmlDenseBwdCellNorm, vsml::bwd_cellnorm, (vsml::binding<11, 7>()));

extern "C" {

// Name of the instruction set the kernels use for state size n ("" if none), after any override.
const char* vsml_kernel_isa(int64_t n) {
  const vsml::KernelSet* k = vsml::select_kernels(n);
  return k ? k->name : "";
}

// Limit the instruction sets to `name` and narrower ones ("avx512", "avx2", "generic", "scalar";
// "" or "auto": best available).
// Returns 0, or -1 for an unknown name or one this CPU cannot run.
int vsml_force_isa(const char* name) {
  if (!name || !*name || std::strcmp(name, "auto") == 0) {
    vsml::g_forced_isa.store(-1);
    return 0;
  }
  for (int i = 0; i < 4; ++i)
    if (std::strcmp(name, vsml::kIsaNames[i]) == 0) {
      if (!vsml::cpu_has(i)) return -1;
      vsml::g_forced_isa.store(i);
      return 0;
    }
  return -1;
}

// Elementwise sigmoid (kind 0) or tanh (kind 1) with the kernels' approximations for state size
// n's instruction set. Returns 0, or -1 when no kernel set applies.
int vsml_eval_approx(int kind, int64_t n, int64_t count, const float* x, float* y) {
  const vsml::KernelSet* k = vsml::select_kernels(n);
  if (!k) return -1;
  k->eval(kind, count, x, y);
  return 0;
}

// Version of the XLA FFI headers this library was compiled against ("major.minor"), and the jaxlib
// version whose headers were used (set by setup.py).
#ifndef VSML_BUILD_JAXLIB
#define VSML_BUILD_JAXLIB "unknown"
#endif
const char* vsml_build_info() {
  static const std::string info = std::to_string(XLA_FFI_API_MAJOR) + "." + std::to_string(XLA_FFI_API_MINOR) +
                                   " jaxlib " + VSML_BUILD_JAXLIB;
  return info.c_str();
}

}  // extern "C"

#pragma GCC visibility pop
