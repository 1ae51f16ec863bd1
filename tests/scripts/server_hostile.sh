# End to end: >= 50 malformed or hostile requests; the server must answer each correctly and
# keep serving. The body limit is 1 MiB here so that a 10 MB body is refused with 413.
source "$(dirname "$0")/server_common.bash"
start_server --max-body-size 1MiB
node tests/js/server_hostile.mjs
kill -0 "$SERVER_PID" || { echo "FAIL: the server died"; cat "$SERVER_LOG"; exit 1; }
stop_server
echo "PASS"
