#include "mmfusion/models/lstm.hpp"

#include <ATen/Parallel.h>

#include <cmath>

namespace mmfusion {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// Rows per parallel chunk: about 4096 gate values each.
int64_t grain(int64_t hidden) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, hidden)); }

// Saved for the backward pass, step-major ([T, B, ...]): the inputs, the activated gates
// (i, f, g, o), and the hidden and cell states h_t, c_t for t = -1 .. T - 1 (index 0 is
// the zero initial state).
struct LSTMFunction : torch::autograd::Function<LSTMFunction> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor lengths, Tensor w_ih,
                               Tensor w_hh, Tensor b_ih, Tensor b_hh) {
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2), H = w_hh.size(1);
    const Tensor xs = x.transpose(0, 1).reshape({T * B, D}).contiguous();
    // Every step's input projection in one product; step t's rows are one block.
    Tensor gates = torch::addmm(b_ih + b_hh, xs, w_ih.t()).view({T, B, 4 * H});
    Tensor h = torch::zeros({T + 1, B, H}, x.options());
    Tensor c = torch::zeros({T + 1, B, H}, x.options());
    Tensor out = torch::zeros({B, T, H}, x.options());
    const Tensor len = lengths.to(torch::kInt64).contiguous();
    const int64_t* L = len.data_ptr<int64_t>();
    float* G = gates.data_ptr<float>();
    float* hp = h.data_ptr<float>();
    float* cp = c.data_ptr<float>();
    float* op = out.data_ptr<float>();
    const Tensor w_hh_t = w_hh.t();
    for (int64_t t = 0; t < T; ++t) {
      gates[t].addmm_(h[t], w_hh_t);
      at::parallel_for(0, B, grain(H), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          float* g = G + (t * B + b) * 4 * H;
          const float* c_prev = cp + (t * B + b) * H;
          const float* h_prev = hp + (t * B + b) * H;
          float* c_next = cp + ((t + 1) * B + b) * H;
          float* h_next = hp + ((t + 1) * B + b) * H;
          if (t >= L[b]) {  // past the row's length: the state carries over
            for (int64_t j = 0; j < H; ++j) c_next[j] = c_prev[j], h_next[j] = h_prev[j];
            continue;
          }
          float* o_row = op + (b * T + t) * H;
          for (int64_t j = 0; j < H; ++j) {
            const float i = sigmoid(g[j]), f = sigmoid(g[H + j]), gg = std::tanh(g[2 * H + j]),
                        o = sigmoid(g[3 * H + j]);
            g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
            c_next[j] = f * c_prev[j] + i * gg;
            h_next[j] = o * std::tanh(c_next[j]);
            o_row[j] = h_next[j];
          }
        }
      });
    }
    ctx->save_for_backward({xs, len, w_ih, w_hh, gates, h, c});
    ctx->saved_data["x_grad"] = x.requires_grad();
    return {out, h[T].clone()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &xs = saved[0], &len = saved[1], &w_ih = saved[2], &w_hh = saved[3],
                 &gates = saved[4], &h = saved[5], &c = saved[6];
    const int64_t T = gates.size(0), B = gates.size(1), H = w_hh.size(1), D = xs.size(1);
    const int64_t* L = len.data_ptr<int64_t>();
    // dh, dc: the loss's gradient with respect to the state after the step in hand.
    Tensor dh = grads[1].defined() ? grads[1].contiguous().clone() : torch::zeros({B, H});
    Tensor dc = torch::zeros({B, H});
    const Tensor d_out = grads[0].defined() ? grads[0].contiguous() : Tensor();
    Tensor dG = torch::zeros({T, B, 4 * H});
    const float* G = gates.data_ptr<float>();
    const float* cp = c.data_ptr<float>();
    const float* dop = d_out.defined() ? d_out.data_ptr<float>() : nullptr;
    float* dhp = dh.data_ptr<float>();
    float* dcp = dc.data_ptr<float>();
    float* dgp = dG.data_ptr<float>();
    for (int64_t t = T - 1; t >= 0; --t) {
      at::parallel_for(0, B, grain(H), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          if (t >= L[b]) continue;  // the carried state: dh and dc pass through
          const float* g = G + (t * B + b) * 4 * H;
          const float* c_prev = cp + (t * B + b) * H;
          const float* c_now = cp + ((t + 1) * B + b) * H;
          float* dg = dgp + (t * B + b) * 4 * H;
          float* dh_row = dhp + b * H;
          float* dc_row = dcp + b * H;
          const float* d_out_row = dop ? dop + (b * T + t) * H : nullptr;
          for (int64_t j = 0; j < H; ++j) {
            const float i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
            const float tc = std::tanh(c_now[j]);
            const float dhj = dh_row[j] + (d_out_row ? d_out_row[j] : 0.0f);
            const float dcj = dc_row[j] + dhj * o * (1 - tc * tc);
            dg[j] = dcj * gg * i * (1 - i);
            dg[H + j] = dcj * c_prev[j] * f * (1 - f);
            dg[2 * H + j] = dcj * i * (1 - gg * gg);
            dg[3 * H + j] = dhj * tc * o * (1 - o);
            dc_row[j] = dcj * f;
            dh_row[j] = 0;  // replaced by the gates' share below
          }
        }
      });
      dh.addmm_(dG[t], w_hh);  // rows past their length have zero gate gradients
    }
    const Tensor dg2 = dG.view({T * B, 4 * H});
    const Tensor d_w_ih = dg2.t().mm(xs);
    const Tensor d_w_hh = dg2.t().mm(h.slice(0, 0, T).reshape({T * B, H}));
    const Tensor d_b = dg2.sum(0);
    Tensor dx;
    if (ctx->saved_data["x_grad"].toBool())
      dx = dg2.mm(w_ih).view({T, B, D}).transpose(0, 1);
    return {dx, Tensor(), d_w_ih, d_w_hh, d_b, d_b};
  }
};

}  // namespace

std::pair<torch::Tensor, torch::Tensor> lstm_forward(const torch::Tensor& x,
                                                     const torch::Tensor& lengths,
                                                     const torch::Tensor& w_ih,
                                                     const torch::Tensor& w_hh,
                                                     const torch::Tensor& b_ih,
                                                     const torch::Tensor& b_hh) {
  TORCH_CHECK(x.dim() == 3 && x.is_cpu() && x.scalar_type() == torch::kFloat32,
              "lstm_forward: float32 [B, T, D] on the CPU");
  const auto r = LSTMFunction::apply(x, lengths.cpu(), w_ih, w_hh, b_ih, b_hh);
  return {r[0], r[1]};
}

}  // namespace mmfusion
