// ferrum bench: prefill and decode speed of one sequence on the model directly, then decode
// throughput through the engine at several concurrency levels. Prints tokens/s, TTFT and
// TPOT next to the memory-bandwidth bound (weight bytes per decode step / measured read
// bandwidth).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

#include "backend/backend.h"
#include "cli/commands.h"
#include "models/gguf_model.h"
#include "core/error.h"
#include "io/hf_hub.h"
#include "core/json.h"
#include "core/log.h"
#include "engine/engine.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::cli {
namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct BenchArgs {
  std::string model, dummy, concurrency = "1,4,16";
  int prompt = 128, gen = 64, threads = 0, conc_prompt = 32;
  std::string device = "cpu";
  std::string quantization, kv_cache_dtype = "auto";
  bool json = false;
};

// Read bandwidth of this machine with `threads` threads over a buffer far larger than cache:
// integer sums in four independent chains, so that the loads are the limit (one chain of xors
// read 30-49 GB/s on a 2-core EPYC where four read 57-71, and the AVX-512 Q6_K matmul 60).
double measure_read_bandwidth(int threads) {
  const size_t n = (size_t{1} << 30) / sizeof(uint64_t);  // 1 GiB
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<uint64_t> sums(threads);
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    const size_t chunk = n / threads;
    for (int i = 0; i < threads; ++i)
      ts.emplace_back([&, i] {
        const uint64_t* p = buf.data() + i * chunk;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t j = 0; j + 4 <= chunk; j += 4) s0 += p[j], s1 += p[j + 1], s2 += p[j + 2], s3 += p[j + 3];
        sums[i] = s0 + s1 + s2 + s3;
      });
    for (auto& t : ts) t.join();
    best = std::max(best, static_cast<double>(chunk * threads * sizeof(uint64_t)) / seconds_since(t0) / 1e9);
    if (sums[0] == 1) std::fprintf(stderr, " ");  // keeps the reduction alive
  }
  return best;
}

size_t weight_bytes_per_step(const ModelConfig& c, size_t elem) {
  const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size;
  const int64_t per_layer = H * c.num_attention_heads * D * 2 + H * c.num_key_value_heads * D * 2 + 3 * H * I + 2 * H;
  return static_cast<size_t>(per_layer * c.num_hidden_layers + c.vocab_size * H + H) * elem;
}

// One sequence straight through Model::forward: prefill of `prompt` tokens, then `gen` decodes.
json bench_single(Model& model, int prompt, int gen) {
  const int32_t bs = 16;
  const int32_t blocks = (prompt + gen + bs - 1) / bs + 1;
  auto cache = model.create_kv_cache(blocks, bs);
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model.config().vocab_size - 1));
  ForwardBatch b;
  b.max_blocks_per_seq = blocks;
  for (int32_t i = 0; i < blocks; ++i) b.block_tables.push_back(i);
  std::vector<float> logits;
  auto step = [&](int32_t start, int32_t count) {
    b.token_ids.clear(), b.positions.clear(), b.slot_mapping.clear();
    for (int32_t i = 0; i < count; ++i) {
      b.token_ids.push_back(tok(rng));
      b.positions.push_back(start + i);
      b.slot_mapping.push_back(start + i);
    }
    b.query_start = {0, count};
    b.seq_lens = {start + count};
    b.logits_indices = {count - 1};
    model.forward(b, *cache, logits);
  };
  step(0, prompt);  // warm-up: buffers and kernels of this shape (the timed run reuses them)
  auto t0 = Clock::now();
  step(0, prompt);
  const double prefill_s = seconds_since(t0);
  std::vector<double> tpot;
  for (int i = 0; i < gen; ++i) {
    auto t = Clock::now();
    step(prompt + i, 1);
    tpot.push_back(seconds_since(t));
  }
  std::sort(tpot.begin(), tpot.end());
  const double mean = std::accumulate(tpot.begin(), tpot.end(), 0.0) / tpot.size();
  return {{"prompt_tokens", prompt}, {"prefill_s", prefill_s}, {"prefill_tok_s", prompt / prefill_s},
          {"decode_tokens", gen}, {"tpot_ms_median", tpot[tpot.size() / 2] * 1e3},
          {"decode_tok_s", 1.0 / mean}};
}

