#!/usr/bin/env python3
"""Window close -> webhook received, on a real broker (tansu) and a real HTTP receiver.

Each window's last record is produced (and acknowledged by the broker) at a known time; the
receiver notes when the window's `retrain_triggered` alert arrives. The stream then goes quiet
for --gap-ms, so every window closes on its own last record, as a window does when traffic is
sparse. Prints the median, p99 and max latency over --windows windows.

Run from the repository root:  python3 scripts/bench_latency.py [--windows N] [--property k=v]
Needs tansu (scripts/broker.sh installs it), numpy and confluent-kafka; builds driftgate in
release mode. --property passes a librdkafka property to driftgate's consumer (e.g.
fetch.wait.max.ms=500 to compare with librdkafka's own default).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_kafka import free_port, tansu_binary, wait_port  # noqa: E402
from fault_campaign import Receiver, start_receiver, write_baseline  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 200


def config(work, port, api, hook, properties):
    write_baseline(work, 3)
    extra = "".join(f'"{k}" = "{v}"\n' for k, v in properties)
    text = f"""
[kafka]
bootstrap_servers = "127.0.0.1:{port}"
group_id = "latency"
[kafka.properties]
{extra}
[store]
path = "{work}/store.db"
[api]
listen = "127.0.0.1:{api}"
[[streams]]
name = "s"
topic = "latency"
baseline = "{work}/baseline.json"
window = {{ records = {WINDOW} }}
features = [{{ name = "x", kind = "numeric" }}]
[[models]]
name = "m"
stream = "s"
features = ["x"]
[[policies]]
name = "always"
model = "m"
when = {{ dataset = "share", above = -1.0 }}
cooldown = "0s"
[[alerts.sinks]]
name = "hook"
kind = "webhook"
url = "{hook}"
kinds = ["retrain_triggered"]
"""
    with open(f"{work}/driftgate.toml", "w") as f:
        f.write(text)


def wait_ready(api, deadline_s=60):
    """Until /readyz says the group has assigned the partition."""
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("driftgate did not become ready")


def measure(port, windows, gap_s):
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 0})
    rng = np.random.default_rng(5)
    closed = []
    for _ in range(windows):
        for x in rng.normal(0, 1, WINDOW):
            producer.produce("latency", json.dumps({"x": float(x)}).encode())
            producer.flush()
        closed.append(time.time())
        time.sleep(gap_s)
    deadline = time.time() + 30
    while len(Receiver.ids) < windows and time.time() < deadline:
        time.sleep(0.1)
    received = {int(i.rsplit("/", 1)[1]): at for i, at in Receiver.ids}
    return [received[w] - closed[w] for w in range(windows) if w in received]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--gap-ms", type=float, default=300)
    parser.add_argument("--property", action="append", default=[], help="librdkafka k=v")
    args = parser.parse_args()
    properties = [p.split("=", 1) for p in args.property]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    port, api = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="driftgate-latency-")
    tansu = tansu_binary()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([tansu, "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine",
                               "memory://tansu/"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    service = None
    try:
        wait_port(port)
        subprocess.run([tansu, "topic", "create", "latency", "--partitions", "1", "--broker",
                        url], check=True, stdout=subprocess.DEVNULL)
        config(work, port, api, start_receiver(), properties)
        log = open(f"{work}/service.log", "w")
        service = subprocess.Popen([f"{ROOT}/target/release/driftgate", "run", "--config",
                                    f"{work}/driftgate.toml"], stderr=log, stdout=log)
        wait_ready(api)
        latencies = np.array(measure(port, args.windows, args.gap_ms / 1000)) * 1000
        print(json.dumps({
            "windows": args.windows,
            "received": len(latencies),
            "properties": dict(properties),
            "median_ms": round(float(np.median(latencies)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "max_ms": round(float(latencies.max()), 1),
        }, indent=2))
    finally:
        if service:
            service.terminate()
            service.wait()
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
