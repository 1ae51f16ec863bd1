// Each `ferrum` subcommand lives in its own cmd_*.cpp and registers itself on the app.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

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

// Prints a backtrace on SIGSEGV and other fatal signals (crash_handler.cpp).
void install_crash_handler();

}  // namespace ferrum::cli