// C requests at once through the engine; decode throughput = generated tokens / wall time.
json bench_engine(std::shared_ptr<Model> model, int conc, int prompt, int gen) {
  EngineOptions eo;
  eo.max_num_seqs = std::max(conc, 1);
  eo.num_kv_blocks = conc * ((prompt + gen) / eo.block_size + 2);
  eo.enable_prefix_caching = false;
  auto engine = Engine::create(model, nullptr, eo);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model->config().vocab_size - 1));
  SamplingParams sp;
  sp.temperature = 0;
  sp.max_tokens = gen;
  sp.ignore_eos = true;
  auto t0 = Clock::now();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int c = 0; c < conc; ++c) {
    std::vector<int32_t> ids(prompt);
    for (auto& i : ids) i = tok(rng);
    streams.push_back(engine->submit(ids, sp));
  }
  // One reader per stream, so that each request's first token is timed when it comes out
  // (draining the streams in turn would time request k only after request k-1 ended).
  std::vector<double> ttft(conc, 0.0);
  std::vector<int64_t> counts(conc, 0);
  std::vector<std::string> errors(conc);
  std::vector<std::thread> readers;
  for (int c = 0; c < conc; ++c)
    readers.emplace_back([&, c] {
      while (auto out = streams[c]->next()) {
        for (const auto& d : out->deltas) {
          if (counts[c] == 0 && !d.token_ids.empty()) ttft[c] = seconds_since(t0);
          counts[c] += static_cast<int64_t>(d.token_ids.size());
          if (d.finish_reason == FinishReason::Error) errors[c] = d.error;
        }
      }
    });
  for (auto& r : readers) r.join();
  for (const auto& e : errors)
    if (!e.empty()) fail("bench request failed: {}", e);
  const int64_t generated = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  const double wall = seconds_since(t0);
  engine->shutdown();
  const double ttft_mean = std::accumulate(ttft.begin(), ttft.end(), 0.0) / conc;
  return {{"concurrency", conc}, {"prompt_tokens", prompt}, {"generated_tokens", generated}, {"wall_s", wall},
          {"output_tok_s", generated / wall}, {"ttft_ms_mean", ttft_mean * 1e3},
          {"tpot_ms_mean", (wall - ttft_mean) / std::max(1, gen - 1) * 1e3}};
}

