#!/usr/bin/env python3
"""Fault scenarios for the archiver, each ending in a one-line verdict with counts.

  scripts/faults            short sizes (about 3 minutes)
  FAULTS_FULL=1 scripts/faults   issue sizes: 100k events and 10 kills, a 20 s outage, 1,000 malformed,
                                 1,000 simulated orders

Needs scripts/services up and built `archiver` and `commerce` (debug, or ARCHIVER_BIN/COMMERCE_BIN).
Exit status: 0 when every verdict is PASS.
"""
import json, os, random, shutil, signal, socket, subprocess, sys, time, uuid
import pymongo
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(__file__))
import produce_events as pe
import tokens

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKERS, MONGO = pe.BROKERS, pe.MONGO_URI
FULL = os.environ.get("FAULTS_FULL") == "1"
BIN = os.environ.get("ARCHIVER_BIN", os.path.join(ROOT, ".build/debug/archiver"))
COMMERCE_BIN = os.environ.get("COMMERCE_BIN", os.path.join(ROOT, ".build/debug/commerce"))
tokens.use_own_keys()  # every serve below checks tokens, every simulate signs them
verdicts = []
children = []  # every process a scenario starts; what is still running when it ends is killed


def spawn(args, **kwargs):
    p = subprocess.Popen(args, **kwargs)
    children.append(p)
    return p


def tally(sent, stored):
    """The distinct event ids sent against the _ids of the history documents (_id = event id):
    every sent id must be there, and nothing else. Counting distinct _ids alone could never show
    a duplicate, since MongoDB keeps _id unique. Here a sent id without a document is lost, a
    document whose _id was never sent (a copy under another id, a stray write) is extra.
    Returns (ok, text for the verdict)."""
    sent, stored = set(sent), list(stored)
    found = len(sent.intersection(stored))
    lost, extra = len(sent) - found, len(stored) - found
    return lost == 0 and extra == 0, f"sent={len(sent)} documents={len(stored)} lost={lost} extra={extra}"


