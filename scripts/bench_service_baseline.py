#!/usr/bin/env python3
"""How long a wide baseline takes the running service: at start and on a rotation.

Builds two baselines of N numeric features (default 200) from generated CSV files of R rows
(default 100,000) with `driftgate baseline build`, then runs `driftgate run` on a stream of those
features whose model's DAG has one task that hands over the second baseline as its
`baseline_output`. It prints:

* start: from the process's start to its `driftgate starting` line (configuration read, every
  baseline loaded and checked) and to `/readyz` answering 200 (consumer assigned);
* rotation: after a manual run through `POST /api/v1/runs`, the `baseline rotated` line's
  `prepared_ms` (load, check and copy, on the executor's thread) and `took_ms` (record and
  switch, the consumer loop's share), and the wall time from the request to that line.

Needs numpy, a release build (`cargo build --release`) and a Kafka broker with a topic the
script can create; with tansu:

    tansu broker --listener-url tcp://127.0.0.1:9092 \\
        --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ &
    python3 scripts/bench_service_baseline.py --broker 127.0.0.1:9092 --tansu tansu

Everything it writes goes to a fresh temporary directory, removed at the end.
"""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_csv(path, rows, features, shift, seed):
    rng = np.random.default_rng(seed)
    names = [f"f{k:04d}" for k in range(features)]
    with open(path, "w") as out:
        out.write(",".join(names) + "\n")
        for start in range(0, rows, 10_000):
            block = rng.normal(loc=shift, size=(min(10_000, rows - start), features))
            np.savetxt(out, block, fmt="%.6f", delimiter=",")
    return names


def build(binary, csv, npz):
    started = time.monotonic()
    subprocess.run([binary, "baseline", "build", "--input", csv, "--output", npz],
                   check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def config(work, broker, names, baseline, next_baseline, port):
    features = ",\n".join(f'  {{ name = "{n}", kind = "numeric" }}' for n in names)
    model_features = ", ".join(f'"{n}"' for n in names)
    return f"""
[kafka]
bootstrap_servers = "{broker}"
group_id = "bench-wide-{secrets.token_hex(4)}"

[store]
path = "{work}/var/driftgate.db"

[api]
listen = "127.0.0.1:{port}"

[runs]
dir = "{work}/var/runs"
token_env = "BENCH_TOKEN"

[[streams]]
name = "wide"
topic = "wide.features"
baseline = "{baseline}"
window = {{ records = 1000 }}
features = [
{features}
]

[[models]]
name = "wide-model"
stream = "wide"
features = [{model_features}]
dag = "swap"

[[dags]]
name = "swap"

[[dags.tasks]]
name = "baseline"
run = ["sh", "-c", "cp {next_baseline} \\"$DRIFTGATE_ARTIFACTS_DIR/baseline.npz\\""]
outputs = ["baseline.npz"]
baseline_output = "baseline.npz"
"""


def get(url, token=None, body=None):
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/driftgate"))
    parser.add_argument("--broker", required=True, help="host:port of a Kafka broker")
    parser.add_argument("--tansu", help="tansu binary, to create the topic on a tansu broker")
    parser.add_argument("--features", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="driftgate-bench-") as work:
        names = write_csv(f"{work}/a.csv", args.rows, args.features, 0.0, 1)
        write_csv(f"{work}/b.csv", args.rows, args.features, 0.1, 2)
        seconds = build(args.binary, f"{work}/a.csv", f"{work}/a.npz")
        build(args.binary, f"{work}/b.csv", f"{work}/b.npz")
        size = os.path.getsize(f"{work}/a.npz") / 1e6
        print(f"baseline: {args.features} features x {args.rows} rows, {size:.0f} MB NPZ "
              f"(built in {seconds:.1f} s)")
        if args.tansu:
            subprocess.run([args.tansu, "topic", "create", "wide.features", "--partitions", "1",
                            "--broker", f"tcp://{args.broker}"], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        path = f"{work}/driftgate.toml"
        with open(path, "w") as out:
            out.write(config(work, args.broker, names, f"{work}/a.npz", f"{work}/b.npz", port))
        token = secrets.token_hex(24)
        env = dict(os.environ, BENCH_TOKEN=token, DRIFTGATE_LOG="info")
        started = time.monotonic()
        service = subprocess.Popen([args.binary, "run", "--config", path, "--log-format", "json"],
                                   cwd=work, env=env, stderr=subprocess.PIPE, text=True)
        events = {}
        seen = threading.Condition()

        def read_log():
            for line in service.stderr:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                message = event.get("fields", {}).get("message", "")
                with seen:
                    events.setdefault(message, (time.monotonic(), event.get("fields", {})))
                    seen.notify_all()

        threading.Thread(target=read_log, daemon=True).start()

        def wait_for(message, timeout=120):
            with seen:
                if not seen.wait_for(lambda: message in events, timeout):
                    lines = "\n".join(f"  {m} {f}" for m, (_, f) in events.items())
                    raise SystemExit(f"no '{message}' line within {timeout} s; the log:\n{lines}")
                return events[message]

        try:
            banner, _ = wait_for("driftgate starting")
            print(f"start: 'driftgate starting' after {1000 * (banner - started):.0f} ms")
            while get(f"http://127.0.0.1:{port}/readyz") != 200:
                if time.monotonic() - started > 120:
                    raise SystemExit("not ready within 120 s")
                time.sleep(0.05)
            print(f"start: /readyz 200 after {1000 * (time.monotonic() - started):.0f} ms")
            asked = time.monotonic()
            status = get(f"http://127.0.0.1:{port}/api/v1/runs", token,
                         json.dumps({"model": "wide-model"}).encode())
            if status != 202:
                raise SystemExit(f"POST /api/v1/runs answered {status}")
            rotated, fields = wait_for("baseline rotated")
            print(f"rotation: prepared in {fields.get('prepared_ms')} ms on the executor's thread "
                  f"(load, check, copy), switched in {fields.get('took_ms')} ms on the consumer "
                  f"loop; {1000 * (rotated - asked):.0f} ms from the request to the line")
        finally:
            service.terminate()
            service.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
