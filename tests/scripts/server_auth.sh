# End to end: --api-key (via FERRUM_API_KEY, testing the env var too) and --cors-origin.
source "$(dirname "$0")/server_common.bash"
export FERRUM_TEST_KEY="test-key-$$" FERRUM_TEST_ORIGIN="https://app.example"
FERRUM_API_KEY="$FERRUM_TEST_KEY" start_server --cors-origin "$FERRUM_TEST_ORIGIN"
node tests/js/server_auth.mjs
stop_server
echo "PASS"
