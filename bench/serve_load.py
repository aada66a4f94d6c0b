#!/usr/bin/env python3
"""Load generator for vexserve: N concurrent clients streaming /v1/completions over HTTP.

Each client sends `--requests` greedy requests one after another, `--max-tokens` tokens each
(`ignore_eos`: the model's end token does not end them; the usage of every response is counted,
not assumed). Every request's prompt starts with its own number, so that the requests decode
different tokens and route to different experts, as real traffic does (`--same-prompt`: one
prompt for all, whose identical greedy streams choose the same experts in every row of a step). Prints one JSON line: clients, requests, completion tokens, wall seconds,
aggregate tokens/s, and time to first token (the first streamed chunk) p50/p90/max.

  bench/serve_load.py --port 8080 --clients 32 --requests 2 --max-tokens 256
"""
import argparse
import http.client
import json
import math
import statistics
import sys
import threading
import time


def one_request(host, port, model, prompt, max_tokens):
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "temperature": 0, "stream": True, "ignore_eos": True})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise RuntimeError(f"HTTP {res.status}: {res.read()[:200]!r}")
    ttft, usage = None, None
    for raw in res:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
        if ttft is None and chunk["choices"]:
            ttft = time.perf_counter() - t0
        if chunk.get("usage"):
            usage = chunk["usage"]
    conn.close()
    if usage is None:
        raise RuntimeError("the stream ended without usage")
    return ttft if ttft is not None else time.perf_counter() - t0, usage["completion_tokens"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=1, help="requests per client, in sequence")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--prompt", default="Once upon a time, in a land far away, there lived")
    ap.add_argument("--same-prompt", action="store_true",
                    help="every request sends --prompt as is (identical requests)")
    args = ap.parse_args()
    conn = http.client.HTTPConnection(args.host, args.port, timeout=60)
    conn.request("GET", "/v1/models")
    model = json.loads(conn.getresponse().read())["data"][0]["id"]
    conn.close()

    ttfts, tokens, errors = [], [], []
    lock = threading.Lock()

    def client(i):
        for r in range(args.requests):
            prompt = args.prompt if args.same_prompt else f"{i * args.requests + r}. {args.prompt}"
            try:
                t, n = one_request(args.host, args.port, model, prompt, args.max_tokens)
                with lock:
                    ttfts.append(t)
                    tokens.append(n)
            except Exception as e:  # reported, and the run fails
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts.sort()
    out = {"clients": args.clients, "requests": len(tokens), "errors": len(errors),
           "completion_tokens": sum(tokens), "wall_s": round(wall, 3),
           "tokens_per_s": round(sum(tokens) / wall, 1),
           "ttft_p50_ms": round(1e3 * statistics.median(ttfts), 1) if ttfts else None,
           "ttft_p90_ms": round(1e3 * ttfts[max(0, math.ceil(0.9 * len(ttfts)) - 1)], 1)
           if ttfts else None,
           "ttft_max_ms": round(1e3 * ttfts[-1], 1) if ttfts else None}
    print(json.dumps(out))
    if errors:
        print("\n".join(errors[:5]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
