// CudaBackend's sampling: row parameters up, picks and logprobs back, double-buffered host
// staging per ticket so that overlapped steps can queue the next step's sampling.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ferrum {

uint64_t CudaBackend::start_sample(Tensor& logits, const SampleBatch& batch) {
  use_device();
  const int64_t R = static_cast<int64_t>(batch.rows.size()), E = static_cast<int64_t>(batch.edits.size());
  const uint64_t ticket = next_ticket_++;
  PendingSample& slot = pending_[ticket % 2];
  slot.rows = R;
  slot.top = false;
  if (!slot.done) check(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming), "sample event");
  if (R == 0) {  // nothing to pick; the ticket still marks the end of the work queued so far
    check(cudaEventRecord(slot.done, stream_), "sample event");
    return ticket;
  }
  const int64_t V = logits.cols();
  FERRUM_CHECK(logits.dtype == DType::F32 && logits.rows() >= R, "sample: logits {} for {} rows", logits.shape_str(), R);
  for (const LogitEdit& e : batch.edits)
    FERRUM_CHECK(e.token >= 0 && e.token < V, "sample: edit of token {} outside [0, {})", e.token, V);
  const int32_t M = batch.num_masks();
  for (const SampleRow& r : batch.rows) {
    FERRUM_CHECK(r.mask < M && (r.mask < 0 || batch.mask_words * int64_t{32} >= V),
                 "sample: a row names mask {} of {} ({} words for {} tokens)", r.mask, M, batch.mask_words, V);
    slot.top |= r.num_logprobs > 0;
  }
  // In: rows, edits, masks (each a multiple of 4 bytes; rows of 8).
  const size_t row_bytes = R * sizeof(SampleRow), edit_bytes = E * sizeof(LogitEdit);
  const size_t mask_bytes = static_cast<size_t>(M) * batch.mask_words * sizeof(uint32_t);
  const size_t in_bytes = row_bytes + edit_bytes + mask_bytes;
  // Device out: tokens, logprobs, top ids, top logprobs, then the edits' raw values.
  const size_t top_bytes = R * kMaxTopLogprobs * 4;
  const size_t out_bytes = R * 8 + 2 * top_bytes + E * 4;
  grow(slot.in_host, in_bytes, true);
  grow(sample_in_, in_bytes, false);
  grow(slot.out_host, R * 8 + 2 * top_bytes, true);
  grow(sample_out_, out_bytes, false);
  auto* in = static_cast<uint8_t*>(slot.in_host.data);
  std::memcpy(in, batch.rows.data(), row_bytes);
  if (E) std::memcpy(in + row_bytes, batch.edits.data(), edit_bytes);
  if (mask_bytes) std::memcpy(in + row_bytes + edit_bytes, batch.masks.data(), mask_bytes);
  check(cudaMemcpyAsync(sample_in_.data, in, in_bytes, cudaMemcpyHostToDevice, stream_), "sample inputs");
  auto* dev_in = static_cast<uint8_t*>(sample_in_.data);
  auto* dev_out = static_cast<uint8_t*>(sample_out_.data);
  if (!(splits_rows(batch, V) &&
        cuda::sample_split(logits.ptr<float>(), R, V, reinterpret_cast<const SampleRow*>(dev_in),
                           split_scratch(V), reinterpret_cast<int32_t*>(dev_out), stream_)))
    cuda::sample(logits.ptr<float>(), R, V, reinterpret_cast<const SampleRow*>(dev_in),
                 reinterpret_cast<const LogitEdit*>(dev_in + row_bytes),
                 reinterpret_cast<const uint32_t*>(dev_in + row_bytes + edit_bytes), batch.mask_words,
                 reinterpret_cast<float*>(dev_out + R * 8 + 2 * top_bytes), reinterpret_cast<int32_t*>(dev_out),
                 reinterpret_cast<float*>(dev_out + R * 4), reinterpret_cast<int32_t*>(dev_out + R * 8),
                 reinterpret_cast<float*>(dev_out + R * 8 + top_bytes), stream_);
  launched("sample");
  latest_rows_ = R;
  const size_t back = slot.top ? R * 8 + 2 * top_bytes : R * 8;
  check(cudaMemcpyAsync(slot.out_host.data, dev_out, back, cudaMemcpyDeviceToHost, stream_), "sample outputs");
  check(cudaEventRecord(slot.done, stream_), "sample event");
  return ticket;
}

