#!/usr/bin/env python3
"""Side-by-side benchmark of the archiver against the server limits (see BENCHMARKS.md).

Needs: scripts/services up, and `swift build -c release` (archiver, archiver-bench).
Environment: BENCH_EVENTS (200000), BENCH_SMALL_EVENTS (for batch size 1; 3000), BENCH_LATENCY_SECONDS (10),
BENCH_SAGA_ORDERS (1000), BENCH_ONLY=sagas to run the saga throughput alone.
"""
import json, os, subprocess, sys, threading, time, urllib.request
import pymongo
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(__file__))
import produce_events as pe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, ".build", "release")
BROKERS, MONGO = pe.BROKERS, pe.MONGO_URI
N = int(os.environ.get("BENCH_EVENTS", "200000"))
SMALL = int(os.environ.get("BENCH_SMALL_EVENTS", "3000"))
LAT_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "10"))
TICK = os.sysconf("SC_CLK_TCK")
run_id = str(int(time.time()))


def topics(prefix):
    names = [f"{prefix}.balance", f"{prefix}.payment", f"{prefix}.order"]
    admin = AdminClient({"bootstrap.servers": BROKERS})  # must outlive the futures
    fs = admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1) for t in names])
    for f in fs.values():
        f.result(timeout=30)
    return names


def produce(prefix, count):
    b, p, _ = topics(prefix)
    prod = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 20, "queue.buffering.max.messages": 1000000})
    now = int(time.time() * 1000)
    for i in range(count):
        user, order = i % 5000, 100000 + i // 3
        if i % 3 == 2:
            prod.produce(p, key=str(order), value=pe.completed(user, order, order, 1000, f"pay-{order}", now))
        else:
            prod.produce(b, key=str(user), value=pe.deducted(user, order, order, 1000, 10 ** 9, f"pay-{order}", now))
        if i % 10000 == 0:
            prod.poll(0)
    prod.flush(300)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


def metric_sum(port, name):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        return -1
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def start_archiver(prefix, database, batch, port):
    args = [os.path.join(REL, "archiver"), "run", "--brokers", BROKERS, "--mongo-uri", MONGO, "--database", database,
            "--group", f"bench-{database}", "--topics", ",".join(f"{prefix}.{t}" for t in ("balance", "payment", "order")),
            "--admin-port", str(port), "--admin-host", "127.0.0.1", "--batch-size", str(batch),
            "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000",
            "--dead-letter-topic", f"{prefix}.dlq", "--compensation-topic", f"{prefix}.compensation"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(f"{ROOT}/.run/bench-archiver-{batch}.log", "w"),
                            env=dict(os.environ, LOG_LEVEL="warning"))


def drain(prefix, count, batch, port):
    database = f"bench_{run_id}_b{batch}"
    proc = start_archiver(prefix, database, batch, port)
    t0 = c0 = None
    while True:
        consumed = metric_sum(port, "archiver_events_consumed_total")
        now = time.time()
        if consumed > 0 and t0 is None:
            t0, c0 = now, cpu_seconds(proc.pid)
        if consumed >= count and metric_sum(port, "archiver_events_archived_total") >= count:
            t1, c1 = now, cpu_seconds(proc.pid)
            break
        if proc.poll() is not None:
            sys.exit(f"archiver exited early; see .run/bench-archiver-{batch}.log")
        # Every scrape renders the whole registry inside the archiver: scrape gently, or the
        # scraping shows up in the archiver's CPU per event.
        time.sleep(0.02 if t0 is None else 0.25)
    rss = peak_rss_mib(proc.pid)
    proc.terminate()
    proc.wait(30)
    docs = pymongo.MongoClient(MONGO)[database].balance_history.estimated_document_count() + \
        pymongo.MongoClient(MONGO)[database].payment_history.estimated_document_count()
    return {"batch": batch, "events": count, "seconds": t1 - t0, "rate": count / (t1 - t0),
            "cpu_us_per_event": (c1 - c0) / count * 1e6, "peak_rss_mib": rss, "documents": docs}


