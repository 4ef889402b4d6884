#!/usr/bin/env python3
"""Fault campaigns on real parts (a tansu broker, real task processes, a real webhook receiver).

  kill     SIGKILLs `driftgate run` --kills times while records stream in, windows close, runs
           are in flight and alerts are pending; restarts it each time; then checks that every
           window was reported once, every run ran once, task processes started = attempts
           recorded, no two processes of one task ever ran at once (each task holds an flock on
           its own (run, task) file: a second live holder writes OVERLAP), and every alert
           reached the receiver (and how many twice: the documented crash window).
  outage   the receiver answers 503 for --outage-s seconds while alerts are raised; a sink with
           max_age and max_backoff scaled down by --scale (one hour of outage against the
           default 24 h max_age and 5 min max_backoff at --scale 60) must deliver every one of
           them after the outage, none dead.

Run from the repository root:  python3 scripts/fault_campaign.py kill|outage
Needs tansu (scripts/broker.sh installs it), numpy and confluent-kafka; builds driftgate in
release mode. Prints the figures; exits 1 when a guarantee was broken.
"""
import argparse
import http.server
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_kafka import free_port, tansu_binary, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 500
TOKEN = "campaign-token-5e0c2a9d41"

TASK = r"""
import fcntl, os, sys, time
run, task = os.environ["DRIFTGATE_RUN_ID"], os.environ["DRIFTGATE_TASK"]
log = sys.argv[1]
lock = open(os.path.join(os.path.dirname(log), f"{run}.{task}.lock"), "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    state = "start"
except OSError:
    state = "OVERLAP"
with open(log, "a") as f:
    f.write(f"{state} {run} {task} {os.getpid()} {time.time()}\n")
time.sleep(float(sys.argv[2]))
with open(log, "a") as f:
    f.write(f"end {run} {task} {os.getpid()} {time.time()}\n")
"""


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records each alert id it takes; answers 503 while `failing` is set."""

    ids = []
    failing = threading.Event()
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if Receiver.failing.is_set():
            self.send_response(503)
            self.end_headers()
            return
        with Receiver.lock:
            Receiver.ids.append((json.loads(body)["id"], time.time()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def write_baseline(work, seed):
    """`work`/baseline.json: 5,000 standard normal values of one numeric feature, `x`."""
    rng = np.random.default_rng(seed)
    with open(f"{work}/reference.jsonl", "w") as f:
        for x in rng.normal(0, 1, 5000):
            f.write(json.dumps({"x": float(x)}) + "\n")
    subprocess.run([f"{ROOT}/target/release/driftgate", "baseline", "build", "--input",
                    f"{work}/reference.jsonl", "--output", f"{work}/baseline.json"],
                   check=True, stderr=subprocess.DEVNULL)


def write_files(work, port, hook, sink_extra, task_seconds):
    write_baseline(work, 7)
    task = json.dumps(["python3", "-c", TASK, f"{work}/tasks.log", str(task_seconds)])
    config = f"""
