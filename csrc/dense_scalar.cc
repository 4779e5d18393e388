// Scalar instance of the fused dense-layer kernels (one lane, exact division): runs any state size
// up to 64 on any CPU; the fallback when no SIMD width divides N.
#include "dense_kernel.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace vsml {
namespace scalar {
constexpr int W = 1;
#define VSML_RCP_ESTIMATE(d) (1.0f / (d))
#include "dense_impl.h"
#undef VSML_RCP_ESTIMATE

const KernelSet* kernels(int64_t n) {
  static const KernelSet nv1 = make_set<1>("scalar"), nv2 = make_set<2>("scalar"), dyn = make_set<0>("scalar");
  return select_set(n, nv1, nv2, dyn);
}
}  // namespace scalar
}  // namespace vsml
