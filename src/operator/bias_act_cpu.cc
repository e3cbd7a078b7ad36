// The gradient through the forward epilogue on the CPU (bias_act_kernels.h).
#include "bias_act_kernels.h"

namespace {

template <typename T>
void backward(const T* dy, const T* y, bool relu, T* pre_grad, T* bias_grad, int64_t batch,
              int64_t channels, int64_t inner) {
#pragma omp parallel for schedule(static) if (batch * channels * inner >= 1 << 16)
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t row = (n * channels + c) * inner;
      if (relu) {
        for (int64_t i = 0; i < inner; ++i) {
          const T g = y[row + i] > T(0) ? dy[row + i] : T(0);
          pre_grad[row + i] = g;
          sum += g;
        }
      } else {
        for (int64_t i = 0; i < inner; ++i) sum += dy[row + i];
      }
    }
    if (bias_grad != nullptr) bias_grad[c] = static_cast<T>(sum);
  }
}

}  // namespace

extern "C" int igc_bias_act_backward_cpu(const void* out_grad, const void* out, int activation,
                                         void* pre_grad, void* bias_grad, int64_t batch,
                                         int64_t channels, int64_t inner, int dtype) {
  if (dtype != IGC_FLOAT32 && dtype != IGC_FLOAT64) return IGC_BAD_DTYPE;
  if (activation != IGC_ACT_NONE && activation != IGC_ACT_RELU) return IGC_BAD_ACTIVATION;
  if (batch < 0 || channels < 0 || inner < 0) return IGC_BAD_SHAPE;
  const int64_t sizes[] = {batch, channels, inner};
  if (igc::checked_product(sizes, 3) < 0) return IGC_TOO_LARGE;
  const bool relu = activation == IGC_ACT_RELU;
  const bool empty = batch == 0 || channels == 0 || inner == 0;
  if (!empty && (out_grad == nullptr || (relu && (out == nullptr || pre_grad == nullptr))))
    return IGC_BAD_POINTER;
  if (channels > 0 && bias_grad == nullptr && !relu) return IGC_OK;
  if (dtype == IGC_FLOAT32) {
    backward(static_cast<const float*>(out_grad), static_cast<const float*>(out), relu,
             static_cast<float*>(pre_grad), static_cast<float*>(bias_grad), batch, channels, inner);
  } else {
    backward(static_cast<const double*>(out_grad), static_cast<const double*>(out), relu,
             static_cast<double*>(pre_grad), static_cast<double*>(bias_grad), batch, channels,
             inner);
  }
  return IGC_OK;
}