[kafka]
bootstrap_servers = "127.0.0.1:{port}"
group_id = "campaign"
# A killed instance leaves a member behind: the group waits this long before giving its
# partitions to the restarted one.
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}
[store]
path = "{work}/store.db"
checkpoint_interval = "500ms"
[api]
listen = "127.0.0.1:{free_port()}"
[runs]
dir = "{work}/runs"
token_env = "CAMPAIGN_TOKEN"
[[streams]]
name = "s"
topic = "campaign"
baseline = "{work}/baseline.json"
window = {{ records = {WINDOW} }}
features = [{{ name = "x", kind = "numeric" }}]
[[models]]
name = "m"
stream = "s"
features = ["x"]
dag = "d"
[[policies]]
name = "always"
model = "m"
when = {{ dataset = "share", above = -1.0 }}
in_flight = "trigger"
cooldown = "0s"
[[dags]]
name = "d"
[[dags.tasks]]
name = "work"
run = {task}
[[alerts.sinks]]
name = "hook"
kind = "webhook"
url = "{hook}"
kinds = ["retrain_triggered"]
{sink_extra}
"""
    with open(f"{work}/driftgate.toml", "w") as f:
        f.write(config)
    return config.split('listen = "')[1].split('"')[0]


def start_service(work):
    env = dict(os.environ, CAMPAIGN_TOKEN=TOKEN, DRIFTGATE_LOG="info")
    log = open(f"{work}/service.log", "a")
    return subprocess.Popen([f"{ROOT}/target/release/driftgate", "run", "--config",
                             f"{work}/driftgate.toml"], env=env, stderr=log, stdout=log)


def produce(port, windows, seconds, stop):
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 0})
    rng = np.random.default_rng(11)
    total = windows * WINDOW
    # One record per request: tansu 0.6 answers a fetch that starts inside a batch from the next
    # batch (the rest of the batch is never served), and reports a partition's end behind its
    # last batch; single-record batches keep the campaign about driftgate.
    for i, x in enumerate(rng.normal(0, 1, total)):
        producer.produce("campaign", json.dumps({"x": float(x)}).encode(), partition=i % 2)
        producer.flush()
        if i % 50 == 0:
            time.sleep(seconds / (total / 50))
        if stop.is_set():
            break


def api(address, path):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as answer:
        return json.loads(answer.read())


def settle(address, service, windows, deadline_s):
    """Waits until every window is stored, no run is open and no alert is pending."""
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            stored = api(address, "/api/v1/streams")["streams"][0]["windows"]
            runs = api(address, "/api/v1/runs?limit=1000")["runs"]
            open_runs = [r for r in runs if r["status"] in ("queued", "running")]
            pending = api(address, "/api/v1/alerts?status=pending&limit=1")["counts"]
            if (stored >= windows or window_count(service) >= windows) and not open_runs \
                    and pending.get("pending", 0) == 0:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("the service did not settle")


def window_count(work):
    with sqlite3.connect(f"file:{work}/store.db?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM windows").fetchone()[0]


def kill_campaign(args, work, port):
    hook = start_receiver()
    address = write_files(work, port, hook, 'backoff = "200ms"', args.task_seconds)
    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(port, args.windows, args.seconds, stop))
    producer.start()
    rng = random.Random(args.seed)
    service = start_service(work)
    for _ in range(args.kills):
        time.sleep(rng.uniform(0.5, 2 * args.seconds / args.kills))
        service.send_signal(signal.SIGKILL)
        service.wait()
        service = start_service(work)
    producer.join()
    wait_port(int(address.split(":")[1]), 60)
    settle(address, work, args.windows, 300)
    service.send_signal(signal.SIGTERM)
    service.wait()
    return report_kills(work, args)


def report_kills(work, args):
    with sqlite3.connect(f"file:{work}/store.db?mode=ro", uri=True) as db:
        windows = db.execute("SELECT idx FROM windows").fetchall()
        runs = db.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
        attempts = db.execute("SELECT count(*) FROM run_attempts").fetchone()[0]
        alerts = db.execute("SELECT count(*) FROM alerts WHERE kind = 'retrain_triggered'")\
            .fetchone()[0]
    lines = [line.split() for line in open(f"{work}/tasks.log")]
    started = [line for line in lines if line[0] in ("start", "OVERLAP")]
    overlaps = [line for line in lines if line[0] == "OVERLAP"]
    ids = [i for i, _ in Receiver.ids]
    indices = [w for (w,) in windows]
    figures = {
        "kills": args.kills,
        "windows_expected": args.windows,
        "windows_stored": len(indices),
        "windows_distinct": len(set(indices)),
        "runs_by_status": dict(runs),
        "task_processes_started": len(started),
        "attempts_recorded": attempts,
        "overlapping_processes": len(overlaps),
        "alerts_raised": alerts,
        "alerts_received": len(ids),
        "alerts_distinct_received": len(set(ids)),
        "alerts_received_twice": len(ids) - len(set(ids)),
    }
    print(json.dumps(figures, indent=2))
    broken = (len(indices) != args.windows or len(set(indices)) != len(indices)
              or len(started) != attempts or overlaps or len(set(ids)) != alerts)
    return 1 if broken else 0


def outage_campaign(args, work, port):
    hook = start_receiver()
    max_age = 24 * 3600 / args.scale
    max_backoff = 300 / args.scale
    extra = f'backoff = "20ms"\nmax_backoff = "{max_backoff:.3f}s"\nmax_age = "{max_age:.0f}s"'
    address = write_files(work, port, hook, extra, 0.1)
    Receiver.failing.set()
    service = start_service(work)
    stop = threading.Event()
    produce(port, args.windows, args.outage_s * 0.8, stop)
    time.sleep(max(0.0, args.outage_s - args.outage_s * 0.8))
    recovered = time.time()
    Receiver.failing.clear()
    settle(address, work, args.windows, 120 + max_backoff * 2)
    alerts = api(address, "/api/v1/alerts?limit=1000")
    service.send_signal(signal.SIGTERM)
    service.wait()
    received = {i: at for i, at in Receiver.ids}
    waits = sorted(at - recovered for at in received.values())
    # One entry per alert and sink: the webhook's (other kinds stay unrouted).
    deliveries = [d for d in alerts["alerts"] if d["sink"] == "hook"]
    figures = {
        "scale": args.scale,
        "outage_s": args.outage_s,
        "outage_simulated_h": args.outage_s * args.scale / 3600,
        "max_age_s": max_age,
        "max_backoff_s": max_backoff,
        "alerts_raised": len({d["id"] for d in deliveries}),
        "alerts_received": len(received),
        "dead": alerts["counts"].get("dead", 0),
        "attempts_max": max(d["attempts"] for d in deliveries),
        "first_received_after_recovery_s": waits[0],
        "last_received_after_recovery_s": waits[-1],
        "received_twice": len(Receiver.ids) - len(received),
    }
    print(json.dumps(figures, indent=2))
    return 0 if figures["alerts_received"] == figures["alerts_raised"] and not figures["dead"] \
        else 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("campaign", choices=["kill", "outage"])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=150.0, help="time to produce over")
    parser.add_argument("--task-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=60.0)
    parser.add_argument("--outage-s", type=float, default=60.0)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    port = free_port()
    work = tempfile.mkdtemp(prefix="driftgate-campaign-")
    broker = subprocess.Popen([tansu_binary(), "broker", "--listener-url",
                               f"tcp://127.0.0.1:{port}", "--advertised-listener-url",
                               f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        subprocess.run([tansu_binary(), "topic", "create", "campaign", "--partitions", "2",
                        "--broker", f"tcp://127.0.0.1:{port}"], check=True,
                       stdout=subprocess.DEVNULL)
        if args.campaign == "kill":
            code = kill_campaign(args, work, port)
        else:
            code = outage_campaign(args, work, port)
        print(f"work directory: {work}")
        sys.exit(code)
    finally:
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
