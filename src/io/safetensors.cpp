#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "core/json_integer.h"
#include "core/mapped_files.h"

namespace ferrum {
namespace fs = std::filesystem;

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open {}: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("cannot stat {}: {}", path, std::strerror(errno));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail("cannot mmap {}: {}", path, std::strerror(errno));
    }
    data_ = static_cast<uint8_t*>(p);
    register_mapped_file(data_, size_, path.c_str());
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) {
    unregister_mapped_file(data_);
    ::munmap(data_, size_);
  }
}

WeightStore WeightStore::open_file(const std::string& path) {
  WeightStore ws;
  ws.add_file(path);
  return ws;
}

WeightStore WeightStore::open_dir(const std::string& model_dir) {
  WeightStore ws;
  const fs::path dir(model_dir);
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(index)) {
    json j;
    try {
      std::ifstream in(index);
      j = json::parse(in);
    } catch (const std::exception& e) {
      fail("{}: invalid JSON: {}", index.string(), e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: no \"weight_map\" object", index.string());
    std::vector<std::string> shards;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail("{}: weight_map[\"{}\"] is not a file name", index.string(), name);
      std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        fail("{}: shard name '{}' must be a plain file name", index.string(), f);
      if (std::find(shards.begin(), shards.end(), f) == shards.end()) shards.push_back(f);
    }
    for (const auto& f : shards) ws.add_file((dir / f).string());
    for (auto& [name, file] : j["weight_map"].items())
      if (!ws.has(name)) fail("{}: tensor '{}' is listed for {} but not in it", index.string(), name, file.get<std::string>());
  } else if (fs::exists(single)) {
    ws.add_file(single.string());
  } else {
    fail("{}: no model.safetensors or model.safetensors.index.json", model_dir);
  }
  return ws;
}

void WeightStore::add_tensor(const std::string& name, Tensor t) {
  if (!tensors_.emplace(name, std::move(t)).second) fail("tensor '{}' is given twice", name);
}

void WeightStore::add_file(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  add_image(file->data(), file->size(), path, file);
}

WeightStore WeightStore::parse(const uint8_t* data, size_t size, const std::string& name) {
  WeightStore ws;
  ws.add_image(data, size, name, nullptr);
  return ws;
}

void WeightStore::add_image(const uint8_t* data, size_t size, const std::string& path, std::shared_ptr<void> owner) {
  if (size < 8) fail("{}: truncated safetensors file ({} bytes, no header)", path, size);
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8)
    fail("{}: safetensors header length {} runs past the end of the file ({} bytes): truncated or not a safetensors file", path, header_len, size);
  json header;
  try {
    header = json::parse(data + 8, data + 8 + header_len);
  } catch (const std::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);
  const uint8_t* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      fail("{}: tensor '{}' needs dtype, shape and data_offsets", path, name);
    Tensor t;
    try {
      t.dtype = dtype_from_safetensors(info["dtype"].get<std::string>());
      // Range-checked: get<std::vector<uint64_t>>() would cast 1e59 (undefined behaviour).
      auto integers = [&](const char* key) {
        const json& list = info[key];
        if (!list.is_array()) fail("{}: tensor '{}': malformed header entry: {} must be a list of integers", path, name, key);
        std::vector<uint64_t> out;
        for (const json& v : list) {
          auto n = json_integer<uint64_t>(v);
          if (!n) fail("{}: tensor '{}': malformed header entry: {} holds {}, not a non-negative integer", path, name, key, v.dump());
          out.push_back(*n);
        }
        return out;
      };
      std::vector<int64_t> shape;
      for (uint64_t d : integers("shape")) {
        if (d > (uint64_t{1} << 40)) fail("{}: tensor '{}': bad dimension {}", path, name, d);
        shape.push_back(static_cast<int64_t>(d));
      }
      auto offs = integers("data_offsets");
      if (shape.size() > 4) fail("{}: tensor '{}' has {} dimensions (at most 4)", path, name, shape.size());
      if (offs.size() != 2) fail("{}: tensor '{}': data_offsets needs 2 numbers", path, name);
      t.ndim = static_cast<int>(shape.size());
      uint64_t numel = 1;
      for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] < 0 || shape[i] > (int64_t{1} << 40)) fail("{}: tensor '{}': bad dimension {}", path, name, shape[i]);
        t.shape[i] = shape[i];
        // Dimensions up to 2^40 may still multiply past 2^64; a wrapped product could match a
        // small data range and make a huge tensor over a few bytes.
        if (__builtin_mul_overflow(numel, static_cast<uint64_t>(shape[i]), &numel) ||
            numel > (uint64_t{1} << 50))
          fail("{}: tensor '{}': shape {} is too large", path, name, info["shape"].dump());
      }
      if (offs[0] > offs[1] || offs[1] > data_size)
        fail("{}: tensor '{}': data_offsets [{}, {}] outside the data section ({} bytes); is the file truncated?",
             path, name, offs[0], offs[1], data_size);
      if (offs[1] - offs[0] != numel * dtype_size(t.dtype))
        fail("{}: tensor '{}': {} bytes of data for shape {} of {} ({} expected)", path, name,
             offs[1] - offs[0], t.shape_str(), dtype_name(t.dtype), numel * dtype_size(t.dtype));
      t.data = const_cast<uint8_t*>(base + offs[0]);
      ranges.emplace_back(offs[0], offs[1]);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail("{}: tensor '{}': malformed header entry: {}", path, name, e.what());
    }
    t.owner = owner;
    if (tensors_.count(name)) fail("{}: tensor '{}' appears in more than one file", path, name);
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      fail("{}: tensors overlap in the data section (offsets {} and {})", path, ranges[i - 1].first, ranges[i].first);
  files_.push_back(path);
}

void WeightStore::add_quantized(const std::string& name, Quantized q) {
  if (tensors_.count(name) || !quantized_.emplace(name, std::move(q)).second) fail("tensor '{}' is given twice", name);
}

const WeightStore::Quantized* WeightStore::quantized(const std::string& name) const {
  const auto it = quantized_.find(name);
  return it == quantized_.end() ? nullptr : &it->second;
}

const Tensor& WeightStore::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end() && quantized_.count(name)) {
    std::lock_guard lock(*mu_);
    auto d = dequantized_.find(name);
    if (d == dequantized_.end()) {
      const Quantized& q = quantized_.at(name);
      d = dequantized_.emplace(name, q.dequantize(q)).first;
    }
    return d->second;
  }
  if (it == tensors_.end()) {
    std::string files;
    for (const auto& f : files_) files += (files.empty() ? "" : ", ") + f;
    fail("missing tensor '{}' in {}", name, files);
  }
  return it->second;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : tensors_) out.push_back(n);
  for (const auto& [n, _] : quantized_) out.push_back(n);
  return out;
}

size_t WeightStore::total_bytes() const {
  size_t n = 0;
  for (const auto& [_, t] : tensors_) n += t.nbytes();
  for (const auto& [_, q] : quantized_) n += q.blocks.nbytes();
  return n;
}

}  // namespace ferrum
