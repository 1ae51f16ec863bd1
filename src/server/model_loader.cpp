#include "server/model_loader.h"

#include "models/gguf_model.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "chat/chat_template.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hf_hub.h"
#include "models/model.h"
#include "server/template_chat.h"
#include "tokenizer/tokenizer.h"
#include "engine/spec_setup.h"

namespace ferrum::server {

size_t parse_byte_size(const std::string& text) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    fail("'{}' is not a size (e.g. 4GiB, 512MiB, 2G)", text);
  }
  std::string unit = text.substr(pos);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb") mult = 1e3;
  else if (unit == "m" || unit == "mb") mult = 1e6;
  else if (unit == "g" || unit == "gb") mult = 1e9;
  else if (unit == "kib") mult = 1024.0;
  else if (unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "gib") mult = 1024.0 * 1024 * 1024;
  else fail("unknown size unit '{}' in '{}' (use B, KB, MB, GB, KiB, MiB or GiB)", unit, text);
  double bytes = value * mult;
  if (!std::isfinite(bytes) || bytes <= 0 || bytes > 1e15) fail("size '{}' is out of range", text);
  return static_cast<size_t>(bytes);
}

namespace {

// Reads the weight files once with a progress bar (terminals only, models over 256 MB), so
// that the loader's own reads then come from the page cache: on a cold disk this read is
// where the time goes, and the user sees it move.
void read_weights_with_progress(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!isatty(STDERR_FILENO)) return;
  std::vector<fs::path> files;
  uint64_t total = 0;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") files.push_back(e.path()), total += e.file_size(ec);
  if (total < (256ull << 20)) return;
  std::vector<char> buf(8u << 20);
  uint64_t done = 0;
  auto last = std::chrono::steady_clock::now();
  for (auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
      done += static_cast<uint64_t>(n);
      auto now = std::chrono::steady_clock::now();
      if (now - last > std::chrono::milliseconds(200) || done == total) {
        last = now;
        int filled = static_cast<int>(30 * done / total);
        std::fprintf(stderr, "\rreading weights [%-30s] %5.1f%% %s / %s ", std::string(filled, '#').c_str(),
                     100.0 * double(done) / double(total), hub::human_bytes(done).c_str(), hub::human_bytes(total).c_str());
      }
    }
    ::close(fd);
  }
  std::fprintf(stderr, "\n");
}

size_t auto_kv_cache_bytes(const Model& model, const ModelLoadOptions& o) {
  const int gpu = cuda_device_index(o.device);
  if (gpu < 0) return 512ull << 20;
  const int32_t block = o.engine.block_size;
  const int64_t len = o.engine.max_model_len > 0 ? o.engine.max_model_len : model.config().max_position_embeddings;
  const size_t wanted = static_cast<size_t>(o.engine.max_num_seqs) * static_cast<size_t>((len + block - 1) / block) *
                        model.kv_bytes_per_block(block);
  // Leave room for one step's activations (the largest prefill), its logits and cuBLAS/graphs.
  const ModelConfig& c = model.config();
  const size_t per_token = 4 * static_cast<size_t>(4 * c.hidden_size + 2 * c.intermediate_size +
                                                    (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim);
  const size_t reserve = static_cast<size_t>(o.engine.max_num_batched_tokens) * per_token * 5 / 4 +
                         static_cast<size_t>(o.engine.max_num_seqs) * c.vocab_size * 4 * 2 + (1ull << 30);
  const size_t free = cuda_free_memory(gpu);
  const size_t room = free > reserve ? static_cast<size_t>(0.9 * static_cast<double>(free - reserve)) : 0;
  if (room == 0) fail("not enough GPU memory left for a KV cache after the weights ({} free)", hub::human_bytes(free));
  const size_t bytes = std::min(wanted, room);
  log::info("KV cache: {} of GPU memory ({} free; --kv-cache-memory sets it)", hub::human_bytes(bytes),
            hub::human_bytes(free));
  return bytes;
}

}  // namespace

void default_engine_limits(const std::string& device, int* max_num_seqs, int* max_num_batched_tokens) {
  const bool gpu = cuda_device_index(device) >= 0;
  const bool seqs = *max_num_seqs == 0, tokens = *max_num_batched_tokens == 0;
  if (seqs) *max_num_seqs = gpu ? 256 : 64;
  // On the CPU, 128 tokens per core (256 to 2048): a step of new prompts then takes about a
  // second, so a burst of arrivals gets its first tokens in turn instead of all after one long
  // prefill (2-core EPYC, 16 x 64-token prompts: TTFT p50 3.8 s at 2048, 1.9 s at 256).
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (tokens) *max_num_batched_tokens = gpu ? 8192 : std::clamp(128 * cores, 256, 2048);
  if (seqs || tokens)
    log::info("{} defaults: max_num_seqs {}{}, max_num_batched_tokens {}{}", gpu ? "GPU" : "CPU", *max_num_seqs,
              seqs ? "" : " (set)", *max_num_batched_tokens, tokens ? "" : " (set)");
}

namespace {

// The memory the kernel says can still be had without swapping (MemAvailable), or 0 if unknown.
uint64_t available_host_memory() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}

