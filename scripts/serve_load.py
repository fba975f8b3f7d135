#!/usr/bin/env python3
"""Load generator for `llamac serve` (any OpenAI-compatible server): keeps
CONCURRENCY streamed requests in flight until REQUESTS have finished, then
prints latency and time-to-first-token percentiles and the aggregate
generation rate. Python's standard library only, so it runs on any machine
that has python3 (the GPU machine has no Node).

  scripts/serve_load.py --url http://127.0.0.1:8080 --requests 300 --concurrency 32
  scripts/serve_load.py --url ... --sweep 1,8,32,64 --max-tokens 256 --ignore-eos

Exits 1 when any request fails (a status other than 200, an error event, a
stream without [DONE] or without its usage counts)."""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse

# Different openings, so that sequences in one batch differ.
PROMPTS = [
    "Once upon a time", "The old man looked at the sea and", "In the beginning",
    "She opened the door and saw", "It was a dark and stormy night;", "The king said to his son",
    "Far away, beyond the mountains,", "The letter arrived on a Monday.",
    "When the train stopped,", "My dear friend,", "The garden was full of",
    "Nobody in the village knew", "At the end of the road there was", "He laughed and said",
    "The ship sailed at dawn", "Long ago, in a small town,",
]


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def one_request(url, key, body, timeout):
    """Sends one streamed request; returns (ttft_s, latency_s, completion_tokens) or raises."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    t0 = time.perf_counter()
    try:
        conn.request("POST", path, json.dumps(body), headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}: {resp.read(300)!r}")
        ttft = None
        usage = None
        done = False
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                raise RuntimeError(f"error event: {event['error'].get('message')}")
            if event.get("usage"):
                usage = event["usage"]
            for c in event.get("choices", []):
                text = c.get("text") or (c.get("delta") or {}).get("content")
                if text and ttft is None:
                    ttft = time.perf_counter() - t0
        latency = time.perf_counter() - t0
        if not done or usage is None:
            raise RuntimeError("the stream ended without [DONE] or without usage")
        return (ttft if ttft is not None else latency), latency, usage["completion_tokens"]
    finally:
        conn.close()


def run_level(args, concurrency, n_requests):
    lock = threading.Lock()
    next_index = [0]
    results, errors = [], []

    def worker():
        while True:
            with lock:
                i = next_index[0]
                if i >= n_requests:
                    return
                next_index[0] += 1
            body = {"max_tokens": args.max_tokens, "temperature": args.temperature,
                    "seed": i, "stream": True, "stream_options": {"include_usage": True}}
            if args.ignore_eos:
                body["ignore_eos"] = True
            prompt = PROMPTS[i % len(PROMPTS)]
            if args.chat:
                body["messages"] = [{"role": "user", "content": prompt}]
            else:
                body["prompt"] = prompt
            try:
                r = one_request(args.url, args.api_key, body, args.timeout)
                with lock:
                    results.append(r)
            except Exception as e:  # every failure is counted and reported, none ends the run
                with lock:
                    errors.append(f"request {i}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r[2] for r in results)
    ttft = [r[0] for r in results]
    lat = [r[1] for r in results]
    # A stream's own rate: its tokens after the first over the time after the first.
    per_stream = [(r[2] - 1) / (r[1] - r[0]) for r in results if r[2] > 1 and r[1] > r[0]]
    return {
        "concurrency": concurrency, "requests": n_requests, "ok": len(results),
        "errors": len(errors), "error_messages": errors[:5], "wall_s": wall,
        "completion_tokens": tokens, "aggregate_tok_s": tokens / wall if wall > 0 else 0.0,
        "ttft_p50_ms": 1000 * percentile(ttft, 50), "ttft_p99_ms": 1000 * percentile(ttft, 99),
        "latency_p50_ms": 1000 * percentile(lat, 50),
        "latency_p99_ms": 1000 * percentile(lat, 99),
        "stream_tok_s_p50": percentile(per_stream, 50),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--api-key", default=None, help="sent as Authorization: Bearer KEY")
    ap.add_argument("--requests", type=int, default=0,
                    help="requests per level (default: 300, or 2 x concurrency in a sweep)")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    ap.add_argument("--sweep", default=None,
                    help="comma-separated concurrency levels, run one after another")
    ap.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request (64)")
    ap.add_argument("--temperature", type=float, default=0.8, help="(default 0.8)")
    ap.add_argument("--ignore-eos", action="store_true",
                    help="every reply runs to max_tokens (for rates at a known length)")
    ap.add_argument("--chat", action="store_true", help="/v1/chat/completions, not /v1/completions")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request (600)")
    ap.add_argument("--json", action="store_true", help="one JSON object per level on stdout")
    args = ap.parse_args()
    levels = [int(c) for c in args.sweep.split(",")] if args.sweep else [args.concurrency]
    if any(c < 1 for c in levels) or args.requests < 0 or args.max_tokens < 1:
        ap.error("concurrency, requests and max-tokens must be positive")
    failed = False
    if not args.json:
        print(f"{'streams':>7} {'reqs':>5} {'errors':>6} {'tok/s':>9} {'stream tok/s':>12} "
              f"{'TTFT p50/p99 ms':>17} {'latency p50/p99 ms':>20}")
    for c in levels:
        n = args.requests or (2 * c if args.sweep else 300)
        r = run_level(args, c, n)
        failed |= r["errors"] > 0
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{c:>7} {n:>5} {r['errors']:>6} {r['aggregate_tok_s']:>9.1f} "
                  f"{r['stream_tok_s_p50']:>12.1f} "
                  f"{r['ttft_p50_ms']:>8.1f}/{r['ttft_p99_ms']:<8.1f} "
                  f"{r['latency_p50_ms']:>9.1f}/{r['latency_p99_ms']:<9.1f}", flush=True)
        for m in r["error_messages"]:
            print("  " + m, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