int run_bench(const BenchArgs& a) {
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::thread::hardware_concurrency());
  auto t0 = Clock::now();
  const std::string path = a.dummy.empty() ? hub::resolve_model(a.model) : a.model;  // or a hub reference
  std::shared_ptr<Model> model =
      a.dummy.empty() ? load_model(path, threads, a.device, a.quantization, a.kv_cache_dtype)
                      : load_model_dummy(path, a.dummy, threads, a.device, a.quantization, a.kv_cache_dtype);
  const double load_s = seconds_since(t0);
  const ModelConfig& c = model->config();
  const std::string dtype = !a.dummy.empty() ? a.dummy : c.torch_dtype;
  const size_t elem = dtype == "float32" || dtype == "f32" ? 4 : 2;
  const bool gpu = a.device != "cpu";
  const double bw = gpu ? cuda_read_bandwidth_gbs(cuda_device_index(a.device))
                        : measure_read_bandwidth(threads);
  size_t bytes = model->weight_bytes_per_step() ? model->weight_bytes_per_step() : weight_bytes_per_step(c, elem);
  std::string weights = c.quantization.method.empty() ? dtype : c.quantization.method + " (" + dtype + " others)";
  if (a.quantization == "fp8") weights = "fp8 at load (" + dtype + " others)";
  if (is_gguf_path(path)) {  // what the file holds: every tensor but the embedding is read
    const auto g = GgufFile::open(path);
    if (!model->weight_bytes_per_step()) {
      bytes = 0;
      for (const GgufTensor& t : g->tensors())
        if (t.name != "token_embd.weight" || !g->find("output.weight")) bytes += t.nbytes;
    }
    weights = "GGUF file type " + std::to_string(g->get_int("general.file_type", -1));
  }
  json result = {{"model", a.model}, {"architecture", c.architecture}, {"weights_dtype", weights},
                 {"device", a.device}, {"threads", threads}, {"load_s", load_s}, {"read_bandwidth_GBs", bw},
                 {"weight_bytes_per_token", bytes}, {"decode_bound_tok_s", bw * 1e9 / bytes},
                 {"kv_cache_dtype", dtype_name(model->kv_cache_dtype())}};
  result["single"] = bench_single(*model, a.prompt, a.gen);
  std::stringstream ss(a.concurrency);
  std::string item;
  result["engine"] = json::array();
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    result["engine"].push_back(bench_engine(model, std::stoi(item), a.conc_prompt, a.gen));
  }
  if (a.json) {
    std::printf("%s\n", result.dump(2).c_str());
    return 0;
  }
  const json& s = result["single"];
  if (gpu) std::printf("model %s (%s, %s weights), %s\n", a.model.c_str(), c.architecture.c_str(), weights.c_str(), a.device.c_str());
  else std::printf("model %s (%s, %s weights), %d threads\n", a.model.c_str(), c.architecture.c_str(), weights.c_str(), threads);
  std::printf("KV cache %s\n", dtype_name(model->kv_cache_dtype()));
  std::printf("read bandwidth %.1f GB/s; %.2f GB of weights per decode step -> bound %.1f tok/s\n", bw, bytes / 1e9,
              bw * 1e9 / bytes);
  std::printf("prefill %d tokens: %.1f tok/s (TTFT %.0f ms)\n", a.prompt, s["prefill_tok_s"].get<double>(),
              s["prefill_s"].get<double>() * 1e3);
  std::printf("decode  %d tokens: %.1f tok/s (TPOT median %.1f ms), %.0f%% of the bandwidth bound\n", a.gen,
              s["decode_tok_s"].get<double>(), s["tpot_ms_median"].get<double>(),
              100.0 * s["decode_tok_s"].get<double>() / (bw * 1e9 / bytes));
  for (const auto& e : result["engine"])
    std::printf("engine concurrency %3d: %.1f output tok/s (TTFT mean %.0f ms, TPOT mean %.1f ms)\n",
                e["concurrency"].get<int>(), e["output_tok_s"].get<double>(), e["ttft_ms_mean"].get<double>(),
                e["tpot_ms_mean"].get<double>());
  return 0;
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  struct Serve {
    CLI::App* app = nullptr;
    Action action;
  };
  auto serve = std::make_shared<Serve>();
  auto* cmd = add_command(app, "bench", "Measure prefill/decode speed and batched throughput",
                          [a, serve] { return serve->app->parsed() ? serve->action() : run_bench(*a); });
  // Required unless `bench serve` was given; checked after parsing, with CLI11's own error.
  auto* model = cmd->add_option("-m,--model", a->model, "Model folder (config.json; weights unless --dummy)");
  cmd->add_option("--dummy", a->dummy, "Random weights of this dtype (bf16, f16, f32) instead of the files");
  cmd->add_option("-p,--prompt-tokens", a->prompt, "Prompt length for the prefill measurement")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("-n,--gen-tokens", a->gen, "Tokens to decode")->check(CLI::Range(2, 1 << 16));
  cmd->add_option("-c,--concurrency", a->concurrency, "Comma-separated concurrency levels for the engine run ('' = skip)");
  cmd->add_option("--concurrent-prompt-tokens", a->conc_prompt, "Prompt length of each concurrent request");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_option("--quantization", a->quantization, "Quantize dense weights at load: fp8 (E4M3, per-channel scales; a GPU runs it)")->check(CLI::IsMember({"none", "fp8"}));
  add_kv_cache_dtype_option(cmd, a->kv_cache_dtype);
  cmd->add_option("--device", a->device, "Where the model runs: cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print the results as JSON");
  serve->app = register_bench_serve(*cmd, serve->action);
  cmd->callback([serve, model] {
    if (!serve->app->parsed() && model->count() == 0) throw CLI::RequiredError(model->get_name());
  });
}

}  // namespace ferrum::cli
