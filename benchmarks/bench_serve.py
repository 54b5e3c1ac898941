"""Load on `maskmtl serve`: concurrent clients on 127.0.0.1, latency, errors and memory.

Starts ``python -m maskmtl_cli serve`` on a free port of 127.0.0.1, waits for ``/health``, then
sends a 640x480 JPEG (the public-domain astronaut on a grey canvas, one face) as a multipart
upload from ``--clients`` threads at once, each on its own keep-alive connection, in three
phases:

1. warm-up: ``--baseline`` requests (100); then the server's resident memory (VmRSS), once no
   request is in flight;
2. latency: ``--requests`` requests per client (8 x 50 by default); p50, p90, p99 and max of
   the time from sending a request to having its whole answer, and the throughput;
3. the rest of ``--total`` requests (1,000 in all); then the server's memory again, which
   must be within 10 % of the first figure.

Every answer must be HTTP 200 with one face, else it counts as an error. Each request has a
``--timeout`` and the whole run a ``--deadline``; the server is stopped at the end whatever
happens. Prints a table and, with ``--json``, one JSON object; the exit code is 1 when a bar
of issue 14 is missed (errors, p99 over ``--p99-ms``, memory growth over 10 %).

Usage (from the repository root; record results in docs/serve.md with the machine):

    python benchmarks/bench_serve.py [--model M] [--engine E] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "tests" / "data" / "astronaut.jpg"
BOUNDARY = "maskmtl-bench-boundary"


def photo_640x480() -> bytes:
    """The astronaut (480x480) on a 640x480 grey canvas, as a JPEG of quality 90."""
    from PIL import Image

    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(Image.open(ASTRONAUT).convert("RGB").resize((480, 480)), (80, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def multipart(photo: bytes, name: str = "bench.jpg") -> bytes:
    """A multipart/form-data body with the photo in the field ``image``."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    return head + photo + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict:
    """CPU model, cores this process may use, memory and load: the context of the figures."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "memory_gb": round(int(memory) / 1024 ** 2, 1),
            "load_average_before": [round(value, 2) for value in os.getloadavg()],
            "python": platform.python_version()}


class Server:
    """`maskmtl serve` in a child process, stopped by ``stop``."""

    def __init__(self, arguments: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("w")
        command = [sys.executable, "-m", "maskmtl_cli", "serve", "--port", str(self.port),
                   *arguments]
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see "
                                   f"{self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    return json.load(response)
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


class Load:
    """Clients that share a number of requests to ``/predict``, each on its own connection."""

    def __init__(self, server: Server, body: bytes, clients: int, timeout: float,
                 deadline: float) -> None:
        self.server, self.body, self.clients = server, body, clients
        self.timeout, self.deadline = timeout, deadline
        self.headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        self.lock = threading.Lock()
        self.done = 0
        self.errors: list[str] = []

    def _send(self, connection: http.client.HTTPConnection) -> tuple[float, str | None]:
        begin = time.perf_counter()
        try:
            connection.request("POST", "/predict", body=self.body, headers=self.headers)
            response = connection.getresponse()
            answer = response.read()
            ok = response.status == 200 and len(json.loads(answer)) == 1
            problem = None if ok else f"HTTP {response.status}: {answer[:200]!r}"
        except (OSError, http.client.HTTPException, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
            connection.close()  # http.client reconnects on the next request
        return time.perf_counter() - begin, problem

    def run(self, count: int) -> tuple[list[float], float]:
        """``count`` requests shared by all clients at once; their latencies and the wall
        time. Returns early (fewer latencies) when the deadline passes."""
        latencies: list[float] = []
        tickets = iter(range(count))

        def take_ticket() -> bool:
            with self.lock:
                return next(tickets, None) is not None and time.monotonic() < self.deadline

        def client() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                    timeout=self.timeout)
            try:
                while take_ticket():
                    elapsed, problem = self._send(connection)
                    with self.lock:
                        self.done += 1
                        latencies.append(elapsed)
                        if problem:
                            self.errors.append(problem)
            finally:
                connection.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies, time.perf_counter() - started

    def settled_rss(self) -> float:
        """The server's RSS once no request is in flight (after a short pause)."""
        time.sleep(1.0)
        return rss_mb(self.server.process.pid)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run folder or .keras file (default: the shipped one)")
    parser.add_argument("--engine", help="engine (default: `maskmtl serve`'s)")
    parser.add_argument("--detector", help="detector (default: `maskmtl serve`'s)")
    parser.add_argument("--workers", type=int, help="server threads (default: the server's)")
    parser.add_argument("--min-face", type=int, help="smallest face (default: the server's)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per client")
    parser.add_argument("--total", type=int, default=1000, help="requests in all (memory)")
    parser.add_argument("--baseline", type=int, default=100,
                        help="warm-up requests, after which memory is first measured")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for the run")
    parser.add_argument("--p99-ms", type=float, default=250.0, help="the p99 bar")
    parser.add_argument("--json", action="store_true", help="also print one JSON object")
    args = parser.parse_args()
    if args.total < args.baseline + args.clients * args.requests:
        parser.error("--total must be at least --baseline + --clients x --requests")

    arguments = []
    for option in ("model", "engine", "detector", "workers", "min_face"):
        if getattr(args, option) is not None:
            arguments += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    context = machine()
    body = multipart(photo_640x480())
    with tempfile.TemporaryDirectory() as folder:
        server = Server(arguments, Path(folder) / "serve.log")
        try:
            health = server.wait_ready(timeout=180)
            load = Load(server, body, args.clients, args.timeout,
                        time.monotonic() + args.deadline)
            rss_idle = rss_mb(server.process.pid)
            load.run(args.baseline)  # warm-up, and the memory baseline
            rss_first = load.settled_rss()
            server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
            latencies, phase_seconds = load.run(args.clients * args.requests)  # timed
            server_cpu = cpu_seconds(server.process.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            load.run(args.total - args.baseline - args.clients * args.requests)
            rss_last = load.settled_rss()
        finally:
            server.stop()
    latencies_ms = [value * 1000 for value in latencies]
    timed = len(latencies_ms)
    growth = (rss_last - rss_first) / rss_first
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": context,
        "server": {key: health[key] for key in ("model", "detector", "engine", "min_face",
                                                    "workers", "version")},
        "photo": {"size": "640x480", "bytes": len(body)},
        "clients": args.clients, "timed_requests": timed, "requests": load.done,
        "errors": len(load.errors), "first_errors": load.errors[:3],
        "p50_ms": round(statistics.median(latencies_ms), 1) if timed else None,
        "p90_ms": round(percentile(latencies_ms, 0.90), 1) if timed else None,
        "p99_ms": round(percentile(latencies_ms, 0.99), 1) if timed else None,
        "max_ms": round(max(latencies_ms), 1) if timed else None,
        "throughput_rps": round(timed / phase_seconds, 1) if timed else None,
        # CPU time per timed request: what sets the latency on a machine with free cores.
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(timed, 1), 1),
        "client_cpu_ms_per_request": round(1000 * client_cpu / max(timed, 1), 1),
        "rss_mb": {"idle": round(rss_idle, 1), f"after_{args.baseline}": round(rss_first, 1),
                   f"after_{args.total}": round(rss_last, 1)},
        "rss_growth_percent": round(100 * growth, 1),
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }
    bars = {
        "0 errors": result["errors"] == 0 and load.done >= args.total,
        f"p99 <= {args.p99_ms:g} ms": timed > 0 and result["p99_ms"] <= args.p99_ms,
        "memory within 10 %": abs(growth) <= 0.10,
    }
    print(f"maskmtl serve: {health['model']} | detector {health['detector']} | engine "
          f"{health['engine']} | {health['workers']} workers")
    print(f"machine: {context['cpu']}, {context['cores']} cores, load before "
          f"{context['load_average_before']}, after {result['load_average_after']}")
    print(f"{args.clients} clients x {args.requests} requests of a 640x480 JPEG "
          f"({len(body)} bytes): p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, "
          f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms, "
          f"{result['throughput_rps']} requests/s")
    print(f"CPU per request: server {result['server_cpu_ms_per_request']} ms, this client "
          f"{result['client_cpu_ms_per_request']} ms")
    print(f"{load.done} requests, {result['errors']} errors; RSS idle {rss_idle:.0f} MB, "
          f"after {args.baseline}: {result['rss_mb'][f'after_{args.baseline}']} MB, after "
          f"{args.total}: {result['rss_mb'][f'after_{args.total}']} MB "
          f"({result['rss_growth_percent']:+} %)")
    for error in load.errors[:3]:
        print(f"  error: {error}")
    for bar, met in bars.items():
        print(f"  {'met   ' if met else 'MISSED'} {bar}")
    if args.json:
        print(json.dumps({**result, "bars": bars}))
    return 0 if all(bars.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
