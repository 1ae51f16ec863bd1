// Each `ferrum` subcommand lives in its own cmd_*.cpp and registers itself on the app.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace ferrum::cli {

// A subcommand's action: runs after parsing; returns the process exit code.
using Action = std::function<int()>;

// Registers `name` on app and returns the subcommand; the action runs when it is chosen.
CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& help, Action action);

void register_generate(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_chat_template(CLI::App& app);
void register_bench(CLI::App& app);
// `bench serve`, a subcommand of `bench` (main.cpp dispatches only top-level commands, so the
// bench action runs `action` when the returned subcommand was parsed).
CLI::App* register_bench_serve(CLI::App& bench, Action& action);
void register_perplexity(CLI::App& app);
void register_serve(CLI::App& app);
void register_run(CLI::App& app);
void register_pull(CLI::App& app);
void register_list(CLI::App& app);
void register_quantize(CLI::App& app);

// --kv-cache-dtype, shared by serve, run and bench (vLLM's values; models/model.h says what each
// keeps). Not every device takes fp8: the model refuses it at load where it cannot.
inline CLI::Option* add_kv_cache_dtype_option(CLI::App* cmd, std::string& value) {
  return cmd
      ->add_option("--kv-cache-dtype", value,
                   "KV cache element type: auto (the model's type on a GPU, F32 on the CPU) or fp8 / fp8_e4m3 "
                   "(E4M3 with per-tensor scales, twice the tokens per byte; a GPU runs it)")
      ->envname("FERRUM_KV_CACHE_DTYPE")
      ->check(CLI::IsMember({"auto", "fp8", "fp8_e4m3"}))
      ->capture_default_str();
}

// Prints a backtrace on SIGSEGV and other fatal signals (crash_handler.cpp).
void install_crash_handler();

}  // namespace ferrum::cli
