# End to end: the official openai npm client against `ferrum serve` on the fixture model.
source "$(dirname "$0")/server_common.bash"
start_server
node tests/js/server_openai.mjs
stop_server
echo "PASS"
