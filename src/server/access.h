// Access checks of the server: the API key comparison and whether a listen address is local.
#pragma once
#include <string_view>

namespace ferrum::server {

// True when `given` equals `key`. Takes the same time whatever the bytes of `given` are (no
// early exit), so the key cannot be found byte by byte through timing; only its length matters.
bool same_secret(std::string_view given, std::string_view key);

// True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost.
// `ferrum serve` warns when it listens anywhere else without --api-key.
bool is_loopback_host(std::string_view host);

}  // namespace ferrum::server
