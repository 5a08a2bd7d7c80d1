"""Two builds of this project, A and B, side by side on the same servers and events, alternated
A B A B ...: the archiver's drain (200k events by default) and the sagas on SQLite. For a change
that must cost nothing measurable (tracing with no exporter, see BENCHMARKS.md).

    .deps/venv/bin/python scripts/bench_ab.py OLD_RELEASE_DIR NEW_RELEASE_DIR

Environment: BENCH_EVENTS, BENCH_REPS (5), BENCH_SAGA_ORDERS (600), BENCH_SAGA_CONCURRENCY (64),
as scripts/bench.py. The servers must be up (scripts/services up).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    a, b = sys.argv[1], sys.argv[2]
    reps = int(os.environ.get("BENCH_REPS", "5"))
    orders = int(os.environ.get("BENCH_SAGA_ORDERS", "600"))
    concurrency = int(os.environ.get("BENCH_SAGA_CONCURRENCY", "64"))
    prefix = f"ab{bench.run_id}"
    bench.produce(prefix, bench.N)
    drains, sagas = {a: [], b: []}, {a: [], b: []}
    for n in range(reps):
        for build in (a, b):
            drains[build].append(bench.drain(prefix, bench.N, 1000, 19470, os.path.join(build, "archiver")))
            bench.REL = build  # SagaStack and simulate run the build in REL
            sagas[build].append(bench.SagaStack(f"ab{n}{len(sagas[build])}{'a' if build == a else 'b'}", "sqlite").run(orders, concurrency, 1 + n))
    med = bench.median
    print(f"median of {reps} alternated runs; drain: {bench.N} events, batch 1000; sagas: SQLite, {orders} orders, {concurrency} shoppers")
    print()
    print("| build | drain events/s | runs | CPU us/event | sagas pairs/s | runs | services ms/pair | order -> PLACED p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for build in (a, b):
        d, s = drains[build], sagas[build]
        drain_runs = " / ".join(f"{r['rate']:,.0f}" for r in d)
        saga_runs = " / ".join(f"{r['pairs_per_s']:.1f}" for r in s)
        services = med([r.get("services_ms_per_pair", float("nan")) for r in s])
        print(f"| {build} | {med([r['rate'] for r in d]):,.0f} | {drain_runs} | {med([r['cpu_us_per_event'] for r in d]):.2f} | "
              f"{med([r['pairs_per_s'] for r in s]):.1f} | {saga_runs} | {services:.2f} | {med([r['placed_p99'] for r in s]):.0f} |")
    if not all(r["held"] for build in (a, b) for r in sagas[build]):
        sys.exit("bench_ab: an invariant did not hold; see the output above")


if __name__ == "__main__":
    main()
