#!/usr/bin/env python3
"""Side-by-side benchmark of the archiver against the server limits (see BENCHMARKS.md).

Needs: scripts/services up, and `swift build -c release` (archiver, archiver-bench).
Environment: BENCH_EVENTS (200000), BENCH_SMALL_EVENTS (for batch size 1; 3000), BENCH_LATENCY_SECONDS (10),
BENCH_LATENCY_WARMUP_SECONDS (3, produced at the same rate before the latency is counted),
BENCH_SAGA_ORDERS (1000 per run), BENCH_SAGA_CONCURRENCY (16,64,128), BENCH_SAGA_LATENCY_SECONDS (10: length of the
half-rate latency run), BENCH_ONLY=sagas to run the saga throughput alone, BENCH_ONLY=archiver to run all but it,
BENCH_VS_ARCHIVER=PATH to drain with another build of `archiver` too, alternated with this one (a regression check),
BENCH_AUTH=none to serve the sagas without bearer tokens (what checking them costs).
"""
import json, os, shutil, subprocess, sys, threading, time, urllib.request
from datetime import datetime, timezone
import pymongo
from bson.int64 import Int64
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(__file__))
import produce_events as pe
import tokens

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, ".build", "release")
tokens.use_own_keys()  # every serve below checks tokens, every simulate signs them
if os.environ.get("BENCH_AUTH") == "none":
    os.environ["COMMERCE_AUTH"] = "none"  # what checking tokens costs: the same run without (simulate still sends them)
BROKERS, MONGO = pe.BROKERS, pe.MONGO_URI
N = int(os.environ.get("BENCH_EVENTS", "200000"))
SMALL = int(os.environ.get("BENCH_SMALL_EVENTS", "3000"))
LAT_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_LATENCY_WARMUP_SECONDS", "3"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
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
    """user+sys of a process; for a negative pid, of that process tree (-pid with its children,
    living and reaped), as PostgreSQL's postmaster with its backends."""
    if pid < 0:
        return tree_cpu_seconds(-pid)
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_seconds(root):
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == root:  # its own, and its reaped children's (cutime, cstime)
            total += sum(int(f) for f in fields[11:15]) / TICK
        elif int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


