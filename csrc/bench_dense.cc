// Stand-alone single-thread timing of the per-ISA kernels (no JAX/XLA), for profiling:
//   g++ -O3 -std=c++17 -ffp-contract=fast -fno-math-errno -g csrc/bench_dense.cc csrc/dense_*.cc -o /tmp/bench_dense
//   /tmp/bench_dense [isa=avx512] [reps=50] [n=16] [mode=-1]   (ns per cell-tick, thread CPU time)
//   add -DVSML_PROFILE_NO_GATES for a build whose forward gates are one multiply-add each (what the rest costs)
//   valgrind --tool=callgrind /tmp/bench_dense avx2 4 16 0      (instructions of one mode; valgrind has no
//   AVX-512, so profile the AVX2 build: Ir of fwd_unit / (7840 cells * 2 ticks * reps))
#include <time.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dense_kernel.h"

namespace vsml {
int64_t fwd_scratch_floats(int64_t m, int64_t b, int64_t na) { return (b + na) * 2 * m + 64; }
int64_t bwd_scratch_floats(int64_t n, int64_t m, int64_t ticks, int64_t b, int64_t na) {
  return (ticks + 1) * 8 * n + ticks * 8 * 6 * n + 64 * n + 64 * 4 * n + 8 * 4 * n + 4 * m + n + (b + na) * 2 * m +
         2 * m * n + 64 * (n + 2 * m) + 2 * m + 64;
}
}  // namespace vsml

static double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char** argv) {
  std::string isa = argc > 1 ? argv[1] : "avx512";
  const int reps = argc > 2 ? std::atoi(argv[2]) : 50;
  const int64_t n = argc > 3 ? std::atoll(argv[3]) : 16;
  const int only = argc > 4 ? std::atoi(argv[4]) : -1;  // 0 fwd core, 1 fwd cell-norm, 2 bwd core, 3 bwd cell-norm; -1 all
  const int64_t A = 784, B = 10, T = std::getenv("TICKS") ? std::atoll(std::getenv("TICKS")) : 2, F = 4 * n, cells = A * B, m = 8;
  const vsml::KernelSet* ks = isa == "avx512" ? vsml::avx512::kernels(n)
                              : isa == "avx2" ? vsml::avx2::kernels(n)
                              : isa == "generic" ? vsml::generic::kernels(n)
                                                 : vsml::scalar::kernels(n);
  if (!ks) return 1;
  std::mt19937 rng(0);
  std::normal_distribution<float> nd;
  auto rnd = [&](size_t k, float s) {
    std::vector<float> x(k);
    for (auto& e : x) e = s * nd(rng);
    return x;
  };
  auto wh = rnd(n * F, 0.25f), u = rnd(A * F, 1), v = rnd(B * F, 1), h = rnd(cells * n, 0.3f), c = rnd(cells * n, 1);
  auto whead = rnd(n * 2 * m, 0.25f), bhead = rnd(2 * m, 1);
  std::vector<float> ho(cells * n), co(cells * n), ra(A * n), rb(B * n);
  std::vector<float> whT(F * n), dho = rnd(cells * n, 1), dco = rnd(cells * n, 1), dra = rnd(A * n, 1), drb = rnd(B * n, 1);
  std::vector<float> dh(cells * n), dc(cells * n), du(A * F), dv(B * F), dwh(n * F), dwhead(n * 2 * m), dbhead(2 * m);
  std::vector<float> scratch(vsml::bwd_scratch_floats(n, m, T, B, A)), fscratch(vsml::fwd_scratch_floats(m, B, A));
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < F; ++j) whT[j * n + k] = wh[k * F + j];
  for (int mode = 0; mode < 4; ++mode) {  // 0 fwd core, 1 fwd cell-norm, 2 bwd core, 3 bwd cell-norm
    if (only >= 0 && mode != only) continue;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      double t = cpu_seconds();
      if (mode < 2) {
        vsml::FwdUnit x{A, B, n, mode == 1 ? m : 0, T, wh.data(), u.data(), v.data(), h.data(), c.data(),
                        whead.data(), bhead.data(), ho.data(), co.data(), ra.data(), rb.data(), 0, A, fscratch.data()};
        ks->fwd(x);
      } else {
        const bool cn = mode == 3;
        vsml::BwdUnit x{A, B, n, cn ? m : 0, T, wh.data(), whT.data(), u.data(), v.data(), h.data(), c.data(),
                        whead.data(), bhead.data(), dho.data(), dco.data(), dra.data(), drb.data(), dh.data(), dc.data(),
                        du.data(), dv.data(), dwh.data(), dwhead.data(), dbhead.data(), 0, A, scratch.data()};
        ks->bwd(x);
      }
      best = std::min(best, cpu_seconds() - t);
    }
    const char* names[] = {"forward core", "forward cell-norm", "backward core", "backward cell-norm"};
    std::printf("%s %s n=%lld: %.2f ns per cell-tick (%.1f M cell-ticks/s per thread)\n", ks->name, names[mode],
                (long long)n, 1e9 * best / (cells * T), cells * T / best / 1e6);
  }
  return 0;
}
