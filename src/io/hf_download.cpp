// Downloads a model repo from the Hugging Face hub (or any server with its endpoints, see
// HF_ENDPOINT) into the hub cache layout, with libcurl: resumable, authenticated, with a
// progress bar.
#include <curl/curl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "io/hf_hub.h"

namespace fs = std::filesystem;

namespace ferrum::hub {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The files a model needs; everything else (other weight formats, ONNX, images) is skipped.
bool wanted(const std::string& name) {
  if (name.find('/') != std::string::npos) return false;  // subfolders hold other formats
  auto ends = [&](const char* suffix) {
    size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
  };
  return ends(".json") || ends(".safetensors") || ends(".jinja") || ends(".txt") || ends(".model") || ends(".tiktoken");
}

struct Curl {
  CURL* h;
  curl_slist* headers = nullptr;
  Curl() : h(curl_easy_init()) {
    if (!h) fail("cannot initialise libcurl");
  }
  ~Curl() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
  }
};

void common_setup(Curl& c, const std::string& url, const std::string& token) {
  curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.h, CURLOPT_USERAGENT, "ferrum/0.1");
  curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT, 30L);
  // Abort a transfer that stalls (under 1 byte/s for 60 s) instead of hanging forever.
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_TIME, 60L);
  if (!token.empty()) c.headers = curl_slist_append(c.headers, ("Authorization: Bearer " + token).c_str());
  if (c.headers) curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, c.headers);
}

size_t to_string(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string status_hint(long status, const std::string& what) {
  if (status == 401 || status == 403)
    return fmt::format("{}: HTTP {} (a gated or private repo? set HF_TOKEN to a token with access)", what, status);
  if (status == 404) return fmt::format("{}: not found (HTTP 404): check the repo id and revision", what);
  return fmt::format("{}: HTTP {}", what, status);
}

json fetch_json(const std::string& url, const std::string& token) {
  Curl c;
  std::string body;
  common_setup(c, url, token);
  curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, to_string);
  curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(c.h);
  if (rc != CURLE_OK) fail("cannot reach {}: {}", url, curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) fail("{}", status_hint(status, url));
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("{} did not return a JSON object", url);
  return j;
}

// HEAD without following redirects: the hub answers with the blob's ETag (X-Linked-Etag for
// files stored in LFS, whose content lives elsewhere) and X-Repo-Commit.
struct FileInfo {
  std::string etag, commit;
  long status = 0;
};

size_t capture_header(char* data, size_t size, size_t n, void* out) {
  auto* info = static_cast<FileInfo*>(out);
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon);
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string value = line.substr(colon + 1);
  auto trim = [](std::string& s) {
    s.erase(0, s.find_first_not_of(" \t\"W/"));
    while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) || s.back() == '"')) s.pop_back();
  };
  trim(value);
  if (name == "x-linked-etag" || (name == "etag" && info->etag.empty())) info->etag = value;
  if (name == "x-repo-commit") info->commit = value;
  return size * n;
}

FileInfo head_file(const std::string& url, const std::string& token) {
  Curl c;
  FileInfo info;
  common_setup(c, url, token);
  curl_easy_setopt(c.h, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c.h, CURLOPT_HEADERFUNCTION, capture_header);
  curl_easy_setopt(c.h, CURLOPT_HEADERDATA, &info);
  CURLcode rc = curl_easy_perform(c.h);
  if (rc != CURLE_OK) fail("cannot reach {}: {}", url, curl_easy_strerror(rc));
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &info.status);
  if (info.status >= 400) fail("{}", status_hint(info.status, url));
  return info;
}

struct Progress {
  std::string name;
  curl_off_t resumed = 0;
  bool enabled = true;
  std::chrono::steady_clock::time_point last{};
};

int on_progress(void* p, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* pr = static_cast<Progress*>(p);
  if (!pr->enabled) return 0;
  auto t = std::chrono::steady_clock::now();
  bool done = total > 0 && now == total;
  if (!done && t - pr->last < std::chrono::milliseconds(200)) return 0;
  pr->last = t;
  curl_off_t all = total + pr->resumed, have = now + pr->resumed;
  int width = 30;
  int filled = all > 0 ? static_cast<int>(width * have / all) : 0;
  std::fprintf(stderr, "\r%-40.40s [%-*s] %5.1f%% %s / %s ", pr->name.c_str(), width,
               std::string(static_cast<size_t>(filled), '#').c_str(), all > 0 ? 100.0 * have / all : 0.0,
               human_bytes(static_cast<uint64_t>(have)).c_str(), human_bytes(static_cast<uint64_t>(all)).c_str());
  return 0;
}

