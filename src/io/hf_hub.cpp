#include "io/hf_hub.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace ferrum::hub {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

namespace {

bool valid_name_part(const std::string& s) {
  if (s.empty() || s.size() > 96 || s.find("--") != std::string::npos || s.find("..") != std::string::npos) return false;
  if (s.front() == '-' || s.front() == '.' || s.back() == '-' || s.back() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string read_trimmed(const fs::path& p) {
  std::ifstream in(p);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

}  // namespace

bool looks_like_repo_id(const std::string& spec) {
  std::string id = spec.substr(0, spec.find(':'));
  size_t slash = id.find('/');
  if (slash == std::string::npos || id.find('/', slash + 1) != std::string::npos) return false;
  return valid_name_part(id.substr(0, slash)) && valid_name_part(id.substr(slash + 1));
}

RepoRef parse_repo_ref(const std::string& spec) {
  if (!looks_like_repo_id(spec))
    fail("'{}' is not a Hugging Face repo id (expected ORG/NAME or ORG/NAME:REVISION)", spec);
  RepoRef ref;
  size_t colon = spec.find(':');
  ref.repo_id = spec.substr(0, colon);
  if (colon != std::string::npos && looks_like_gguf_quant(spec.substr(colon + 1))) {
    ref.gguf_quant = upper(spec.substr(colon + 1));
  } else if (colon != std::string::npos) {
    ref.revision = spec.substr(colon + 1);
    bool ok = !ref.revision.empty() && ref.revision.size() <= 128 && ref.revision.find("..") == std::string::npos &&
              std::all_of(ref.revision.begin(), ref.revision.end(),
                          [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/'; });
    if (!ok) fail("invalid revision '{}' in '{}'", ref.revision, spec);
  }
  return ref;
}

bool looks_like_gguf_quant(const std::string& tag) {
  const std::string t = upper(tag);
  if (t == "F16" || t == "BF16" || t == "F32") return true;
  size_t i = t.rfind("IQ", 0) == 0 || t.rfind("TQ", 0) == 0 ? 2 : t.rfind('Q', 0) == 0 ? 1 : std::string::npos;
  if (i == std::string::npos || i >= t.size() || !std::isdigit(static_cast<unsigned char>(t[i]))) return false;
  return std::all_of(t.begin() + static_cast<std::ptrdiff_t>(i), t.end(),
                     [](unsigned char c) { return std::isdigit(c) || std::isupper(c) || c == '_'; });
}

std::string pick_gguf_file(const std::vector<std::string>& files, const std::string& quant, const std::string& repo) {
  const std::string q = upper(quant);
  std::vector<std::string> matches;
  std::set<std::string> have;  // the quantizations the repo offers, for the message
  for (const std::string& f : files) {
    const std::string u = upper(f);
    if (u.size() < 5 || u.compare(u.size() - 5, 5, ".GGUF") != 0 || u.find("MMPROJ") != std::string::npos) continue;
    const std::string stem = u.substr(0, u.size() - 5);
    // Words of the name, split at anything but letters, digits and '_'.
    std::vector<std::string> words(1);
    for (char c : stem) {
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') words.back() += c;
      else if (!words.back().empty()) words.emplace_back();
    }
    for (const std::string& w : words)
      if (looks_like_gguf_quant(w)) have.insert(w);
    if (std::find(words.begin(), words.end(), q) != words.end()) matches.push_back(f);
  }
  if (matches.empty())
    fail("{} has no .gguf file of quantization {} (it has: {})", repo, q,
         have.empty() ? std::string("no .gguf files") : fmt::format("{}", fmt::join(have, ", ")));
  std::sort(matches.begin(), matches.end());
  if (matches.front().find("-of-") != std::string::npos)
    fail("{}: {} is split into several files ({}); split GGUF files are not supported yet", repo, q, matches.front());
  return matches.front();
}

std::string cache_dir() {
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env("HF_HOME"); !v.empty()) return (fs::path(v) / "hub").string();
  if (auto v = env("XDG_CACHE_HOME"); !v.empty()) return (fs::path(v) / "huggingface" / "hub").string();
  std::string home = env("HOME");
  if (home.empty()) fail("cannot find the Hugging Face cache: set HF_HOME or HF_HUB_CACHE");
  return (fs::path(home) / ".cache" / "huggingface" / "hub").string();
}

std::string repo_folder_name(const std::string& repo_id) {
  std::string name = "models--" + repo_id;
  size_t slash = name.find('/');
  if (slash != std::string::npos) name.replace(slash, 1, "--");
  return name;
}

std::optional<std::string> find_snapshot(const std::string& cache, const RepoRef& ref) {
  fs::path repo = fs::path(cache) / repo_folder_name(ref.repo_id);
  std::error_code ec;
  std::string commit = ref.revision;
  fs::path ref_file = repo / "refs" / ref.revision;
  if (fs::is_regular_file(ref_file, ec)) commit = read_trimmed(ref_file);
  fs::path snap = repo / "snapshots" / commit;
  if (commit.empty() || !fs::is_directory(snap, ec)) return std::nullopt;
  // An unfinished download (GGUF repos have no config.json: any finished file will do).
  if (!fs::exists(snap / "config.json", ec) && ref.gguf_quant.empty()) return std::nullopt;
  return snap.string();
}

std::vector<CachedRepo> list_cached(const std::string& cache) {
  std::vector<CachedRepo> out;
  std::error_code ec;
  if (!fs::is_directory(cache, ec)) return out;
  for (auto& entry : fs::directory_iterator(cache, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("models--", 0) != 0 || !entry.is_directory()) continue;
    CachedRepo r;
    r.path = entry.path().string();
    std::string folder = name.substr(8);  // ORG--NAME
    size_t sep = folder.find("--");
    r.repo_id = sep == std::string::npos ? folder : fmt::format("{}/{}", folder.substr(0, sep), folder.substr(sep + 2));
    for (auto& blob : fs::directory_iterator(entry.path() / "blobs", ec))
      if (blob.is_regular_file(ec) && blob.path().extension() != ".incomplete") r.size_bytes += blob.file_size(ec);
    for (auto& snap : fs::directory_iterator(entry.path() / "snapshots", ec))
      if (snap.is_directory(ec)) r.snapshots.push_back(snap.path().filename().string());
    for (auto& refp : fs::recursive_directory_iterator(entry.path() / "refs", ec)) {
      if (!refp.is_regular_file(ec)) continue;
      std::string commit = read_trimmed(refp.path());
      r.refs.push_back(fs::relative(refp.path(), entry.path() / "refs", ec).string() + " -> " + commit.substr(0, 12));
    }
    std::sort(r.snapshots.begin(), r.snapshots.end());
    std::sort(r.refs.begin(), r.refs.end());
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const CachedRepo& a, const CachedRepo& b) { return a.repo_id < b.repo_id; });
  return out;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) v /= 1000, ++u;
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string resolve_model(const std::string& spec, bool allow_download) {
  std::error_code ec;
  if (fs::is_directory(spec, ec)) return spec;
  if (fs::is_regular_file(spec, ec)) {
    if (spec.size() > 5 && spec.substr(spec.size() - 5) == ".gguf") return spec;
    fail("'{}' is a file; MODEL must be a model folder (config.json, *.safetensors, tokenizer.json), a .gguf file "
         "or a Hugging Face repo id", spec);
  }
  if (!looks_like_repo_id(spec))
    fail("'{}' is neither a folder nor a Hugging Face repo id (ORG/NAME[:REVISION] or ORG/NAME:QUANT for a GGUF repo)", spec);
  RepoRef ref = parse_repo_ref(spec);
  std::string cache = cache_dir();
  if (!ref.gguf_quant.empty()) {  // a .gguf of the cached snapshot, if there is one
    if (auto snap = find_snapshot(cache, ref)) {
      std::vector<std::string> names;
      std::error_code ec;
      for (auto& e : fs::recursive_directory_iterator(*snap, ec))
        names.push_back(e.path().lexically_relative(*snap).string());  // not relative(): it follows the blob links
      try {
        return (fs::path(*snap) / pick_gguf_file(names, ref.gguf_quant, ref.repo_id)).string();
      } catch (const Error&) {
        // not downloaded yet: fall through
      }
    }
  } else if (auto snap = find_snapshot(cache, ref)) {
    return *snap;
  }
  if (!allow_download) fail("'{}' is not in the Hugging Face cache ({}); run `ferrum pull {}`", spec, cache, spec);
  log::info("{} is not in the cache {}; downloading it", spec, cache);
  DownloadOptions o = default_download_options();
  return download_model(ref, o);
}

}  // namespace ferrum::hub
