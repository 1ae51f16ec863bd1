#!/usr/bin/env python3
"""Soak load for `ferrum serve` (scripts/soak.sh starts the server and calls this).

Workers send a random mix for the whole run: chat and completions, streaming or not, chat with
tools, n > 1, logprobs, JSON-schema output, streams the client drops mid-way, oversize bodies,
malformed JSON and HTTP, invalid parameters, and now and then a burst past --max-waiting. A
monitor samples the server once a second: /health latency, RSS and thread count from /proc,
and /metrics (running, waiting, KV blocks used).

Checked (any failure exits 1 with the reasons):
  - the server process stays alive, and every request gets the answer its kind expects (no
    500s, no connection dropped by the server);
  - every accepted request completes: non-streaming ones carry a finish_reason, streams end with
    [DONE]; when idle, nothing runs or waits and every KV block is free;
  - RSS after warm-up stays within 5% of its level just after warm-up; the thread count is
    constant after warm-up;
  - /health answers within --health-ms (100) every time.
Samples go to OUT/samples.csv and a summary to OUT/summary.json.
"""
import argparse, http.client, json, os, random, socket, sys, threading, time

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
# "zebracorn" marks request text: scripts/soak.sh checks that it never reaches the server log.
WORDS = "zebracorn and the lord said unto moses go down speak to the children of israel in the land of egypt".split()


class Failure(Exception):
    pass