def metric_sums(port, *names):
    """Each metric's sum over its labels, from one scrape (a scrape costs the archiver about
    0.6 ms of CPU: two per poll of the drain were a tenth of its CPU per event); -1 when down."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        return [-1 for _ in names]
    lines = text.splitlines()
    return [sum(float(l.rsplit(" ", 1)[1]) for l in lines if l.startswith(name)) for name in names]


VS_ARCHIVER = os.environ.get("BENCH_VS_ARCHIVER")


def start_archiver(prefix, database, batch, port, binary=None, log_level="warning"):
    args = [binary or os.path.join(REL, "archiver"), "run", "--brokers", BROKERS, "--mongo-uri", MONGO, "--database", database,
            "--group", f"bench-{database}", "--topics", ",".join(f"{prefix}.{t}" for t in ("balance", "payment", "order")),
            "--admin-port", str(port), "--admin-host", "127.0.0.1", "--batch-size", str(batch),
            "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000",
            "--dead-letter-topic", f"{prefix}.dlq", "--compensation-topic", f"{prefix}.compensation"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(f"{ROOT}/.run/bench-archiver-{batch}.log", "w"),
                            env=dict(os.environ, LOG_LEVEL=log_level))


def drain(prefix, count, batch, port, binary=None, log_level="warning"):
    database = f"bench_{run_id}_b{batch}_{time.time_ns()}"
    proc = start_archiver(prefix, database, batch, port, binary, log_level)
    t0 = c0 = None
    while True:
        consumed, archived = metric_sums(port, "archiver_events_consumed_total", "archiver_events_archived_total")
        now = time.time()
        if consumed > 0 and t0 is None:
            t0, c0 = now, cpu_seconds(proc.pid)
        if consumed >= count and archived >= count:
            t1, c1 = now, cpu_seconds(proc.pid)
            break
        if proc.poll() is not None:
            sys.exit(f"archiver exited early; see .run/bench-archiver-{batch}.log")
        # Every scrape renders the whole registry inside the archiver: scrape gently, or the scraping
        # shows up in the archiver's CPU per event. But a drain that ends between two scrapes a
        # second apart is timed up to a second late (20,000 events measured 4.0 s, i.e. 5,000/s,
        # run after run): sleep at most 80% of the time left at the rate so far, and 50 ms near the end.
        if t0 is None:
            time.sleep(0.02)
        else:
            left = (count - consumed) / max(consumed / max(now - t0, 1e-3), 1.0)
            time.sleep(min(1.0, max(0.05, 0.8 * left)))
    rss = peak_rss_mib(proc.pid)
    proc.terminate()
    proc.wait(30)
    client = pymongo.MongoClient(MONGO)
    docs = client[database].balance_history.estimated_document_count() + client[database].payment_history.estimated_document_count()
    dropped(database)
    return {"batch": batch, "events": count, "seconds": t1 - t0, "rate": count / (t1 - t0),
            "cpu_us_per_event": (c1 - c0) / count * 1e6, "peak_rss_mib": rss, "documents": docs}


def history_doc(e, m, archived_at):
    """The document `archiver run` writes for this event (contract §5): every field, Int64 integers,
    BSON dates, the source position. A peer that writes less is not a peer."""
    d, t = e["data"], e["type"]
    src = {"topic": m.topic(), "partition": m.partition(), "offset": Int64(m.offset())}
    occurred = datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
    if t.startswith("commerce.balance"):
        doc = {"_id": e["id"], "userId": Int64(d["userId"]), "type": "CHARGE" if t.endswith("charged") else "DEDUCT",
               "amount": Int64(d["amount"]), "balanceBefore": Int64(d["balanceBefore"]), "balanceAfter": Int64(d["balanceAfter"])}
        for k in ("orderId", "paymentId"):
            if d.get(k) is not None:
                doc[k] = Int64(d[k])
        coll = "balance_history"
    else:
        doc = {"_id": e["id"], "paymentId": Int64(d["paymentId"]), "orderId": Int64(d["orderId"]), "userId": Int64(d["userId"]),
               "amount": Int64(d["amount"]), "status": d["status"]}
        coll = "payment_history"
    doc.update(sagaId=e["sagaid"], occurredAt=occurred, archivedAt=archived_at, source=src)
    return coll, doc


def dropped(database):
    """Drops a database this run made: the Mongo-wire server slows as its data folder grows (one
    SQLite file per database), so a run leaves nothing for the next contender to wade through."""
    pymongo.MongoClient(MONGO).drop_database(database)


def migrated(database):
    """A fresh database with the contract's collections and indexes, made by `archiver migrate`:
    every contender pays for the same index maintenance the archiver pays for."""
    subprocess.run([os.path.join(REL, "archiver"), "migrate", "--mongo-uri", MONGO, "--database", database], check=True,
                   stdout=subprocess.DEVNULL)
    return database


def python_consumer(prefix, count, inserts=False):
    """The peer: a plain confluent-kafka + pymongo loop writing the archiver's documents, one unordered
    bulk per collection per 1,000 events, commit after the write. As the issue describes it, with
    `$setOnInsert` upserts; with inserts=True, plain inserts whose duplicate-key errors mean "already
    archived", the archiver's own strategy."""
    db = pymongo.MongoClient(MONGO)[migrated(f"bench_{run_id}_py{'i' if inserts else 'u'}_{time.time_ns()}")]
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": f"bench-py-{time.time_ns()}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000, "max.poll.interval.ms": 10000})
    c.subscribe([f"{prefix}.balance", f"{prefix}.payment"])
    seen, t0, cpu0 = 0, None, None
    while seen < count:
        msgs = c.consume(1000, 0.5)
        if not msgs:
            continue
        if t0 is None:
            t0, cpu0 = time.time(), time.process_time()
        now = datetime.now(timezone.utc)
        ops = {"balance_history": [], "payment_history": []}
        for m in msgs:
            coll, doc = history_doc(json.loads(m.value()), m, now)
            if inserts:
                ops[coll].append(pymongo.InsertOne(doc))
            else:
                ops[coll].append(pymongo.UpdateOne({"_id": doc.pop("_id")}, {"$setOnInsert": doc}, upsert=True))
        for coll, batch in ops.items():
            if batch:
                try:
                    db[coll].bulk_write(batch, ordered=False)
                except pymongo.errors.BulkWriteError as e:
                    if any(w["code"] != 11000 for w in e.details["writeErrors"]):
                        raise
        c.commit(asynchronous=False)
        seen += len(msgs)
    seconds = time.time() - t0
    result = {"events": count, "seconds": seconds, "rate": count / seconds, "cpu_us_per_event": (time.process_time() - cpu0) / count * 1e6}
    c.close()
    dropped(db.name)
    return result