// Creates the engine, whose KV cache is the one large allocation of start-up: when it cannot
// be had, the error says so and names the flag that sizes it.
std::shared_ptr<Engine> create_engine(std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                                      const EngineOptions& options, const std::string& device) {
  const bool gpu = cuda_device_index(device) >= 0;
  const uint64_t available = gpu ? 0 : available_host_memory();
  if (!gpu && available > 0 && options.kv_cache_bytes > available)
    fail("the KV cache of {} does not fit in the memory available ({}): lower --kv-cache-memory",
         hub::human_bytes(options.kv_cache_bytes), hub::human_bytes(available));
  try {
    return std::shared_ptr<Engine>(Engine::create(std::move(model), std::move(tokenizer), options));
  } catch (const std::bad_alloc&) {
    fail("out of memory allocating the KV cache of {} on {}: lower --kv-cache-memory (or --max-num-seqs)",
         hub::human_bytes(options.kv_cache_bytes), device);
  } catch (const Error& e) {
    if (std::string(e.what()).find("out of memory") == std::string::npos) throw;
    fail("{} while allocating the KV cache of {} on {}: lower --kv-cache-memory (or --max-num-seqs)", e.what(),
         hub::human_bytes(options.kv_cache_bytes), device);
  }
}

}  // namespace

std::shared_ptr<ServingContext> load_serving_context(const ModelLoadOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  std::string dir = hub::resolve_model(o.model);
  log::info("loading {} from {}", o.model, dir);
  if (cuda_device_index(o.device) >= 0 && !cuda_available())  // before reading gigabytes
    fail("--device {}: no CUDA device is available (no GPU or driver, or ferrum was built without CUDA)", o.device);
  const bool gguf = is_gguf_path(dir);
  auto tokenizer = std::shared_ptr<const Tokenizer>(load_tokenizer(dir));
  std::shared_ptr<Model> model;
  if (o.dummy.empty()) {
    if (!gguf) read_weights_with_progress(dir);
    model = load_model(dir, o.threads, o.device, o.quantization, o.kv_cache_dtype);
  } else {
    log::info("random {} weights filled in place (--dummy): outputs are meaningless", o.dummy);
    model = load_model_dummy(dir, o.dummy, o.threads, o.device, o.quantization, o.kv_cache_dtype);
  }
  EngineOptions engine_options = o.engine;
  if (!o.spec_draft.empty()) {
    if (o.dummy.empty()) {
      engine_options.speculative.draft = load_draft_model(o.spec_draft, *tokenizer, o.threads, o.device);
    } else {
      const std::string draft_dir = hub::resolve_model(o.spec_draft);
      check_draft_vocabulary(*tokenizer, *load_tokenizer(draft_dir), o.spec_draft);
      engine_options.speculative.draft = load_model_dummy(draft_dir, o.dummy, o.threads, o.device, o.quantization);
    }
  }
  if (o.kv_cache_auto) engine_options.kv_cache_bytes = auto_kv_cache_bytes(*model, o);
  if (const auto& draft = engine_options.speculative.draft) {
    // The draft's KV cache has as many blocks as the target's: the memory is shared out so
    // that both fit in it.
    const double t = static_cast<double>(model->kv_bytes_per_block(engine_options.block_size));
    const double d = static_cast<double>(draft->kv_bytes_per_block(engine_options.block_size));
    engine_options.kv_cache_bytes = static_cast<size_t>(static_cast<double>(engine_options.kv_cache_bytes) * t / (t + d));
    log::info("speculative decoding: {:.1f} MiB of the KV cache memory for the target's blocks, the rest for the "
              "draft's", static_cast<double>(engine_options.kv_cache_bytes) / (1 << 20));
  }

  auto ctx = std::make_shared<ServingContext>();
  ctx->tokenizer = tokenizer;
  try {
    auto from_model = [&] {
      if (!gguf) return chat::ChatTemplate::from_model_dir(dir);
      const auto g = GgufFile::open(dir);
      return chat::ChatTemplate(gguf_chat_templates(*g), gguf_special_tokens(*g));
    };
    chat::ChatTemplate tmpl = o.chat_template_file.empty() ? from_model()
                                                           : chat::ChatTemplate::from_file(o.chat_template_file, gguf ? "" : dir);
    bool reasoning = tokenizer->token_to_id("<think>").has_value() && tokenizer->token_to_id("</think>").has_value();
    // The tool-call syntax a model was trained on shows in its special tokens.
    chat::ToolCallFormat tools = chat::ToolCallFormat::None;
    if (tokenizer->token_to_id("<tool_call>")) tools = chat::ToolCallFormat::Hermes;
    else if (tokenizer->token_to_id("[TOOL_CALLS]")) tools = chat::ToolCallFormat::Mistral;
    else if (tokenizer->token_to_id("<|python_tag|>")) tools = chat::ToolCallFormat::Llama3Json;
    ctx->chat = std::make_shared<TemplateChatFormatter>(std::move(tmpl), reasoning, tools);
  } catch (const Error& e) {
    if (!o.chat_template_file.empty()) throw;
    log::warn("no chat template ({}); /v1/chat/completions is off, /v1/completions works", e.what());
  }
  ctx->engine = create_engine(model, tokenizer, engine_options, o.device);
  ctx->max_model_len = ctx->engine->max_model_len();
  ctx->model_names = o.served_names.empty() ? std::vector<std::string>{o.model} : o.served_names;
  ctx->created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info("loaded {} in {:.1f} s (context {} tokens)", o.model, secs, ctx->max_model_len);
  return ctx;
}

}  // namespace ferrum::server
