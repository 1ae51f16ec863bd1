# The dictionary of each fuzz target, by file name under fuzz/dict/ (nothing for binary formats
# without one). Sourced by scripts/fuzz.sh and scripts/fuzz-long.sh.
fuzz_dict_of() {
  case "$1" in
    fuzz_jinja) echo jinja.dict ;;
    fuzz_http_request | fuzz_sse) echo http.dict ;;
    fuzz_gguf) echo gguf.dict ;;
    fuzz_safetensors | fuzz_tokenizer_encode) echo "" ;;
    *) echo json.dict ;;
  esac
}
