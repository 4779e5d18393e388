// AVX-512 instance of the fused dense-layer kernels (16 lanes), selected at run time.
#include "dense_kernel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi2")
namespace vsml {
namespace avx512 {
constexpr int W = 16;
#define VSML_RCP_ESTIMATE(d) ((vf)_mm512_rcp14_ps((__m512)(d)))
#define VSML_MAX(a, b) ((vf)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define VSML_MIN(a, b) ((vf)_mm512_min_ps((__m512)(a), (__m512)(b)))
#define VSML_SQRT(x) ((vf)_mm512_sqrt_ps((__m512)(x)))
#define VSML_SCALEF(p, n) ((vf)_mm512_scalef_ps((__m512)(p), (__m512)(n)))
#include "dense_impl.h"
#undef VSML_SCALEF
#undef VSML_SQRT
#undef VSML_RCP_ESTIMATE
#undef VSML_MAX
#undef VSML_MIN

const KernelSet* kernels(int64_t n) {
  static const KernelSet nv1 = make_set<1>("avx512"), nv2 = make_set<2>("avx512"), dyn = make_set<0>("avx512");
  return select_set(n, nv1, nv2, dyn);
}
}  // namespace avx512
}  // namespace vsml
#pragma GCC pop_options
#else
namespace vsml {
namespace avx512 {
const KernelSet* kernels(int64_t) { return nullptr; }
}  // namespace avx512
}  // namespace vsml
#endif