void CudaBackend::finish_sample(uint64_t ticket, SampleResult& out) {
  use_device();
  FERRUM_CHECK(ticket + 2 >= next_ticket_ && ticket < next_ticket_, "finish_sample: ticket {} is not outstanding",
               ticket);
  const PendingSample& slot = pending_[ticket % 2];
  const int64_t R = slot.rows;
  out.tokens.clear();
  out.logprobs.clear();
  out.top_ids.clear();
  out.top_logprobs.clear();
  check(cudaEventSynchronize(slot.done), "sample");  // this ticket's picks, not the work after them
  if (R == 0) return;
  const auto* host = static_cast<const uint8_t*>(slot.out_host.data);
  const size_t top_bytes = R * kMaxTopLogprobs * 4;
  out.tokens.assign(reinterpret_cast<const int32_t*>(host), reinterpret_cast<const int32_t*>(host) + R);
  out.logprobs.assign(reinterpret_cast<const float*>(host + R * 4), reinterpret_cast<const float*>(host + R * 4) + R);
  if (slot.top) {
    out.top_ids.assign(reinterpret_cast<const int32_t*>(host + R * 8),
                       reinterpret_cast<const int32_t*>(host + R * 8) + R * kMaxTopLogprobs);
    out.top_logprobs.assign(reinterpret_cast<const float*>(host + R * 8 + top_bytes),
                            reinterpret_cast<const float*>(host + R * 8 + top_bytes) + R * kMaxTopLogprobs);
  }
}

void CudaBackend::take_sampled_tokens(Tensor& ids, const Tensor& pairs) {
  use_device();
  const int64_t n = pairs.numel() / 2;
  if (n == 0) return;
  FERRUM_CHECK(latest_rows_ > 0, "take_sampled_tokens: nothing was sampled");
  cuda::take_picks(ids.ptr<int32_t>(), ids.numel(), pairs.ptr<int32_t>(), n,
                   static_cast<const int32_t*>(sample_out_.data), latest_rows_, stream_);
  launched("take_picks");
}

// A few plain rows (cuda::sample_split): greedy, or the temperature alone, with nothing to
// report or edit. FERRUM_SAMPLE_SPLIT=N: up to N rows (at most kSampleSplitMaxRows; 0: one
// block per row always, to compare). Default 16: on an H200 one row went from 394.3 to 406.8
// served tok/s (Llama-3.1-8B Q4_K_M, temperature 1) and 404.5 to 412.9 greedy in the engine;
// at 64 rows a block per row already fills 64 SMs and the split was not better.
bool CudaBackend::splits_rows(const SampleBatch& batch, int64_t vocab) {
  static const int64_t max_rows = [] {
    const char* v = std::getenv("FERRUM_SAMPLE_SPLIT");
    return std::clamp<int64_t>(v ? std::atoll(v) : 16, 0, cuda::kSampleSplitMaxRows);
  }();
  if (static_cast<int64_t>(batch.rows.size()) > max_rows) return false;
  for (const SampleRow& r : batch.rows) {
    const bool plain_draw = (r.top_k <= 0 || r.top_k >= vocab) && r.top_p >= 1.0f && r.min_p <= 0.0f;
    if (r.num_logprobs >= 0 || r.edits_end > r.edits_begin || r.mask >= 0 ||
        !(r.temperature < kGreedyTemperature || plain_draw))
      return false;
  }
  return true;
}

void* CudaBackend::split_scratch(int64_t vocab) {
  const size_t bytes = cuda::sample_split_scratch_bytes(vocab);
  if (sample_split_.nbytes() < bytes) {
    if (!sample_split_.empty()) synchronize();
    sample_split_ = alloc({static_cast<int64_t>(bytes)}, DType::U8);
    check(cudaMemsetAsync(sample_split_.data, 0, bytes, stream_), "sample scratch");  // the tickets
  }
  return sample_split_.data;
}

void CudaBackend::grow(Tensor& t, size_t bytes, bool host) {
  if (t.nbytes() >= bytes) return;
  if (!t.empty()) synchronize();  // queued copies may still use it
  const int64_t n = static_cast<int64_t>(bytes + bytes / 2 + 256);
  t = host ? alloc_host({n}, DType::U8) : alloc({n}, DType::U8);
}

}  // namespace ferrum