def raw_mongo(count, mode):
    """libmongoc alone, one client, one unordered bulk per 1,000 documents: `insert` or `upsert`."""
    database = migrated(f"bench_{run_id}_raw{mode}_{time.time_ns()}")
    out = subprocess.run([os.path.join(REL, "archiver-bench"), "mongo", MONGO, database, str(count), "1000", mode],
                         capture_output=True, text=True, check=True).stdout.strip()
    dropped(database)
    return {"rate": float(out.rsplit("=", 1)[1])}


def timeline(prefix, count, port):
    """Where a drain's time goes, from the archiver's own `batch timeline` debug log: the sum of
    each phase over every batch, and its share of their total."""
    import re
    drain(prefix, count, 1000, port, log_level="debug")
    sums, batches = {}, 0
    for line in open(f"{ROOT}/.run/bench-archiver-1000.log"):
        if "batch timeline" in line:
            batches += 1
            for phase, ms in re.findall(r"(\w+)Ms=([0-9.]+)", line):
                sums[phase] = sums.get(phase, 0.0) + float(ms)
    total = sum(sums.values()) or 1.0
    return batches, {phase: (ms, ms / total) for phase, ms in sums.items()}


def server_latency(rate):
    """The Mongo-wire server's own latency at this rate, with no broker and no archiver: the same
    balance documents inserted by pymongo in ticks of 2 ms (every document due by then, one unordered
    insert), each timed from its due moment to the insert's acknowledgement. The floor under any
    archiver's produce -> document latency on this server."""
    database = migrated(f"bench_{run_id}_srvlat_{time.time_ns()}")
    coll = pymongo.MongoClient(MONGO)[database].balance_history
    now = datetime.now(timezone.utc)
    total = int(rate * (WARMUP + LAT_SECONDS))
    warmup = int(rate * WARMUP)
    lat, i, start = [], 0, time.time()
    while i < total:
        due_now = time.time()
        first = i
        docs = []
        while i < total and start + i / rate <= due_now:
            docs.append({"_id": f"srv-{run_id}-{i}", "userId": Int64(i % 5000), "type": "DEDUCT", "amount": Int64(1000),
                         "balanceBefore": Int64(10 ** 9), "balanceAfter": Int64(10 ** 9 - 1000), "orderId": Int64(i),
                         "paymentId": Int64(i), "sagaId": f"pay-lat-{i}", "occurredAt": now, "archivedAt": now,
                         "source": {"topic": "bench", "partition": 0, "offset": Int64(i)}})
            i += 1
        if docs:
            coll.insert_many(docs, ordered=False)
            acked = time.time()
            lat.extend((acked - (start + k / rate)) * 1000 for k in range(max(first, warmup), i))
        time.sleep(0.002)
    dropped(database)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    return {"rate": rate, "events": len(lat), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": lat[-1] if lat else float("nan")}


def wait_ready(port, seconds=60):
    """Until /readyz answers 200: both servers reachable and partitions assigned (the group joined)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("archiver never became ready")


def histogram_buckets(port, name):
    """A Prometheus histogram's cumulative buckets as (upper bound, count), sorted."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(buckets)


def histogram_quantiles(port, name, qs, since=()):
    """Upper bounds of quantiles from a Prometheus histogram: the smallest bucket holding q of all
    observed after `since` (buckets read earlier, subtracted)."""
    before = dict(since)
    buckets = [(le, n - before.get(le, 0)) for le, n in histogram_buckets(port, name)]
    total = buckets[-1][1] if buckets else 0
    return [next((le for le, n in buckets if n >= q * total), float("nan")) for q in qs], int(total)


def latency(rate, port):
    """Produce -> visible at a steady rate. The archiver's own histogram (Kafka timestamp -> write
    acknowledged) is cross-checked by a light watcher: every 20th event is sampled, and the pending
    samples are looked up by _id (one small indexed query) every 10 ms, so the watcher adds little
    load to the single-threaded server it measures; its figures are upper bounds by up to 10 ms.
    The first WARMUP seconds at the same rate are not counted: a consumer that has just joined its
    group first fetches its committed offsets and catches up what arrived meanwhile, a one-off
    backlog (measured: p99 1 s in a 5-second run) that says nothing about the steady state."""
    prefix = f"bench{run_id}lat"
    b, p, _ = topics(prefix)
    database = f"bench_{run_id}_lat"
    proc = start_archiver(prefix, database, 1000, port)
    wait_ready(port)
    coll = pymongo.MongoClient(MONGO)[database].balance_history
    pending, seen, lock, stop = {}, [], threading.Lock(), threading.Event()

    def watch():
        while not stop.is_set() or pending:
            with lock:
                ids = list(pending)
            if ids:
                found = [d["_id"] for d in coll.find({"_id": {"$in": ids}}, {"_id": 1})]
                now = time.time()
                with lock:
                    for i in found:
                        seen.append((now - pending.pop(i)) * 1000)
            if stop.is_set() and time.time() > deadline:
                break
            time.sleep(0.01)

    deadline = float("inf")
    w = threading.Thread(target=watch)
    w.start()
    prod = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 5})
    warmup = int(rate * WARMUP)
    total = warmup + int(rate * LAT_SECONDS)
    start, since = time.time(), ()
    # In ticks of 2 ms, every event due by then: a loop waking per event kept a core busy on this
    # 2-core machine, and the servers measured were left what it did not take.
    i = 0
    while i < total:
        now = time.time()
        while i < total and start + i / rate <= now:
            if i == warmup:
                prod.flush(30)
                since = histogram_buckets(port, "archiver_event_latency_seconds")
            eid = f"lat-{run_id}-{i}"
            prod.produce(b, key=str(i % 5000), value=pe.deducted(i % 5000, i, i, 1000, 10 ** 9, f"pay-lat-{i}", eid=eid))
            if i % 20 == 0 and i >= warmup:
                with lock:
                    pending[eid] = time.time()
            i += 1
        prod.poll(0)
        time.sleep(0.002)
    prod.flush(30)
    deadline = time.time() + 30
    stop.set()
    w.join()
    (p50, p99), counted = histogram_quantiles(port, "archiver_event_latency_seconds", (0.5, 0.99), since)
    proc.terminate()
    proc.wait(30)
    dropped(database)
    seen.sort()
    pct = lambda q: seen[min(len(seen) - 1, int(q * len(seen)))] if seen else float("nan")
    return {"rate": rate, "events": total - warmup, "samples": len(seen), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": seen[-1] if seen else float("nan"),
            "hist_p50_ms": p50 * 1000, "hist_p99_ms": p99 * 1000, "hist_events": counted}


