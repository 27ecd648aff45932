"""Load test of ``boneage serve``: requests/s and p50/p95 latency for 1, 2, 4 and 8 clients.

Starts a real ``boneage serve`` (uvicorn) on 127.0.0.1 in a subprocess, waits until ``/health``
answers, then for each client count runs that many threads, each posting full-size radiographs
back to back (a 2000×2500 PNG made from a committed hires sample, as in ``bench/predict.py``).

    .venv/bin/python bench/serve_load.py [--clients 1 2 4 8] [--requests 12] [--tta 8] [--json out.json]

Every request must answer 200; a failure is printed and the script exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx

REPO = Path(__file__).resolve().parent.parent
HIRES = REPO / "tests" / "fixtures" / "hires"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _full_size_png(tmp: Path) -> Path:
    src = sorted(HIRES.glob("*.png"))[0]
    big = cv2.resize(cv2.imread(str(src), cv2.IMREAD_GRAYSCALE), (2000, 2500), interpolation=cv2.INTER_CUBIC)
    out = tmp / f"{src.stem}_2000x2500.png"
    cv2.imwrite(str(out), big)
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def run_level(url: str, image: bytes, clients: int, total: int) -> dict:
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker():
        with httpx.Client(timeout=300) as c:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                t = time.perf_counter()
                r = c.post(f"{url}/v1/predict", files={"file": ("bench.png", image, "image/png")}, data={"sex": "F"})
                dt = time.perf_counter() - t
                with lock:
                    (lat.append(dt) if r.status_code == 200 else errors.append(f"{r.status_code}: {r.text[:200]}"))

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(lat), "errors": errors, "requests_per_s": round(len(lat) / wall, 2),
            "p50_ms": round(statistics.median(lat) * 1000) if lat else None,
            "p95_ms": round(_pct(lat, 0.95) * 1000) if lat else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--requests", type=int, default=12, help="requests per client level")
    ap.add_argument("--tta", type=int, default=None, help="server's TTA copies (default: the bundle's)")
    ap.add_argument("--workers", type=int, default=None, help="server's --workers (default: cores)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp())
    image = _full_size_png(tmp).read_bytes()
    port = _free_port()
    cmd = [sys.executable, "-m", "boneage.cli", "serve", "--port", str(port)]
    if a.tta:
        cmd += ["--tta", str(a.tta)]
    if a.workers:
        cmd += ["--workers", str(a.workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t_start = time.perf_counter()
    server = subprocess.Popen(cmd, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                print(f"server exited with {server.returncode}", file=sys.stderr)
                return 1
            time.sleep(0.25)
        start_s = time.perf_counter() - t_start
        health = httpx.get(f"{url}/health").json()
        run_level(url, image, 1, 2)  # warm the connection and the decoder
        res = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_avg_1min": round(os.getloadavg()[0], 2),
               "model_version": health["model_version"], "server_workers": health["limits"]["workers"],
               "image": "2000x2500 PNG", "start_to_ready_s": round(start_s, 1), "levels": []}
        print(f"boneage serve load test ({res['machine']}, load {res['load_avg_1min']}): ready in {start_s:.1f} s")
        print(f"  {'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
        failed = False
        for n in a.clients:
            lv = run_level(url, image, n, max(a.requests, n))
            res["levels"].append(lv)
            print(f"  {n:>7} {lv['requests_per_s']:>7} {lv['p50_ms']:>8} {lv['p95_ms']:>8}")
            for e in lv["errors"][:3]:
                print(f"    error {e}")
            failed |= bool(lv["errors"])
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=2))
        return 1 if failed else 0
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