def free_port(port=0):
    """The port if nothing holds it on 127.0.0.1 (0: one the kernel picks), else None."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
        return sock.getsockname()[1]


class PrivateServer:
    """A server of the scenario's own, started and stopped through scripts/services with its own
    port and run folder (pid file), so an outage never touches the shared server or anyone else's.
    The port is below Linux's ephemeral range (32768+), so no client connection takes it while
    the server is down; scripts/services refuses it if anything else holds it."""

    def __init__(self, kind, port_variable):
        self.kind = kind
        self.port = next(p for p in random.sample(range(22000, 32000), 50) if free_port(p))
        self.env = dict(os.environ, **{port_variable: str(self.port)}, SERVICES_RUN_DIR=f"/tmp/faults-{kind}-{self.port}")

    def services(self, command):
        subprocess.run([os.path.join(ROOT, "scripts/services"), command], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def start(self):
        self.services(f"start-{self.kind}")

    def stop(self):
        self.services(f"stop-{self.kind}")

    def remove(self):
        self.stop()
        shutil.rmtree(self.env["SERVICES_RUN_DIR"], ignore_errors=True)


class PrivateMongo(PrivateServer):
    def __init__(self):
        super().__init__("mongo", "MONGO_PORT")
        self.uri = f"mongodb://127.0.0.1:{self.port}"


class PrivatePostgres(PrivateServer):
    def __init__(self):
        super().__init__("postgres", "PG_PORT")
        self.admin_url = f"postgres://commerce@127.0.0.1:{self.port}/postgres"


class Scenario:
    def __init__(self, name, mongo=MONGO):
        self.id = f"f{int(time.time())}{random.randint(100, 999)}"
        self.name, self.mongo = name, mongo
        self.topics = {t: f"{self.id}.{t}" for t in ("balance", "payment", "order", "dlq", "compensation")}
        admin = AdminClient({"bootstrap.servers": BROKERS})
        for f in admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1) for t in self.topics.values()]).values():
            f.result(timeout=30)
        self.db = pymongo.MongoClient(mongo, serverSelectionTimeoutMS=30000)[f"faults_{self.id}"]
        self.producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 10})
        self.procs = []

    def start(self, batch=200, port=None):
        port = port or free_port()
        args = [BIN, "run", "--brokers", BROKERS, "--mongo-uri", self.mongo, "--database", f"faults_{self.id}",
                "--group", f"g-{self.id}", "--topics", ",".join(self.topics[t] for t in ("balance", "payment", "order")),
                "--dead-letter-topic", self.topics["dlq"], "--compensation-topic", self.topics["compensation"],
                "--admin-port", str(port), "--admin-host", "127.0.0.1", "--batch-size", str(batch),
                "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000", "--retry-max-ms", "1000"]
        log = open(os.path.join(ROOT, ".run", f"faults-{self.id}-{len(self.procs)}.log"), "w")
        p = spawn(args, stdout=log, stderr=log, env=dict(os.environ, LOG_LEVEL="warning"))
        self.procs.append(p)
        return p

    def valid(self, n, start=0):
        ids = []
        for i in range(start, start + n):
            eid = str(uuid.uuid4())
            ids.append(eid)
            if i % 3 == 2:
                value = json.loads(pe.completed(i % 97, i, i, 1000, f"pay-{i}"))
                value["id"] = eid
                self.producer.produce(self.topics["payment"], key=str(i), value=json.dumps(value))
            else:
                value = json.loads(pe.deducted(i % 97, i, i, 1000, 10 ** 6, f"pay-{i}"))
                value["id"] = eid
                self.producer.produce(self.topics["balance"], key=str(i % 97), value=json.dumps(value))
            if i % 5000 == 0:
                self.producer.poll(0)
        self.producer.flush(60)
        return ids

    def documents(self):
        return self.db.balance_history.count_documents({}) + self.db.payment_history.count_documents({})

    def stored_ids(self):
        return [d["_id"] for c in (self.db.balance_history, self.db.payment_history) for d in c.find({}, {"_id": 1})]

    def wait_documents(self, n, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if self.documents() >= n:
                    return True
            except pymongo.errors.PyMongoError:
                pass
            time.sleep(0.5)
        return False

    def dead_letters(self, expect=0, seconds=120):
        """All dead letters, read to the end again until at least `expect` are there (or time is up)."""
        deadline = time.time() + seconds
        while True:
            got = self.read_dead_letters(seconds)
            if len(got) >= expect or time.time() > deadline:
                return got
            time.sleep(2)

    def read_dead_letters(self, seconds):
        """Every dead letter, proven complete: a marker goes to each partition of the topic after the
        fact, and reading ends only when all came back (a read for a fixed time by a fresh group can
        end before the group even joined, and then sees nothing, whatever the archiver did)."""
        topic, marker = self.topics["dlq"], f"end-of-scenario-{uuid.uuid4()}".encode()
        for partition in range(4):
            self.producer.produce(topic, value=marker, partition=partition)
        self.producer.flush(30)
        c = Consumer({"bootstrap.servers": BROKERS, "group.id": f"r-{uuid.uuid4()}", "auto.offset.reset": "earliest",
                      "session.timeout.ms": 6000, "max.poll.interval.ms": 10000})
        c.subscribe([topic])
        got, markers, deadline = [], 0, time.time() + seconds
        while markers < 4:
            if time.time() > deadline:
                raise RuntimeError(f"dead-letter topic {topic} not read to its end within {seconds} s")
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                if m.value() == marker:
                    markers += 1
                elif not (m.value() or b"").startswith(b"end-of-scenario-"):
                    got.append(m)
        c.close()
        return got

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)

    def verdict(self, ok, text):
        print_verdict(self.name, ok, text)


def kill9():
    n, kills = (100_000, 10) if FULL else (20_000, 10)
    s = Scenario("kill -9")
    sent = s.valid(n)
    p = s.start()
    for _ in range(kills):
        time.sleep(random.uniform(1.0, 3.0))
        p.kill()
        p.wait()
        p = s.start()
    s.wait_documents(n, 600)
    letters = s.dead_letters()
    s.stop()
    ok, counts = tally(sent, s.stored_ids())
    s.verdict(ok and not letters, f"kills={kills} {counts} dead_letters={len(letters)}")


def mongo_outage():
    n, outage = (40_000, 20) if FULL else (6_000, 8)
    mongo = PrivateMongo()
    try:
        mongo.start()
        s = Scenario("mongo outage", mongo=mongo.uri)
        s.start()
        sent = s.valid(n // 2)
        s.wait_documents(n // 4, 120)
        mongo.stop()
        sent += s.valid(n - n // 2, start=n // 2)
        time.sleep(outage)
        mongo.start()
        s.wait_documents(n, 600)
        letters = s.dead_letters()
        s.stop()
        ok, counts = tally(sent, s.stored_ids())
    finally:
        mongo.remove()
    s.verdict(ok and not letters, f"outage={outage}s {counts} dead_letters={len(letters)}")


def malformed():
    n_bad = 1000 if FULL else 200
    s = Scenario("malformed")
    base = json.loads(pe.deducted(1, 1, 1, 100, 1000, "pay-x"))

    def variant(kind):
        e = json.loads(json.dumps(base))
        e["id"] = str(uuid.uuid4())
        if kind == "not-json": return b"hello, not json", "decode"
        if kind == "truncated": return json.dumps(e)[:-7].encode(), "decode"
        if kind == "bad-utf8": return b'{"specversion":"1.0","id":"\xff\xfe"}', "decode"
        if kind == "array": return b"[1,2,3]", "schema"
        if kind == "no-specversion": e.pop("specversion")
        elif kind == "old-specversion": e["specversion"] = "0.3"
        elif kind == "string-amount": e["data"]["amount"] = "100"
        elif kind == "float-amount": e["data"]["amount"] = 100.5
        elif kind == "missing-user": e["data"].pop("userId")
        elif kind == "no-saga": e.pop("sagaid")
        elif kind == "bad-time": e["time"] = "last tuesday"
        return json.dumps(e).encode(), "schema"

    kinds = ["not-json", "truncated", "bad-utf8", "array", "no-specversion", "old-specversion", "string-amount",
             "float-amount", "missing-user", "no-saga", "bad-time"]
    expected = {}
    valid_ids = []
    for i in range(n_bad):
        value, kind = variant(kinds[i % len(kinds)])
        marker = f"m{i}"
        expected[marker] = kind
        s.producer.produce(s.topics["balance"], key=str(i % 7), value=value, headers=[("x-test-marker", marker)])
        if i % 2 == 0:
            valid_ids += s.valid(1, start=i)
    s.producer.flush(60)
    s.start()
    s.wait_documents(len(valid_ids), 300)
    letters = s.dead_letters(n_bad)
    s.stop()
    right = sum(1 for m in letters if expected.get(dict(m.headers() or []).get("x-test-marker", b"").decode())
                == dict(m.headers()).get("x-error-kind", b"").decode())
    ok, counts = tally(valid_ids, s.stored_ids())
    s.verdict(ok and right == n_bad and len(letters) == n_bad,
              f"malformed={n_bad} kinds={len(kinds)} dead_lettered={len(letters)} right_kind={right} valid: {counts}")


def poison():
    """A message too large to dead-letter (a ~1 MB value just under the broker's limit, refused
    once the dead-letter headers are added) among valid traffic: the archiver keeps running,
    archives every valid event, and the poison message is findable: a stub on the dead-letter
    topic pointing at the whole message, kept in MongoDB."""
    import hashlib
    n = 20_000 if FULL else 2_000
    s = Scenario("poison message")
    valid_ids = s.valid(n // 2)
    poison = b"\x00not json" + b"x" * 999_890
    s.producer.produce(s.topics["balance"], key="poison", value=poison)
    s.producer.flush(60)
    valid_ids += s.valid(n - n // 2, start=n // 2)
    p = s.start()
    s.wait_documents(n, 300)
    letters = s.dead_letters(1)
    running = p.poll() is None
    s.stop()
    stubs = [dict(m.headers() or []) for m in letters if dict(m.headers() or []).get("x-payload-ref")]
    kept = s.db.dead_letter_payloads.find_one({"_id": stubs[0]["x-payload-ref"].decode()}) if stubs else None
    findable = bool(kept) and bytes(kept["value"]) == poison and kept["sha256"] == hashlib.sha256(poison).hexdigest() \
        and stubs[0].get("x-original-sha256", b"").decode() == kept["sha256"]
    ok, counts = tally(valid_ids, s.stored_ids())
    s.verdict(ok and running and len(letters) == 1 and findable,
              f"poison_bytes={len(poison)} still_running={running} dead_letters={len(letters)} kept_in_mongo={findable} valid: {counts}")


def three_archivers():
    n = 60_000 if FULL else 12_000
    s = Scenario("three archivers")
    a, b, c = s.start(batch=100), s.start(batch=100), s.start(batch=100)
    time.sleep(8)
    sent = s.valid(n // 2)
    s.wait_documents(n // 8, 120)
    b.kill()
    s.start(batch=100)
    sent += s.valid(n - n // 2, start=n // 2)
    s.wait_documents(n, 600)
    s.stop()
    ok, counts = tally(sent, s.stored_ids())
    s.verdict(ok, f"killed=1 added=1 {counts}")


def healthy(port):
    """Whether something answers /healthz on the port within a minute."""
    import urllib.request
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return True
        except OSError:
            time.sleep(0.5)
    return False


def saga_archiver(sid, prefix, db):
    """`archiver run` on a saga scenario's topics (its dead-letter and compensation topics created first)."""
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(prefix + t, num_partitions=4, replication_factor=1) for t in ("archive.dlq", "archive.compensation")]).values():
        f.result(timeout=30)
    log = open(os.path.join(ROOT, ".run", f"faults-{sid}-archiver.log"), "w")
    return spawn([BIN, "run", "--brokers", BROKERS, "--mongo-uri", MONGO, "--database", db, "--group", f"g-{sid}",
                  "--topics", ",".join(prefix + "commerce." + t for t in ("balance", "payment", "order")),
                  "--dead-letter-topic", prefix + "archive.dlq", "--compensation-topic", prefix + "archive.compensation",
                  "--admin-port", str(free_port()), "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000"],
                 stdout=log, stderr=log, env=dict(os.environ, LOG_LEVEL="warning"))