def python_consumer(prefix, count):
    """The comparison: a plain confluent-kafka + pymongo archiver loop (decode JSON, bulk upsert 1000)."""
    db = pymongo.MongoClient(MONGO)[f"bench_{run_id}_py"]
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": f"bench-py-{run_id}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000, "max.poll.interval.ms": 10000})
    c.subscribe([f"{prefix}.balance", f"{prefix}.payment"])
    seen, t0, cpu0 = 0, None, None
    while seen < count:
        msgs = c.consume(1000, 0.5)
        if not msgs:
            continue
        if t0 is None:
            t0, cpu0 = time.time(), time.process_time()
        ops = {"balance_history": [], "payment_history": []}
        for m in msgs:
            e = json.loads(m.value())
            d = dict(e["data"], sagaId=e["sagaid"], occurredAt=e["time"], source={"topic": m.topic(), "partition": m.partition(), "offset": m.offset()})
            ops["balance_history" if e["type"].startswith("commerce.balance") else "payment_history"].append(
                pymongo.UpdateOne({"_id": e["id"]}, {"$setOnInsert": d}, upsert=True))
        for coll, batch in ops.items():
            if batch:
                db[coll].bulk_write(batch, ordered=False)
        c.commit(asynchronous=False)
        seen += len(msgs)
    result = {"events": count, "seconds": time.time() - t0, "cpu_us_per_event": (time.process_time() - cpu0) / count * 1e6}
    c.close()
    return result


def latency(rate, port):
    prefix = f"bench{run_id}lat"
    b, p, _ = topics(prefix)
    database = f"bench_{run_id}_lat"
    proc = start_archiver(prefix, database, 1000, port)
    while metric_sum(port, "archiver_consumer_lag") < 0 or not urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read():
        time.sleep(0.1)
    time.sleep(8)  # group join
    coll = pymongo.MongoClient(MONGO)[database].balance_history
    produced, visible, stop = [], [], threading.Event()

    def watch():
        while not stop.is_set():
            visible.append((time.time(), coll.estimated_document_count()))
            time.sleep(0.005)

    w = threading.Thread(target=watch)
    w.start()
    prod = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 0})
    total = int(rate * LAT_SECONDS)
    start = time.time()
    for i in range(total):
        due = start + i / rate
        while time.time() < due:
            time.sleep(0.0005)
        prod.produce(b, key=str(i % 5000), value=pe.deducted(i % 5000, i, i, 1000, 10 ** 9, f"pay-lat-{i}"))
        prod.poll(0)
        produced.append(time.time())
    prod.flush(30)
    deadline = time.time() + 60
    while (not visible or visible[-1][1] < total) and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    w.join()
    proc.terminate()
    proc.wait(30)
    lat, j = [], 0
    for k, sent in enumerate(produced):
        while j < len(visible) and visible[j][1] <= k:
            j += 1
        if j < len(visible):
            lat.append((visible[j][0] - sent) * 1000)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    return {"rate": rate, "events": total, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1]}