// GETs url (following redirects) into `part`, appending from its current size.
void fetch_to_file(const std::string& url, const std::string& token, const fs::path& part, const std::string& label,
                   bool progress) {
  std::error_code ec;
  curl_off_t have = fs::exists(part, ec) ? static_cast<curl_off_t>(fs::file_size(part, ec)) : 0;
  FILE* f = std::fopen(part.c_str(), "ab");
  if (!f) fail("cannot write {}", part.string());
  Curl c;
  common_setup(c, url, token);
  Progress pr{label, have, progress && isatty(STDERR_FILENO), {}};
  curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, nullptr);  // fwrite
  curl_easy_setopt(c.h, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(c.h, CURLOPT_FAILONERROR, 1L);
  if (have > 0) curl_easy_setopt(c.h, CURLOPT_RESUME_FROM_LARGE, have);
  curl_easy_setopt(c.h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c.h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c.h, CURLOPT_XFERINFODATA, &pr);
  CURLcode rc = curl_easy_perform(c.h);
  long status = 0;
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &status);
  std::fclose(f);
  if (pr.enabled) std::fprintf(stderr, "\n");
  if (rc == CURLE_RANGE_ERROR || (have > 0 && status == 200)) {
    // The server ignored the range: the file restarts from scratch next time.
    fs::remove(part, ec);
    fail("{}: the server cannot resume this download; run the command again to restart it", label);
  }
  if (rc != CURLE_OK)
    fail("downloading {} failed: {}{} (the partial file is kept; run again to resume)", label, curl_easy_strerror(rc),
         status ? fmt::format(" (HTTP {})", status) : "");
}

std::string default_token() {
  if (auto t = env("HF_TOKEN"); !t.empty()) return t;
  if (auto t = env("HUGGING_FACE_HUB_TOKEN"); !t.empty()) return t;
  std::string path = env("HF_TOKEN_PATH");
  if (path.empty()) {
    std::string home = env("HF_HOME");
    if (home.empty() && !env("HOME").empty()) home = env("HOME") + "/.cache/huggingface";
    if (!home.empty()) path = home + "/token";
  }
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  return token;
}

}  // namespace

DownloadOptions default_download_options() {
  DownloadOptions o;
  o.endpoint = env("HF_ENDPOINT");
  if (o.endpoint.empty()) o.endpoint = "https://huggingface.co";
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  o.token = default_token();
  o.cache = cache_dir();
  return o;
}

std::string download_model(const RepoRef& ref, const DownloadOptions& options) {
  global_init();
  std::string endpoint = options.endpoint.empty() ? default_download_options().endpoint : options.endpoint;
  std::string cache = options.cache.empty() ? cache_dir() : options.cache;
  json info = fetch_json(fmt::format("{}/api/models/{}/revision/{}", endpoint, ref.repo_id, ref.revision), options.token);
  std::string commit = info.value("sha", std::string());
  if (commit.empty() || commit.find('/') != std::string::npos || commit.find("..") != std::string::npos)
    fail("the hub did not give a valid commit for {}:{}", ref.repo_id, ref.revision);
  std::vector<std::string> files, all;
  for (auto& s : info.value("siblings", json::array()))
    if (s.is_object() && s.contains("rfilename") && s["rfilename"].is_string()) all.push_back(s["rfilename"]);
  if (!ref.gguf_quant.empty()) {  // one self-contained .gguf file
    files.push_back(pick_gguf_file(all, ref.gguf_quant, ref.repo_id));
    if (files.front().find("..") != std::string::npos || files.front().front() == '/')
      fail("{}: the hub gave an unsafe file name '{}'", ref.repo_id, files.front());
  } else {
    for (const std::string& f : all)
      if (wanted(f)) files.push_back(f);
    if (std::find(files.begin(), files.end(), "config.json") == files.end())
      fail("{}:{} has no config.json: not a Transformers model ferrum can load (for a GGUF repo, name the "
           "quantization: {}:Q4_K_M)", ref.repo_id, ref.revision, ref.repo_id);
  }

  fs::path repo = fs::path(cache) / repo_folder_name(ref.repo_id);
  fs::path blobs = repo / "blobs", snapshot = repo / "snapshots" / commit;
  fs::create_directories(blobs);
  fs::create_directories(snapshot);
  log::info("downloading {} ({} files) at {} into {}", ref.repo_id, files.size(), commit.substr(0, 12), repo.string());
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& name = files[i];
    std::string url = fmt::format("{}/{}/resolve/{}/{}", endpoint, ref.repo_id, commit, name);
    FileInfo fi = head_file(url, options.token);
    std::string etag = fi.etag;
    if (etag.empty() || etag.find('/') != std::string::npos || etag.find("..") != std::string::npos)
      fail("{}: the server gave no usable ETag", url);
    fs::path blob = blobs / etag, link = snapshot / name;
    std::error_code ec;
    fs::create_directories(link.parent_path(), ec);  // a .gguf in a subfolder
    if (!fs::exists(blob, ec)) {
      fs::path part = blob;
      part += ".incomplete";
      fetch_to_file(url, options.token, part, fmt::format("[{}/{}] {}", i + 1, files.size(), name), options.progress);
      fs::rename(part, blob);
    }
    fs::remove(link, ec);
    fs::path up = fs::path("..") / "..";  // from snapshots/<commit>/, plus one per subfolder
    const fs::path rel(name);
    for (auto it = rel.begin(); std::next(it) != rel.end(); ++it) up /= "..";
    fs::create_symlink(up / "blobs" / etag, link);
  }
  if (ref.revision != commit) {
    fs::path ref_file = repo / "refs" / ref.revision;
    fs::create_directories(ref_file.parent_path());
    std::ofstream(ref_file) << commit;
  }
  log::info("downloaded {} into {}", ref.repo_id, snapshot.string());
  if (!ref.gguf_quant.empty()) return (snapshot / files.front()).string();
  return snapshot.string();
}

}  // namespace ferrum::hub
