// Decoders of tokenizer.json ("decoder"): turn token strings back into text.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"

namespace ferrum::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // One step of HF's decode_chain: token strings in, token strings out.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Null for a JSON null. Throws ferrum::Error on an unsupported type, naming it.
std::unique_ptr<Decoder> make_decoder(const json& spec);

// Runs the chain and joins the result (HF Decoder::decode).
std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens);

}  // namespace ferrum::tok