def sagas(orders):
    """Order+payment sagas through `commerce serve all` (release) with the archiver running,
    driven by `commerce simulate` with no injected faults; history invariant included."""
    import socket
    def free_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    prefix, port = f"saga{run_id}.", free_port()
    data = os.path.join(ROOT, ".run", f"bench-saga-{run_id}")
    log = open(os.path.join(ROOT, ".run", f"bench-saga-{run_id}.log"), "w")
    env = dict(os.environ, LOG_LEVEL="warning")
    services = subprocess.Popen([os.path.join(REL, "commerce"), "serve", "all", "--data-dir", data, "--http-port", str(port),
                                 "--topic-prefix", prefix, "--brokers", BROKERS], stdout=log, stderr=log, env=env)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    AdminClient({"bootstrap.servers": BROKERS}).create_topics(
        [NewTopic(prefix + t, num_partitions=4, replication_factor=1) for t in ("archive.dlq", "archive.compensation")])
    archiver = subprocess.Popen([os.path.join(REL, "archiver"), "run", "--brokers", BROKERS, "--mongo-uri", MONGO,
                                 "--database", f"bench_saga_{run_id}", "--group", f"bench-saga-{run_id}", "--admin-port", str(free_port()),
                                 "--topics", ",".join(prefix + "commerce." + t for t in ("balance", "payment", "order")),
                                 "--dead-letter-topic", prefix + "archive.dlq", "--compensation-topic", prefix + "archive.compensation",
                                 "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000"], stdout=log, stderr=log, env=env)
    time.sleep(4)
    cpu0 = cpu_seconds(services.pid)
    t = time.time()
    sim = subprocess.run([os.path.join(REL, "commerce"), "simulate", "--orders", str(orders), "--users", "100", "--concurrency", "16",
                          "--url", f"http://127.0.0.1:{port}", "--mongo-uri", MONGO, "--database", f"bench_saga_{run_id}"],
                         capture_output=True, text=True)
    seconds = time.time() - t
    cpu = cpu_seconds(services.pid) - cpu0
    for p in (services, archiver):
        p.terminate()
        p.wait(60)
    counts = {}
    for line in sim.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].isdigit():
            counts[parts[1]] = counts.get(parts[1], 0) + int(parts[0])
    paid = counts.get("PAID", 0)
    held = "all invariants hold" in sim.stdout
    return (f"sagas: {orders} orders in {seconds:.1f} s (seeding and settling included), {paid} paid: "
            f"{paid / seconds:.1f} completed order+payment saga pairs/s, {orders / seconds:.1f} orders/s; "
            f"services CPU {cpu * 1000 / max(1, orders):.1f} ms per order; invariants {'hold' if held else 'FAILED'}")


def main():
    if os.environ.get("BENCH_ONLY") == "sagas":
        print(sagas(int(os.environ.get("BENCH_SAGA_ORDERS", "1000"))))
        return
    out = []
    prefix = f"bench{run_id}"
    t = time.time(); produce(prefix, N); out.append(f"pre-produced {N} events in {time.time() - t:.1f} s")
    small = f"bench{run_id}s"
    produce(small, SMALL)
    base = subprocess.run([os.path.join(REL, "archiver-bench"), "mongo", MONGO, f"bench_{run_id}_raw", str(N), "1000"],
                          capture_output=True, text=True, check=True).stdout.strip()
    mongo_rate = float(base.rsplit("=", 1)[1])
    kafka = subprocess.run([os.path.join(REL, "archiver-bench"), "kafka", BROKERS, f"{prefix}.balance,{prefix}.payment", str(N)],
                           capture_output=True, text=True, check=True).stdout.strip()
    out += [base, kafka]
    runs = [drain(prefix, N, 1000, 19464), drain(prefix, N, 100, 19465), drain(small, SMALL, 1, 19466)]
    py = python_consumer(prefix, N)
    lat = latency(max(50.0, runs[0]["rate"] / 2), 19467)
    out.append("")
    out.append("| run | events | events/s | vs raw libmongoc | CPU us/event | peak RSS MiB |")
    out.append("|---|---|---|---|---|---|")
    out.append(f"| raw libmongoc bulk upserts, batch 1000 | {N} | {mongo_rate:,.0f} | 1.00x | | |")
    for r in runs:
        out.append(f"| archiver run, batch {r['batch']} | {r['events']} | {r['rate']:,.0f} | {r['rate'] / mongo_rate:.2f}x | "
                   f"{r['cpu_us_per_event']:.2f} | {r['peak_rss_mib']:.1f} |")
    out.append(f"| confluent-kafka + pymongo loop, batch 1000 | {py['events']} | {py['events'] / py['seconds']:,.0f} | "
               f"{py['events'] / py['seconds'] / mongo_rate:.2f}x | {py['cpu_us_per_event']:.2f} | |")
    out.append("")
    out.append(f"latency produce -> document visible at {lat['rate']:.0f} events/s (half the batch-1000 drain rate), "
               f"{lat['events']} events: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms")
    out.append("")
    out.append(sagas(int(os.environ.get("BENCH_SAGA_ORDERS", "1000"))))
    print("\n".join(out))


if __name__ == "__main__":
    main()
