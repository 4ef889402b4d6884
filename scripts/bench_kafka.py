#!/usr/bin/env python3
"""End-to-end throughput on a real broker: 1,000,000 records (10,000 messages of 100 records, 10
numeric and 2 categorical features) on a tansu topic, consumed by `driftgate run` (consume ->
decode -> window -> report -> checkpoint) beside an independent raw consumer that does nothing
with the messages (confluent-kafka, batch consume()): the broker's ceiling. Prints records/s,
the ratio, and driftgate's peak memory.

Run from the repository root:  python3 scripts/bench_kafka.py [--messages N] [--store URL]
(`--store postgres://…` measures one instance on the shared PostgreSQL store.)
Needs tansu (scripts/broker.sh installs it), numpy and confluent-kafka (pip install
confluent-kafka); builds driftgate in release mode.

Both sides are timed from the first message they receive to the last, so group joins and
process start-up are left out of both.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from confluent_kafka import Consumer, Producer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMERIC = [f"n{i}" for i in range(10)]
CATEGORICAL = ["c0", "c1"]
LABELS = ["a", "b", "c", "d", "e"]
WINDOW = 2000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tansu_binary():
    found = shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")
    if not os.path.exists(found):
        sys.exit("tansu not found: run `source scripts/broker.sh && ensure_tansu` first")
    return found


def wait_port(port, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listening on {port}")


def batch(rng):
    nums = rng.normal(0, 1, (100, len(NUMERIC)))
    cats = rng.integers(0, len(LABELS), (100, len(CATEGORICAL)))
    records = []
    for r in range(100):
        rec = {k: round(float(nums[r, i]), 6) for i, k in enumerate(NUMERIC)}
        rec.update({k: LABELS[cats[r, i]] for i, k in enumerate(CATEGORICAL)})
        records.append(rec)
    return json.dumps({"records": records}).encode()


def metric(api, name):
    body = urllib.request.urlopen(f"http://{api}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--store", default=None,
                        help="the store URL (default: a SQLite file in a temporary directory); "
                             "e.g. postgres://USER@HOST:PORT/DATABASE for the shared store")
    args = parser.parse_args()
    total_records = args.messages * 100

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "driftgate")
    tansu = tansu_binary()
    port = free_port()
    broker = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        tansu_proc = subprocess.Popen(
            [tansu, "broker", "--listener-url", f"tcp://{broker}", "--advertised-listener-url",
             f"tcp://{broker}", "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            subprocess.run([tansu, "topic", "create", "bench", "--partitions", str(args.partitions),
                            "--broker", f"tcp://{broker}"], check=True, stdout=subprocess.DEVNULL)
            rng = np.random.default_rng(9)
            payloads = [batch(rng) for _ in range(min(args.messages, 200))]
            producer = Producer({"bootstrap.servers": broker, "linger.ms": 20})
            for m in range(args.messages):
                while True:
                    try:
                        producer.produce("bench", payloads[m % len(payloads)])
                        break
                    except BufferError:
                        producer.poll(0.1)
                producer.poll(0)
            producer.flush(60)

            # Raw consumer: the ceiling.
            consumer = Consumer({"bootstrap.servers": broker, "group.id": "raw",
                                 "auto.offset.reset": "earliest", "enable.auto.commit": False})
            consumer.subscribe(["bench"])
            received, first = 0, None
            while received < args.messages:
                for message in consumer.consume(num_messages=1000, timeout=1.0):
                    if message.error():
                        continue
                    if first is None:
                        first = time.perf_counter()
                    received += 1
            raw_seconds = time.perf_counter() - first
            consumer.close()

            # driftgate.
            reference = {k: rng.normal(0, 1, 20000).round(6).tolist() for k in NUMERIC}
            reference.update({k: [LABELS[i] for i in rng.integers(0, 5, 20000)] for k in CATEGORICAL})
            train = os.path.join(tmp, "train.jsonl")
            with open(train, "w") as f:
                for i in range(20000):
                    f.write(json.dumps({k: reference[k][i] for k in NUMERIC + CATEGORICAL}) + "\n")
            baseline = os.path.join(tmp, "baseline.json")
            subprocess.run([binary, "baseline", "build", "--input", train, "--output", baseline],
                           check=True, stdout=subprocess.DEVNULL)
            api = f"127.0.0.1:{free_port()}"
            features = ", ".join(
                [f'{{ name = "{k}", kind = "numeric" }}' for k in NUMERIC]
                + [f'{{ name = "{k}", kind = "categorical" }}' for k in CATEGORICAL])
            config = os.path.join(tmp, "bench.toml")
            with open(config, "w") as f:
                f.write(f"""
[kafka]
bootstrap_servers = "{broker}"
group_id = "driftgate-bench"
[store]
url = "{args.store or f'sqlite:{tmp}/bench.db'}"
[api]
listen = "{api}"
[[streams]]
name = "bench"
topic = "bench"
baseline = "{baseline}"
window = {{ records = {WINDOW} }}
features = [{features}]
""")
            service = subprocess.Popen([binary, "run", "--config", config],
                                       stderr=subprocess.DEVNULL)
            try:
                first = None
                deadline = time.time() + 600
                while True:
                    try:
                        records = metric(api, "driftgate_records_total")
                        windows = metric(api, "driftgate_windows_total")
                    except OSError:
                        records, windows = 0.0, 0.0
                    now = time.perf_counter()
                    if first is None and records > 0:
                        first = now
                    # Consume to report: every record counted and every window reported.
                    if records >= total_records and windows >= total_records // WINDOW:
                        break
                    if time.time() > deadline:
                        sys.exit(f"driftgate counted {records:.0f} of {total_records} records"
                                 f" and {windows:.0f} windows")
                    time.sleep(0.02)
                driftgate_seconds = now - first
                with open(f"/proc/{service.pid}/status") as status:
                    rss = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
            finally:
                service.terminate()
                service.wait(30)
        finally:
            tansu_proc.terminate()
            tansu_proc.wait(30)

    raw_rate = total_records / raw_seconds
    rate = total_records / driftgate_seconds
    store = "PostgreSQL" if args.store else "SQLite"
    print(f"{total_records:,} records in {args.messages:,} messages on tansu, {args.partitions} partitions, store {store}")
    print(f"  raw confluent-kafka consumer  {raw_rate:12,.0f} records/s")
    print(f"  driftgate run                 {rate:12,.0f} records/s   {rate / raw_rate:.2f}x the raw consumer"
          f"   {windows:.0f} windows   peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