def server_pid(*needles):
    """The pid of a local server by its command line (the broker and the Mongo-wire server are
    not this script's children), for reading its CPU from /proc; None when not found."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if all(n in cmd for n in needles):
                return int(entry)
    return None


def simulate(port, database, orders, concurrency, seed, pids, rate=None, extra=()):
    """One `commerce simulate` run. CPU of every process in `pids` is read from /proc when simulate
    says it has seeded and when every saga ended, so seeding and settling are not in it; the
    shopping-phase figures (pairs/s, saga latency, simulate's own CPU) come from simulate itself."""
    args = [os.path.join(REL, "commerce"), "simulate", "--orders", str(orders), "--users", "100", "--concurrency", str(concurrency),
            "--seed", str(seed), "--url", f"http://127.0.0.1:{port}", "--mongo-uri", MONGO, "--database", database, *extra]
    if rate:
        args += ["--rate", f"{rate:.1f}"]
    t = time.time()
    sim = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, marks = [], {}
    for line in sim.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("simulate: seeded"):
            marks["seeded"] = {k: cpu_seconds(p) for k, p in pids.items()}
        elif "order sagas ended" in line:
            marks["ended"] = {k: cpu_seconds(p) for k, p in pids.items()}
    sim.wait()
    seconds = time.time() - t
    text = "\n".join(lines)

    def grab(pattern, cast=float):
        import re
        m = re.search(pattern, text)
        return cast(m.group(1)) if m else float("nan")
    r = {"orders": orders, "concurrency": concurrency, "rate": rate, "wall": seconds, "held": "all invariants hold" in text,
         "shop_seconds": grab(r"shopping: \d+ orders in ([0-9.]+) s"), "orders_per_s": grab(r" ([0-9.]+) orders/s;"),
         "pairs": grab(r"; (\d+) pairs completed", int), "pairs_per_s": grab(r"pairs completed, ([0-9.]+) pairs/s"),
         "placed_p50": grab(r"-> PLACED p50 ([0-9.]+) ms"), "placed_p99": grab(r"-> PLACED p50 [0-9.]+ ms, p99 ([0-9.]+) ms"),
         "completed_p50": grab(r"-> COMPLETED p50 ([0-9.]+) ms"), "completed_p99": grab(r"-> COMPLETED p50 [0-9.]+ ms, p99 ([0-9.]+) ms"),
         "simulate_ms_per_pair": grab(r"simulate CPU while shopping: [0-9.]+ s, ([0-9.]+) ms per pair"), "output": text}
    if "seeded" in marks and "ended" in marks and r["pairs"] == r["pairs"] and r["pairs"] > 0:
        for k in pids:
            r[f"{k}_ms_per_pair"] = (marks["ended"][k] - marks["seeded"][k]) * 1000 / r["pairs"]
    return r


class SagaStack:
    """`commerce serve all` and `archiver run` on topics, a data folder and a database of their own,
    warmed up with a few sagas (the consumer groups take seconds to join on Tansu). Every measured
    run gets a fresh one: a run after another measures the previous run's backlog too (the
    archiver catching up, grown tables).

    backend: "sqlite" (one process on SQLite files), "pg1" (one process on PostgreSQL) or "pg2"
    (two processes on one PostgreSQL database: every service twice; shoppers reach the user and
    product services through the first, orders and payments through the second)."""

    def __init__(self, name, backend="sqlite"):
        import socket
        def free_port():
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                return sock.getsockname()[1]
        tag = f"{run_id}{name}{backend}"
        prefix = f"saga{tag}."
        self.database = f"bench_saga_{tag}"
        data = self.data = os.path.join(ROOT, ".run", f"bench-saga-{tag}")
        log = open(os.path.join(ROOT, ".run", f"bench-saga-{tag}.log"), "w")
        env = dict(os.environ, LOG_LEVEL="warning")
        storage = ["--data-dir", data]
        self.admin_url, self.pg_database = os.environ.get("POSTGRES_URL", "postgres://commerce@127.0.0.1:21432/postgres"), None
        if backend != "sqlite":
            self.pg_database = f"bench_{tag}"
            subprocess.run(["psql", self.admin_url, "-qc", f"CREATE DATABASE {self.pg_database}"], check=True)
            storage = ["--database-url", self.admin_url.rsplit("/", 1)[0] + "/" + self.pg_database]
        self.ports = [free_port() for _ in range(2 if backend == "pg2" else 1)]
        self.port = self.ports[0]
        self.replicas = [subprocess.Popen([os.path.join(REL, "commerce"), "serve", "all", *storage, "--http-port", str(port),
                                           "--topic-prefix", prefix, "--brokers", BROKERS], stdout=log, stderr=log, env=env)
                         for port in self.ports]
        for port in self.ports:
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
        self.extra = [] if len(self.ports) == 1 else [f"--{s}-url=http://127.0.0.1:{self.ports[1]}" for s in ("order", "payment")]
        AdminClient({"bootstrap.servers": BROKERS}).create_topics(
            [NewTopic(prefix + t, num_partitions=4, replication_factor=1) for t in ("archive.dlq", "archive.compensation")])
        self.archiver = subprocess.Popen([os.path.join(REL, "archiver"), "run", "--brokers", BROKERS, "--mongo-uri", MONGO,
                                          "--database", self.database, "--group", f"bench-saga-{tag}", "--admin-port", str(free_port()),
                                          "--topics", ",".join(prefix + "commerce." + t for t in ("balance", "payment", "order")),
                                          "--dead-letter-topic", prefix + "archive.dlq", "--compensation-topic", prefix + "archive.compensation",
                                          "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000"], stdout=log, stderr=log, env=env)
        self.pids = {f"services{i}": p.pid for i, p in enumerate(self.replicas)}
        self.pids["archiver"] = self.archiver.pid
        kafka_port, mongo_port = BROKERS.rsplit(":", 1)[1], MONGO.rsplit(":", 1)[1].split("/")[0]
        broker, mongo = server_pid("tansu broker", f":{kafka_port}"), server_pid("nx-27017", f"-p {mongo_port}")
        if broker:
            self.pids["broker"] = broker
        if mongo:
            self.pids["mongo"] = mongo
        if self.pg_database:
            # The postmaster and its backends: PostgreSQL's CPU is theirs together.
            postmaster = server_pid("bin/postgres", "-D")
            if postmaster:
                self.pids["postgres"] = -postmaster  # the tree: the postmaster and its backends
        simulate(self.port, self.database, 8, 4, 99, self.pids, extra=self.extra)

    def run(self, orders, concurrency, seed, rate=None):
        try:
            r = simulate(self.port, self.database, orders, concurrency, seed, self.pids, rate, extra=self.extra)
        finally:  # a failed run leaves no process, database or data folder behind either
            for p in self.replicas + [self.archiver]:
                p.terminate()
                p.wait(60)
            if self.pg_database:
                subprocess.run(["psql", self.admin_url, "-qc", f"DROP DATABASE IF EXISTS {self.pg_database} WITH (FORCE)"], check=False)
            dropped(self.database)
            shutil.rmtree(self.data, ignore_errors=True)
        services = [k for k in r if k.startswith("services") and k.endswith("_ms_per_pair")]
        if services:
            r["services_ms_per_pair"] = sum(r[k] for k in services)
        if not r["held"]:
            print(r["output"][-3000:], file=sys.stderr)
        return r


def sagas(orders):
    """Order+payment sagas through `commerce serve all` (release) with the archiver running,
    driven by `commerce simulate` (long polls, no injected faults) at several concurrencies, then
    at half the best rate for latency, on each backend (BENCH_SAGA_BACKENDS: sqlite, pg1, pg2);
    the history invariant is checked after every run."""
    broker = server_pid("tansu broker", f":{BROKERS.rsplit(':', 1)[1]}")
    out = [f"sagas through `commerce serve all` + archiver, {orders} orders per run, 100 users, no faults, a fresh stack per run; "
           "pairs/s and latency over the shopping phase (seeding and the invariant check excluded); "
           "CPU per completed order+payment pair from /proc over the same phase (PostgreSQL: its postmaster and backends)"
           + ("" if broker else " (broker process not found: no broker CPU)"), "",
           "| backend | shoppers | rate | pairs/s | orders/s | order -> PLACED p50 / p99 ms | payment -> COMPLETED p50 / p99 ms | "
           "services ms/pair | postgres | archiver | broker | mongo | simulate | whole run s | invariants |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(backend, r):
        cpu = lambda k: f"{r[k]:.2f}" if k in r else ""
        return (f"| {backend} | {r['concurrency']} | {'%.0f orders/s' % r['rate'] if r['rate'] else 'closed'} | {r['pairs_per_s']:.1f} | "
                f"{r['orders_per_s']:.1f} | {r['placed_p50']:.0f} / {r['placed_p99']:.0f} | {r['completed_p50']:.0f} / {r['completed_p99']:.0f} | "
                f"{cpu('services_ms_per_pair')} | {cpu('postgres_ms_per_pair')} | {cpu('archiver_ms_per_pair')} | {cpu('broker_ms_per_pair')} | "
                f"{cpu('mongo_ms_per_pair')} | {r['simulate_ms_per_pair']:.2f} | {r['wall']:.1f} | {'hold' if r['held'] else 'FAILED'} |")
    concurrencies = [int(c) for c in os.environ.get("BENCH_SAGA_CONCURRENCY", "16,64,128").split(",")]
    for backend in os.environ.get("BENCH_SAGA_BACKENDS", "sqlite,pg1,pg2").split(","):
        runs = []
        for n, c in enumerate(concurrencies):
            r = SagaStack(f"c{c}", backend).run(orders, c, 1 + n)
            runs.append(r)
            out.append(row(backend, r))
        best = max(runs, key=lambda r: r["orders_per_s"] if r["orders_per_s"] == r["orders_per_s"] else 0)
        if best["orders_per_s"] == best["orders_per_s"]:
            # Half the best rate, as an open arrival rate: enough shoppers that arrivals never wait for one.
            rate = best["orders_per_s"] / 2
            count = max(200, int(rate * float(os.environ.get("BENCH_SAGA_LATENCY_SECONDS", "10"))))
            out.append(row(backend, SagaStack("half", backend).run(count, 256, 50, rate=rate)))
    return "\n".join(out)


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    if os.environ.get("BENCH_ONLY") == "sagas":
        print(sagas(int(os.environ.get("BENCH_SAGA_ORDERS", "1000"))))
        return
    out = []
    prefix = f"bench{run_id}"
    t = time.time(); produce(prefix, N); out.append(f"pre-produced {N} events in {time.time() - t:.1f} s")
    small = f"bench{run_id}s"
    produce(small, SMALL)
    kafka = subprocess.run([os.path.join(REL, "archiver-bench"), "kafka", BROKERS, f"{prefix}.balance,{prefix}.payment", str(N)],
                           capture_output=True, text=True, check=True).stdout.strip()
    out.append(kafka)
    # Every contender on the same events, each run on a fresh database, in turn A B C D A B C D ...,
    # so the Mongo-wire server's drift (it slows as its files grow) favours no one; medians of REPS.
    contenders = {
        "raw libmongoc bulk inserts, batch 1000": lambda: raw_mongo(N, "insert"),
        "raw libmongoc bulk upserts, batch 1000": lambda: raw_mongo(N, "upsert"),
        "archiver run, batch 1000": lambda: drain(prefix, N, 1000, 19464),
        "confluent-kafka + pymongo loop, upserts (as the issue describes it)": lambda: python_consumer(prefix, N),
        "confluent-kafka + pymongo loop, inserts (the archiver's strategy)": lambda: python_consumer(prefix, N, inserts=True),
    }
    if VS_ARCHIVER:
        contenders[f"archiver run, batch 1000, {VS_ARCHIVER}"] = lambda: drain(prefix, N, 1000, 19468, VS_ARCHIVER)
    results = {name: [] for name in contenders}
    for _ in range(REPS):
        for name, run in contenders.items():
            results[name].append(run())
    raw = median([r["rate"] for r in results["raw libmongoc bulk inserts, batch 1000"]])
    archiver = median([r["rate"] for r in results["archiver run, batch 1000"]])
    out.append("")
    out.append(f"median of {REPS} alternated runs, {N} events each:")
    out.append("")
    out.append("| contender | events/s (median) | runs | vs raw libmongoc inserts | archiver vs it | CPU us/event | peak RSS MiB |")
    out.append("|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        rate = median([r["rate"] for r in rs])
        cpu = median([r["cpu_us_per_event"] for r in rs]) if "cpu_us_per_event" in rs[0] else None
        rss = max(r["peak_rss_mib"] for r in rs) if "peak_rss_mib" in rs[0] else None
        runs = " / ".join(f"{r['rate']:,.0f}" for r in rs)
        out.append(f"| {name} | {rate:,.0f} | {runs} | {rate / raw:.2f}x | {archiver / rate:.2f}x | "
                   f"{'' if cpu is None else f'{cpu:.2f}'} | {'' if rss is None else f'{rss:.1f}'} |")
    for r in [drain(prefix, N, 100, 19465), drain(small, SMALL, 1, 19466)]:
        out.append(f"| archiver run, batch {r['batch']} ({r['events']} events, one run) | {r['rate']:,.0f} | | {r['rate'] / raw:.2f}x | | "
                   f"{r['cpu_us_per_event']:.2f} | {r['peak_rss_mib']:.1f} |")
    batches, phases = timeline(prefix, N, 19469)
    out.append("")
    out.append(f"where a drain's time goes (`batch timeline` debug log, batch 1000, {batches} batches, {N} events): " +
               ", ".join(f"{phase} {ms:,.0f} ms ({share:.1%})" for phase, (ms, share) in phases.items()))
    lat = latency(max(50.0, archiver / 2), 19467)
    floor = server_latency(max(50.0, archiver / 2))
    out.append("")
    out.append(f"latency at {lat['rate']:.0f} events/s (half the batch-1000 drain rate), {lat['events']} events: "
               f"archiver_event_latency_seconds (Kafka timestamp -> write acknowledged, {lat['hist_events']} events) "
               f"p50 <= {lat['hist_p50_ms']:.0f} ms, p99 <= {lat['hist_p99_ms']:.0f} ms (bucket bounds); "
               f"external watcher ({lat['samples']} sampled events, produce -> visible) p50 {lat['p50_ms']:.1f} ms, "
               f"p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms")
    out.append(f"the Mongo-wire server alone at that rate (pymongo inserts of the same documents every 2 ms, {floor['events']} "
               f"events, due -> acknowledged): p50 {floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} ms, max {floor['max_ms']:.1f} ms")
    if os.environ.get("BENCH_ONLY") != "archiver":
        out.append("")
        out.append(sagas(int(os.environ.get("BENCH_SAGA_ORDERS", "1000"))))
    print("\n".join(out))


if __name__ == "__main__":
    main()
