"""A bounded load test of `vfm serve` on loopback: N clients for T seconds against one bundle's tab, a share
of them sending bad input; it stops by itself.

The server runs as its own process (`vfm serve BUNDLE --port P --queue-size Q`); each client is a
`gradio_client.Client` in a thread calling `/<plugin>_predict` in a loop. Good requests are the
bundle's own smoke inputs (its first example); a bad request replaces every file argument with a
corrupt file and every text with an empty one. Reports requests/s, p50/p95 latency of good requests,
good requests that failed (should be 0), bad requests that were answered instead of refused (should be
0), and the server's resident memory (its process and children) every 5 s. The clients first load the
server for ``--warmup-seconds`` (thread pools, arenas and caches fill up, as in any server's first
minute); the figures are of the ``--seconds`` that follow, and memory growth is end vs end of warm-up.

    python benchmarks/serve_load.py BUNDLE --clients 16 --seconds 60 --bad-share 0.2
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from vfm.serve.app import free_port


def server_rss_mb(process: psutil.Process) -> float:
    processes = [process, *process.children(recursive=True)]
    return round(sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20, 1)


def bad_version(inputs: list[Any], corrupt: str) -> list[Any]:
    """``inputs`` with each file replaced by ``corrupt`` and each text emptied (numbers kept)."""
    from gradio_client import handle_file

    def swap(value: Any) -> Any:
        if isinstance(value, dict) and "path" in value:
            return handle_file(corrupt)
        if isinstance(value, list):
            return [swap(v) for v in value]
        return "" if isinstance(value, str) else value

    return [swap(v) for v in inputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--bad-share", type=float, default=0.2)
    parser.add_argument("--queue-size", type=int, default=256)
    parser.add_argument("--warmup-seconds", type=float, default=20.0)
    args = parser.parse_args()
    from gradio_client import Client

    from vfm.serve.runtime import open_predictor

    predictor = open_predictor(args.bundle)
    api = f"/{predictor.plugin.name}_predict"
    good = predictor.smoke_inputs()
    corrupt = Path(tempfile.mkdtemp()) / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 50)
    bad = bad_version(good, str(corrupt))

    port = free_port()
    command = [sys.executable, "-m", "vfm.platform.cli", "serve", str(args.bundle), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--queue-size", str(args.queue_size)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not come up") from None
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/"
        Client(url, verbose=False).predict(*good, api_name=api)  # warm-up
        watched = psutil.Process(server.pid)
        results: list[tuple[float, bool, bool, float]] = []  # (start, bad input, answered, seconds)
        lock = threading.Lock()
        measured_from = time.monotonic() + args.warmup_seconds
        stop = measured_from + args.seconds

        def client(index: int) -> None:
            rng = np.random.default_rng(index)
            session = Client(url, verbose=False)
            while time.monotonic() < stop:
                is_bad = bool(rng.random() < args.bad_share)
                started = time.monotonic()
                try:
                    session.predict(*(bad if is_bad else good), api_name=api)
                    answered = True
                except Exception:  # gradio_client raises on the app's error message
                    answered = False
                with lock:
                    results.append((started, is_bad, answered, time.monotonic() - started))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        rss: list[tuple[float, float]] = []  # (seconds since the measured window began, MB)
        while any(thread.is_alive() for thread in threads):
            rss.append((round(time.monotonic() - measured_from, 1), server_rss_mb(watched)))
            time.sleep(5)
        rss_before = min(rss, key=lambda sample: abs(sample[0]))[1]
        rss_after = server_rss_mb(watched)
    finally:
        server.terminate()
        server.wait(timeout=30)

    window = [(b, a, s) for started, b, a, s in results if started >= measured_from]
    good_latency = [s for is_bad, answered, s in window if not is_bad and answered]
    report = {
        "bundle": str(args.bundle),
        "plugin": predictor.plugin.name,
        "clients": args.clients,
        "warmup_seconds": args.warmup_seconds,
        "seconds": args.seconds,
        "warmup_requests": len(results) - len(window),
        "requests": len(window),
        "requests_per_s": round(len(window) / args.seconds, 2),
        "good": sum(not b for b, _, _ in window),
        "good_failed": sum(not b and not a for _, b, a, _ in results),  # warm-up included
        "bad": sum(b for b, _, _ in window),
        "bad_answered": sum(b and a for _, b, a, _ in results),  # warm-up included
        "p50_s": round(float(np.percentile(good_latency, 50)), 3) if good_latency else None,
        "p95_s": round(float(np.percentile(good_latency, 95)), 3) if good_latency else None,
        "rss_mb_after_warmup": rss_before,
        "rss_mb_after_load": rss_after,
        "rss_growth_percent": round(100 * (rss_after - rss_before) / rss_before, 1),
        "rss_mb_every_5s": rss,
    }
    print(json.dumps(report, indent=2))
    print(
        f"# reproduce: python benchmarks/serve_load.py {args.bundle} --clients {args.clients} "
        f"--seconds {args.seconds:g} --bad-share {args.bad_share} --queue-size {args.queue_size} "
        f"--warmup-seconds {args.warmup_seconds:g}"
    )


if __name__ == "__main__":
    main()