def invariants(out):
    """simulate's invariant lines: those that held and those that broke."""
    lines = out.splitlines()
    return [l for l in lines if l.startswith("  ok ")], [l.strip() for l in lines if l.startswith("  FAIL ")]


def simulate_with_a_crash():
    """commerce simulate with faults at every step; the services are killed -9 mid-run and restarted."""
    orders = 1_000 if FULL else 150
    sid = f"s{int(time.time())}{random.randint(100, 999)}"
    prefix, db, port = f"{sid}.", f"faults_{sid}", free_port()
    data = os.path.join(ROOT, ".run", f"faults-{sid}-data")
    logs = open(os.path.join(ROOT, ".run", f"faults-{sid}-services.log"), "w")

    def serve():
        return spawn([COMMERCE_BIN, "serve", "all", "--data-dir", data, "--http-port", str(port), "--topic-prefix", prefix,
                      "--fault", "*=0.05", "--brokers", BROKERS], stdout=logs, stderr=logs, env=dict(os.environ, LOG_LEVEL="warning"))

    services = serve()
    healthy(port)
    archiver = saga_archiver(sid, prefix, db)
    sim = spawn([COMMERCE_BIN, "simulate", "--orders", str(orders), "--users", "20", "--concurrency", "8", "--seed", "5",
                 "--url", f"http://127.0.0.1:{port}", "--mongo-uri", MONGO, "--database", db, "--settle-seconds", "120"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(random.uniform(3.0, 6.0))
    services.kill()
    services.wait()
    time.sleep(2)
    services = serve()
    restarted = healthy(port) and services.poll() is None  # the answer came from ours, not from whoever has the port
    out, _ = sim.communicate(timeout=1_200)
    for p in (services, archiver):
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    held, broken = invariants(out)
    injected = sum(int(l.split()[0]) for l in out.splitlines() if "injected fault at" in l)
    ok = sim.returncode == 0 and restarted and "all invariants hold" in out and not broken
    if not ok:
        print(out, flush=True)
    print_verdict("simulate + kill -9", ok, f"orders={orders} faults=*=0.05 injected_failures={injected} killed=1 restarted={restarted} "
                  f"invariants_held={len(held)}/{len(held) + len(broken)}")


def broken_service():
    """One service's storage breaks under `commerce serve all` (a bad sector in product.sqlite's
    inbox table): the failure is logged once, /healthz stops answering 200, and the process exits
    non-zero within seconds so that a supervisor restarts it, instead of serving HTTP while that
    service's saga steps have stopped."""
    import sqlite3, urllib.request
    sid = f"b{int(time.time())}{random.randint(100, 999)}"
    prefix, port = f"{sid}.", free_port()
    data = os.path.join(ROOT, ".run", f"faults-{sid}-data")
    log_path = os.path.join(ROOT, ".run", f"faults-{sid}-services.log")

    def serve():
        return spawn([COMMERCE_BIN, "serve", "all", "--data-dir", data, "--http-port", str(port), "--topic-prefix", prefix,
                      "--brokers", BROKERS], stdout=open(log_path, "a"), stderr=subprocess.STDOUT, env=dict(os.environ, LOG_LEVEL="warning"))

    def health():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def post(path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {operator}"})
        return json.loads(urllib.request.urlopen(req, timeout=5).read() or b"{}")

    operator = tokens.operator_token(COMMERCE_BIN)

    services = serve()
    deadline = time.time() + 60
    while health() != 200 and time.time() < deadline:
        time.sleep(0.2)
    services.send_signal(signal.SIGTERM)
    services.wait(60)
    # The inbox's root page filled with 0xFF, as a bad sector would leave it.
    db = os.path.join(data, "product.sqlite")
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'inbox'").fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xff" * size)
    open(log_path, "a").write("--- restarted with product.sqlite's inbox broken ---\n")
    services = serve()
    while health() != 200 and time.time() < deadline + 60:
        time.sleep(0.2)
    healthy_at_start = health() == 200
    user = 1
    product = post("/products", {"name": "mug", "price": 1000, "stock": 10})["id"]
    post(f"/users/{user}/cart", {"productId": product, "quantity": 1})
    post("/orders", {"userId": user, "items": [{"productId": product, "quantity": 1}]})
    ordered, first_unhealthy, healthy_again = time.time(), None, False
    while services.poll() is None and time.time() < ordered + 60:
        status = health()
        if status not in (0, 200) and first_unhealthy is None:
            first_unhealthy = status
        if status == 200 and first_unhealthy is not None:
            healthy_again = True
        time.sleep(0.05)
    exited = services.poll() is not None
    took = time.time() - ordered
    log = open(log_path).read().split("--- restarted", 1)[-1]
    logged = log.count("failed; stopping the process")
    ok = healthy_at_start and exited and services.returncode != 0 and first_unhealthy == 503 and not healthy_again and logged == 1
    if not ok:
        print("\n".join(log.splitlines()[-20:]), flush=True)
    print_verdict("broken service", ok, f"exited={exited} status={services.returncode} after={took:.1f}s healthz_before_exit={first_unhealthy} "
                  f"errors_logged={logged}")


def replicas_on_postgres():
    """Every service as two processes on one PostgreSQL database (`serve user|product|order|payment`
    twice each), with faults at every step. simulate talks to the second process of each service;
    the first of each (started first: it leads every outbox relay, and holds half the partitions)
    is killed -9 mid-run and restarted, then the database itself is stopped for 3 s (a server of
    the scenario's own). Every invariant must hold; no process may exit; the second processes
    must have taken over publishing while the first were dead; every committed event must be on
    its topic exactly once: what a killed leader published and died before deleting from the
    outbox, the new leader finds on the topic and does not send again."""
    orders = 1_000 if FULL else 150
    sid = f"r{int(time.time())}{random.randint(100, 999)}"
    prefix, db = f"{sid}.", f"faults_{sid}"
    pg = PrivatePostgres()
    pg.start()
    try:
        replicas_on(pg, orders, sid, prefix, db)
    finally:
        pg.remove()  # the processes are the harness's to kill


def replicas_on(pg, orders, sid, prefix, db):
    import urllib.request
    url = pg.admin_url.rsplit("/", 1)[0] + "/" + db
    subprocess.run(["psql", pg.admin_url, "-qc", f"CREATE DATABASE {db}"], check=True)
    names = ("user", "product", "order", "payment")
    ports = {(name, r): free_port() for name in names for r in (0, 1)}
    logs = open(os.path.join(ROOT, ".run", f"faults-{sid}-services.log"), "w")

    def serve(name, r):
        return spawn([COMMERCE_BIN, "serve", name, "--database-url", url, "--http-port", str(ports[name, r]), "--topic-prefix", prefix,
                      "--fault", "*=0.05", "--brokers", BROKERS], stdout=logs, stderr=logs, env=dict(os.environ, LOG_LEVEL="warning"))

    def up(name, r):
        return healthy(ports[name, r]) and processes[name, r].poll() is None  # the answer came from ours, not from whoever has the port

    processes, started = {}, True
    for r in (0, 1):
        for name in names:
            processes[name, r] = serve(name, r)
        started = all([up(name, r) for name in names]) and started
    archiver = saga_archiver(sid, prefix, db)
    urls = [f"--{name}-url=http://127.0.0.1:{ports[name, 1]}" for name in names]
    sim = spawn([COMMERCE_BIN, "simulate", "--orders", str(orders), "--users", "20", "--concurrency", "8", "--seed", "6",
                 f"--url=http://127.0.0.1:{ports['order', 1]}", *urls, "--mongo-uri", MONGO, "--database", db, "--settle-seconds", "120"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(random.uniform(3.0, 6.0))
    # Watches the balance topic from its end: the charges made while the first processes are
    # dead must be published by the second ones before the first come back.
    from confluent_kafka import TopicPartition, OFFSET_END
    watcher = Consumer({"bootstrap.servers": BROKERS, "group.id": f"gap-{sid}", "enable.auto.commit": False})
    watcher.assign([TopicPartition(prefix + "commerce.balance", p, OFFSET_END) for p in range(4)])
    watcher.poll(1.0)  # the assignment takes effect: offsets resolved before the charges
    for name in names:
        processes[name, 0].kill()
        processes[name, 0].wait()
    killed_at = time.time()  # after the kills: what a relay sends from now on is a second process's
    # Traffic of the harness's own through the second user process, not left to the shoppers
    # (who may all be waiting on sagas stalled on the killed processes' partitions): each charge
    # commits a balance event that only a relay that took over can publish. The first
    # processes stay dead until every one of them is on the topic (60 s at most), and at least
    # 5 s: long enough for their partitions to stall until the group notices.
    gap_users = [900_001 + i for i in range(3)]
    for user in gap_users:
        req = urllib.request.Request(f"http://127.0.0.1:{ports['user', 1]}/users/{user}/charge", data=json.dumps({"amount": 1}).encode(),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {tokens.operator_token(COMMERCE_BIN)}"})
        urllib.request.urlopen(req, timeout=10).read()
    unseen, gap_deadline = set(gap_users), time.time() + 60
    while unseen and time.time() < gap_deadline:
        m = watcher.poll(0.5)
        if m is not None and not m.error():
            unseen.discard(json.loads(m.value()).get("data", {}).get("userId"))
    watcher.close()
    time.sleep(max(0.0, killed_at + 5 - time.time()))
    restarted_at = time.time()
    for name in names:
        processes[name, 0] = serve(name, 0)
    restarted = all([up(name, 0) for name in names])
    time.sleep(1)
    db_stopped_at = time.time()
    pg.stop()  # every process loses every connection, its relay's lease and its LISTEN
    time.sleep(3)
    pg.start()
    out, _ = sim.communicate(timeout=1_200)
    survived = [name for name, r in processes if processes[name, r].poll() is None]
    for p in list(processes.values()) + [archiver]:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    # Every event on the commerce topics, read from the start; its Kafka timestamp is when a relay sent it.
    from confluent_kafka import TopicPartition, OFFSET_BEGINNING
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": f"count-{sid}", "enable.auto.commit": False})
    # Assigned, not subscribed: no group to join, every partition from its first message.
    consumer.assign([TopicPartition(prefix + "commerce." + t, p, OFFSET_BEGINNING)
                     for t in ("order", "product", "balance", "payment") for p in range(4)])
    copies, times, sent_during_gap, quiet = {}, {}, 0, time.time()
    while time.time() - quiet < (10 if not copies else 3):
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        quiet = time.time()
        event = json.loads(m.value())
        copies[event["id"]] = copies.get(event["id"], 0) + 1
        times[event["id"]] = event["time"]
        if killed_at < m.timestamp()[1] / 1000 < restarted_at:
            sent_during_gap += 1
    consumer.close()
    from datetime import datetime
    twice = [i for i, n in copies.items() if n > 1]
    # When each copied event was committed, against the kill and the database stop, to tell
    # which crash window let it through.
    committed = {i: datetime.fromisoformat(times[i].replace("Z", "+00:00")).timestamp() for i in twice}
    at_kill = [i for i in twice if committed[i] <= killed_at + 0.5]
    at_db_stop = [i for i in twice if db_stopped_at - 2 < committed[i] < db_stopped_at + 4]
    held, broken = invariants(out)
    ok = (sim.returncode == 0 and started and restarted and "all invariants hold" in out and not broken and not twice and copies
          and not unseen and sent_during_gap > 0 and len(survived) == len(processes))
    if not ok:
        print(out, flush=True)
    print_verdict("replicas on PostgreSQL + kill -9 + database restart", ok,
                  f"orders={orders} processes=8 killed=4 restarted={restarted} database_down=3s survived={len(survived)}/8 "
                  f"invariants_held={len(held)}/{len(held) + len(broken)} events={len(copies)} sent_while_leaders_dead={sent_during_gap} "
                  f"gap_charges_published={len(gap_users) - len(unseen)}/{len(gap_users)} in {restarted_at - killed_at:.1f}s "
                  f"twice={len(twice)} (committed_before_the_kill={len(at_kill)} around_the_database_stop={len(at_db_stop)})")


def print_verdict(name, ok, text):
    print(f"{name}: {'PASS' if ok else 'FAIL'} {text}", flush=True)
    verdicts.append(ok)


if __name__ == "__main__":
    os.makedirs(os.path.join(ROOT, ".run"), exist_ok=True)
    everything = (malformed, poison, mongo_outage, three_archivers, kill9, simulate_with_a_crash, broken_service, replicas_on_postgres)
    chosen = [f for f in everything if f.__name__ in sys.argv[1:]] or everything  # `faults.py poison kill9`: a subset
    for scenario in chosen:
        try:
            scenario()
        except Exception as e:  # a scenario that crashes is a FAIL; the others still run
            print_verdict(scenario.__name__, False, f"crashed: {e!r}")
        finally:
            for p in children:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            children.clear()
    print(f"{sum(verdicts)} passed, {len(verdicts) - sum(verdicts)} failed")
    sys.exit(0 if all(verdicts) else 1)