class Soak:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []
        self.stop = threading.Event()
        self.samples = []

    # ---- bookkeeping
    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def fail(self, msg):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {msg}")
        print("soak: FAIL", msg, file=sys.stderr, flush=True)

    def conn(self, timeout=120):
        return http.client.HTTPConnection(self.a.host, self.a.port, timeout=timeout)

    def headers(self):
        h = {"Content-Type": "application/json"}
        if self.a.api_key:
            h["Authorization"] = f"Bearer {self.a.api_key}"
        return h

    # ---- requests
    def prompt(self, rng, n=None):
        return " ".join(rng.choice(WORDS) for _ in range(n or rng.randint(3, 40)))

    def post(self, path, body, expect):
        """Sends a body (dict or raw bytes); returns (status, parsed JSON or None)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        c = self.conn()
        try:
            c.request("POST", path, raw, self.headers())
            r = c.getresponse()
            data = r.read()
        except (ConnectionError, socket.timeout, http.client.HTTPException) as e:
            raise Failure(f"{path}: connection error {e!r} (expected {expect})")
        finally:
            c.close()
        if r.status == 503 and r.getheader("Retry-After") is not None and 503 not in expect:
            self.count("rejected_503")  # the queue was full: a correct answer under load
            return r.status, None
        if r.status not in expect:
            raise Failure(f"{path}: status {r.status} (expected {expect}): {data[:200]!r}")
        try:
            return r.status, json.loads(data)
        except ValueError:
            raise Failure(f"{path}: status {r.status} with a body that is not JSON: {data[:200]!r}")

    def check_complete(self, kind, body, n):
        choices = body.get("choices", [])
        if len(choices) != n or any(ch.get("finish_reason") not in ("stop", "length", "tool_calls") for ch in choices):
            raise Failure(f"{kind}: incomplete response {json.dumps(body)[:300]}")
        self.count(f"ok_{kind}")

    def stream(self, path, body, drop_after=None):
        """Streams; checks that it ends with [DONE], or drops the connection after drop_after events."""
        c = self.conn()
        try:
            c.request("POST", path, json.dumps(body).encode(), self.headers())
            r = c.getresponse()
            if r.status == 503:
                r.read()
                self.count("rejected_503")
                return
            if r.status != 200:
                raise Failure(f"stream {path}: status {r.status}: {r.read()[:200]!r}")
            events = 0
            while True:
                line = r.fp.readline()
                if not line:
                    raise Failure(f"stream {path}: ended without [DONE] after {events} events")
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    self.count("ok_stream")
                    return
                if b'"error"' in payload:
                    raise Failure(f"stream {path}: error event {payload[:200]!r}")
                events += 1
                if drop_after is not None and events >= drop_after:
                    self.count("dropped_stream")
                    return  # closing the socket below aborts the request server-side
        except (ConnectionError, socket.timeout, http.client.HTTPException) as e:
            raise Failure(f"stream {path}: connection error {e!r}")
        finally:
            c.close()

    def raw(self, data, expect_status):
        """Sends raw bytes; the server must answer expect_status (or just close for garbage)."""
        s = socket.create_connection((self.a.host, self.a.port), timeout=30)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        finally:
            s.close()
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
        if status != expect_status:
            raise Failure(f"raw request: status {status} (expected {expect_status}): {reply[:120]!r}")
        self.count(f"refused_{expect_status}")

    def one(self, rng):
        m = self.a.model
        k = rng.random()
        max_tokens = rng.randint(1, self.a.max_tokens)
        user = {"role": "user", "content": self.prompt(rng)}
        if k < 0.20:
            _, b = self.post("/v1/chat/completions", {"model": m, "messages": [user], "max_tokens": max_tokens}, (200,))
            if b: self.check_complete("chat", b, 1)
        elif k < 0.38:
            self.stream("/v1/chat/completions", {"model": m, "messages": [user], "max_tokens": max_tokens, "stream": True,
                                                 "stream_options": {"include_usage": True}})
        elif k < 0.48:  # a tool-call round trip in the history; the tools themselves if the model has a format
            history = [user, {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": json.dumps({"city": rng.choice(WORDS)})}}]},
                       {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}, {"role": "user", "content": self.prompt(rng)}]
            body = {"model": m, "messages": history, "max_tokens": max_tokens, "temperature": 1.0}
            if self.tools_supported:
                body.update(tools=TOOLS, tool_choice="auto")
            _, b = self.post("/v1/chat/completions", body, (200,))
            if b: self.check_complete("tools", b, 1)
        elif k < 0.58:
            n = rng.randint(2, 4)
            _, b = self.post("/v1/completions", {"model": m, "prompt": self.prompt(rng), "n": n, "max_tokens": max_tokens,
                                                 "temperature": 0.8, "logprobs": 2}, (200,))
            if b: self.check_complete("completion_n", b, n)
        elif k < 0.64:
            self.stream("/v1/completions", {"model": m, "prompt": self.prompt(rng), "n": 2, "max_tokens": max_tokens,
                                            "stream": True})
        elif k < 0.70:
            schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
                      "required": ["name", "age"]}
            _, b = self.post("/v1/chat/completions", {"model": m, "messages": [user], "max_tokens": 48, "response_format":
                                                      {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}}, (200,))
            if b: self.check_complete("schema", b, 1)
        elif k < 0.80:  # a client that leaves mid-stream
            self.stream("/v1/chat/completions", {"model": m, "messages": [user], "max_tokens": 64, "stream": True,
                                                 "ignore_eos": True}, drop_after=rng.randint(1, 4))
        elif k < 0.84:
            self.post("/v1/chat/completions", b'{"model": "x", "messages": [', (400,))
            self.count("refused_400")
        elif k < 0.88:
            bad = rng.choice([{"n": 0}, {"n": 100000}, {"max_tokens": -1}, {"max_tokens": 10 ** 9}, {"top_logprobs": 99, "logprobs": True},
                              {"stop": ["x"] * 100}, {"temperature": "hot"}, {"messages": []}, {"stop": ["y" * 5000]}])
            body = {"model": m, "messages": [user], **bad}
            self.post("/v1/chat/completions", body, (400,))
            self.count("refused_400")
        elif k < 0.90:
            self.post("/v1/completions", b'{"prompt": "' + b"a" * (self.a.max_body + 1024) + b'"}', (413,))
            self.count("refused_413")
        elif k < 0.92:
            self.raw(rng.choice([b"GARBAGE / HTTP/9.9\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                                 b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]), 400)
        else:
            _, b = self.post("/v1/completions", {"model": m, "prompt": [[1, 2, 3], self.prompt(rng)], "max_tokens": max_tokens,
                                                 "echo": True}, (200,))
            if b: self.check_complete("completion_list", b, 2)

    def worker(self, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            try:
                self.one(rng)
            except Failure as e:
                self.fail(str(e))
            except Exception as e:  # noqa: BLE001 - any other error is a finding too
                self.fail(f"driver: {e!r}")

    def burst(self):
        """More requests at once than --max-num-seqs + --max-waiting: some must get 503."""
        rng = random.Random(time.time())
        threads = [threading.Thread(target=self.worker_once, args=(rng.random(),)) for _ in range(self.a.burst)]
        for t in threads: t.start()
        for t in threads: t.join()
        self.count("bursts")

    def worker_once(self, seed):
        rng = random.Random(seed)
        try:
            self.stream("/v1/chat/completions", {"model": self.a.model, "messages": [{"role": "user", "content": self.prompt(rng)}],
                                                 "max_tokens": 8, "stream": True})
        except Failure as e:
            self.fail(str(e))

    # ---- monitoring
    def proc(self):
        rss = threads = None
        try:
            with open(f"/proc/{self.a.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"): rss = int(line.split()[1])
                    if line.startswith("Threads:"): threads = int(line.split()[1])
        except FileNotFoundError:
            pass
        return rss, threads

    def metrics(self):
        c = self.conn(timeout=10)
        try:
            c.request("GET", "/metrics", headers=self.headers())
            text = c.getresponse().read().decode()
        finally:
            c.close()
        out = {}
        for line in text.splitlines():
            for key in ("ferrum_num_requests_running", "ferrum_num_requests_waiting", "ferrum_kv_cache_blocks_used"):
                if line.startswith(key + " "):
                    out[key] = float(line.split()[1])
        return out

    def health_ms(self):
        t = time.monotonic()
        c = self.conn(timeout=10)
        try:
            c.request("GET", "/health")
            st = c.getresponse().status
        finally:
            c.close()
        ms = (time.monotonic() - t) * 1000
        if st != 200:
            self.fail(f"/health answered {st}")
        return ms

    def sample(self, t0):
        rss, threads = self.proc()
        if rss is None:
            self.fail("the server process is gone")
            self.stop.set()
            return
        try:
            h = self.health_ms()
            m = self.metrics()
        except Exception as e:  # noqa: BLE001
            self.fail(f"monitor: {e!r}")
            return
        if h > self.a.health_ms:
            # One slow probe may be the driver itself waiting for a CPU (2 cores, shared):
            # probe again at once; two in a row are the server's.
            self.count("health_slow_single")
            h2 = self.health_ms()
            if h2 > self.a.health_ms:
                self.fail(f"/health took {h:.0f} ms, then {h2:.0f} ms")
        self.samples.append((time.monotonic() - t0, rss, threads, h, m.get("ferrum_kv_cache_blocks_used"),
                             m.get("ferrum_num_requests_running"), m.get("ferrum_num_requests_waiting")))

    def wait_idle(self, timeout=60):
        end = time.time() + timeout
        m = {}
        while time.time() < end:
            m = self.metrics()
            if m.get("ferrum_num_requests_running") == 0 and m.get("ferrum_num_requests_waiting") == 0 and \
               m.get("ferrum_kv_cache_blocks_used") == 0:
                return m
            time.sleep(0.5)
        self.fail(f"not idle {timeout} s after the load stopped: {m}")
        return m

    def probe_tools(self):
        """Whether the model has a tool-call format (ferrum-tiny has none: tools are a 400 there)."""
        st, _ = self.post("/v1/chat/completions", {"model": self.a.model, "messages": [{"role": "user", "content": "hi"}],
                                                   "tools": TOOLS, "max_tokens": 1}, (200, 400))
        self.tools_supported = st == 200
        print(f"soak: tools {'offered' if self.tools_supported else 'not supported by the model: tool calls in the history only'}")

    def run(self):
        self.probe_tools()
        duration = self.a.seconds
        warmup = max(20.0, duration * 0.2)
        t0 = time.monotonic()
        workers = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.a.workers)]
        for w in workers: w.start()
        next_burst = t0 + 15
        next_idle = t0 + warmup
        while time.monotonic() - t0 < duration and not self.stop.is_set():
            self.sample(t0)
            now = time.monotonic()
            if now >= next_burst:
                threading.Thread(target=self.burst, daemon=True).start()
                next_burst = now + 30
            time.sleep(1.0)
            # Every few minutes: let the server go idle and check that everything was freed.
            if now >= next_idle + 240 and now - t0 < duration - 60:
                self.pause_and_check_idle(workers, t0)
                workers = [threading.Thread(target=self.worker, args=(int(now) + i,), daemon=True) for i in range(self.a.workers)]
                for w in workers: w.start()
                next_idle = now
        self.stop.set()
        for w in workers: w.join(timeout=180)
        time.sleep(1)
        idle = self.wait_idle()
        self.sample(t0)
        return self.report(warmup, idle)

    def pause_and_check_idle(self, workers, t0):
        self.stop.set()
        for w in workers: w.join(timeout=180)
        self.wait_idle()
        self.count("idle_checks")
        self.stop.clear()

    def report(self, warmup, idle):
        after = [s for s in self.samples if s[0] >= warmup]
        summary = {"seconds": self.a.seconds, "samples": len(self.samples), "counts": self.counts, "idle_metrics": idle}
        if len(after) >= 4:
            k = max(1, len(after) // 10)
            base = sorted(s[1] for s in after[:k])[k // 2]
            end = sorted(s[1] for s in after[-k:])[k // 2]
            peak = max(s[1] for s in after)
            summary.update(rss_kb_after_warmup=base, rss_kb_end=end, rss_kb_peak=peak,
                           rss_growth=round(end / base - 1, 4), rss_peak_over_base=round(peak / base - 1, 4))
            if end > base * 1.05:
                self.fail(f"RSS grew from {base} kB (after warm-up) to {end} kB at the end (> 5%)")
            threads = sorted({s[2] for s in after})
            summary["threads"] = threads
            if len(threads) != 1:
                self.fail(f"thread count changed after warm-up: {threads}")
        else:
            self.fail("too few samples after warm-up")
        hs = sorted(s[3] for s in self.samples)
        if hs:
            summary.update(health_ms_median=round(hs[len(hs) // 2], 2), health_ms_max=round(hs[-1], 2))
        summary["failures"] = self.failures
        os.makedirs(self.a.out, exist_ok=True)
        with open(os.path.join(self.a.out, "samples.csv"), "w") as f:
            f.write("t_s,rss_kb,threads,health_ms,kv_blocks_used,running,waiting\n")
            for s in self.samples:
                f.write(",".join("" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v)) for v in s) + "\n")
        with open(os.path.join(self.a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary, indent=1))
        return not self.failures


def drain_check(a):
    """SIGTERM while streams run: each finishes with [DONE], then the server exits 0."""
    import signal
    soak = Soak(a)
    started = threading.Barrier(a.workers + 1)
    results = []

    def one(i):
        c = soak.conn()
        try:
            body = {"model": a.model, "messages": [{"role": "user", "content": "tell me of moses"}], "max_tokens": 64,
                    "ignore_eos": True, "stream": True}
            c.request("POST", "/v1/chat/completions", json.dumps(body).encode(), soak.headers())
            r = c.getresponse()
            first = True
            while line := r.fp.readline():
                if first and line.startswith(b"data: "):
                    first = False
                    started.wait(timeout=120)
                if line.strip() == b"data: [DONE]":
                    results.append("done")
                    return
            results.append("cut")
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(a.workers)]
    for t in threads: t.start()
    started.wait(timeout=120)
    os.kill(a.pid, signal.SIGTERM)
    for t in threads: t.join(timeout=120)
    ok = results == ["done"] * a.workers
    print(f"soak: drain on SIGTERM: {results}", "ok" if ok else "FAILED")
    return ok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--model", default="ferrum-tiny")
    p.add_argument("--api-key", default="")
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--workers", type=int, default=6)
    p.add_argument("--burst", type=int, default=48)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--max-body", type=int, default=1 << 20)
    p.add_argument("--health-ms", type=float, default=100)
    p.add_argument("--out", default="build/soak")
    p.add_argument("--drain", action="store_true", help="only the SIGTERM drain check")
    a = p.parse_args()
    if a.drain:
        sys.exit(0 if drain_check(a) else 1)
    ok = Soak(a).run()
    print("soak:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
