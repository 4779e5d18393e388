// Baseline instance of the fused dense-layer kernels: 4 lanes with the compiler's default target
// (SSE2 on any x86-64; NEON or scalar code elsewhere).
#include "dense_kernel.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace vsml {
namespace generic {
constexpr int W = 4;
#if defined(__SSE__)
#define VSML_RCP_ESTIMATE(d) ((vf)_mm_rcp_ps((__m128)(d)))
#define VSML_MAX(a, b) ((vf)_mm_max_ps((__m128)(a), (__m128)(b)))
#define VSML_MIN(a, b) ((vf)_mm_min_ps((__m128)(a), (__m128)(b)))
#define VSML_SQRT(x) ((vf)_mm_sqrt_ps((__m128)(x)))
#else
#define VSML_RCP_ESTIMATE(d) (1.0f / (d))
#endif
#include "dense_impl.h"
#undef VSML_RCP_ESTIMATE
#undef VSML_MAX
#undef VSML_MIN
#undef VSML_SQRT

const KernelSet* kernels(int64_t n) {
  static const KernelSet nv1 = make_set<1>("generic"), nv2 = make_set<2>("generic"), dyn = make_set<0>("generic");
  return select_set(n, nv1, nv2, dyn);
}
}  // namespace generic
}  // namespace vsml
