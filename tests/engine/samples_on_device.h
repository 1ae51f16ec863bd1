// A CPU model that claims device sampling, picking tokens with the CPU reference of
// Backend::sample: the engine's device-sampling path (and its overlapped steps), in CI.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "models/model.h"

namespace ferrum::testing {

inline Tensor host_i32(std::vector<int32_t>& v) {
  Tensor t;
  t.data = v.data();
  t.dtype = DType::I32;
  t.ndim = 1;
  t.shape = {static_cast<int64_t>(v.size()), 0, 0, 0};
  return t;
}

class SamplesOnDevice final : public Model {
 public:
  explicit SamplesOnDevice(std::shared_ptr<Model> m) : m_(std::move(m)) {}
  const ModelConfig& config() const override { return m_->config(); }
  size_t kv_bytes_per_block(int32_t bs) const override { return m_->kv_bytes_per_block(bs); }
  std::unique_ptr<KvCache> create_kv_cache(int32_t n, int32_t bs) override { return m_->create_kv_cache(n, bs); }
  void forward(const ForwardBatch& b, KvCache& c, std::vector<float>& l) override { m_->forward(b, c, l); }
  bool samples_on_device() const override { return true; }
  std::string device_failure() override { return lost_at_collect ? "SamplesOnDevice: lost" : m_->device_failure(); }
  bool can_sample() const override { return true; }
  uint64_t launch_sample(const ForwardBatch& b, KvCache& c, const SampleBatch& s,
                         const std::function<void()>& before_picks) override {
    ForwardBatch with_picks = b;
    if (!b.deferred.empty()) {
      Tensor ids = host_i32(with_picks.token_ids), pairs = host_i32(with_picks.deferred);
      cpu_->take_sampled_tokens(ids, pairs);
      with_picks.deferred.clear();  // resolved here, where the picks are
    }
    std::span<float> logits = m_->forward_view(with_picks, c);
    if (before_picks) before_picks();
    Tensor t;
    t.data = logits.data();
    t.ndim = 2;
    t.shape = {static_cast<int64_t>(s.rows.size()), m_->config().vocab_size, 0, 0};
    return cpu_->start_sample(t, s);
  }
  void collect_sample(uint64_t ticket, SampleResult& out) override {
    if (lost_at_collect) fail("SamplesOnDevice: the device is lost");  // as a GPU's wait for a step reports it
    cpu_->finish_sample(ticket, out);
  }

  std::atomic<bool> lost_at_collect{false};  // collect_sample fails, and device_failure() says so

 private:
  std::shared_ptr<Model> m_;
  std::unique_ptr<Backend> cpu_ = make_cpu_backend(1);
};

}  // namespace ferrum::testing
