// AVX2 + FMA instance of the fused dense-layer kernels (8 lanes), selected at run time.
#include "dense_kernel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace vsml {
namespace avx2 {
constexpr int W = 8;
#define VSML_RCP_ESTIMATE(d) ((vf)_mm256_rcp_ps((__m256)(d)))
#define VSML_MAX(a, b) ((vf)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define VSML_MIN(a, b) ((vf)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define VSML_SQRT(x) ((vf)_mm256_sqrt_ps((__m256)(x)))
#include "dense_impl.h"
#undef VSML_SQRT
#undef VSML_RCP_ESTIMATE
#undef VSML_MAX
#undef VSML_MIN

const KernelSet* kernels(int64_t n) {
  static const KernelSet nv1 = make_set<1>("avx2"), nv2 = make_set<2>("avx2"), dyn = make_set<0>("avx2");
  return select_set(n, nv1, nv2, dyn);
}
}  // namespace avx2
}  // namespace vsml
#pragma GCC pop_options
#else
namespace vsml {
namespace avx2 {
const KernelSet* kernels(int64_t) { return nullptr; }
}  // namespace avx2
}  // namespace vsml
#endif
