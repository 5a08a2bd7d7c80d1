#!/usr/bin/env python3
"""Produces contract-shaped events (shared/contract.md) for demos and benchmarks.

  produce_events.py demo                      a handful of sagas, one failure, one malformed message
  produce_events.py bulk N [--prefix P]       N balance/payment events (2 of 3 balance), keyed as the contract says
"""
import argparse, json, os, time, uuid
from datetime import datetime, timezone
from confluent_kafka import Producer

# The local servers of scripts/services (KAFKA_PORT / MONGO_PORT, by default 21092 / 21017, ports of
# their own) unless KAFKA_BROKERS / MONGO_URI name others. faults.py and bench.py use these too.
BROKERS = os.environ.get("KAFKA_BROKERS") or f"127.0.0.1:{os.environ.get('KAFKA_PORT', '21092')}"
MONGO_URI = os.environ.get("MONGO_URI") or f"mongodb://127.0.0.1:{os.environ.get('MONGO_PORT', '21017')}"


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def event(etype, saga, data, source, ms=None, eid=None):
    ms = ms or int(time.time() * 1000)
    return json.dumps({"specversion": "1.0", "id": eid or str(uuid.uuid4()), "source": source, "type": etype,
                       "time": iso(ms), "datacontenttype": "application/json", "sagaid": saga, "data": data})


def deducted(user, order, payment, amount, before, saga, ms=None, eid=None):
    return event("commerce.balance.deducted", saga, {"userId": user, "amount": amount, "balanceBefore": before,
                 "balanceAfter": before - amount, "orderId": order, "paymentId": payment}, "/commerce/user", ms, eid)


def completed(user, order, payment, amount, saga, ms=None):
    return event("commerce.payment.completed", saga, {"paymentId": payment, "orderId": order, "userId": user,
                 "amount": amount, "status": "COMPLETED"}, "/commerce/payment", ms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["demo", "bulk"])
    ap.add_argument("count", nargs="?", type=int, default=0)
    ap.add_argument("--brokers", default=BROKERS)
    ap.add_argument("--balance-topic", default="commerce.balance")
    ap.add_argument("--payment-topic", default="commerce.payment")
    ap.add_argument("--order-topic", default="commerce.order")
    a = ap.parse_args()
    p = Producer({"bootstrap.servers": a.brokers, "enable.idempotence": True, "linger.ms": 20,
                  "queue.buffering.max.messages": 1000000})
    if a.mode == "demo":
        p.produce(a.balance_topic, key="42", value=event("commerce.balance.charged", "charge-42-1",
                  {"userId": 42, "amount": 100000, "balanceBefore": 0, "balanceAfter": 100000}, "/commerce/user"))
        balance = 100000
        for i, amount in enumerate([15000, 23000, 8000]):
            order, payment, saga = 1001 + i, 3 + i, f"pay-{3 + i}"
            p.produce(a.balance_topic, key="42", value=deducted(42, order, payment, amount, balance, saga))
            balance -= amount
            p.produce(a.payment_topic, key=str(order), value=completed(42, order, payment, amount, saga))
        # The third payment's order could not be marked paid: its saga is compensated.
        p.produce(a.order_topic, key="1003", value=event("commerce.order.status-change-failed", "pay-5",
                  {"orderId": 1003, "reason": "order was cancelled"}, "/commerce/order"))
        p.produce(a.balance_topic, key="42", value=b"{this is not json")
        print("produced: 1 charge, 3 deductions, 3 payments, 1 saga failure (pay-5), 1 malformed message")
    else:
        start = time.time()
        now = int(time.time() * 1000)
        for i in range(a.count):
            user, order = i % 5000, 100000 + i // 3
            saga = f"pay-{order}"
            if i % 3 == 2:
                p.produce(a.payment_topic, key=str(order), value=completed(user, order, order, 1000 + i % 100, saga, now))
            else:
                p.produce(a.balance_topic, key=str(user), value=deducted(user, order, order, 1000 + i % 100, 10 ** 9, saga, now))
            if i % 10000 == 0:
                p.poll(0)
        p.flush(120)
        print(f"produced {a.count} events in {time.time() - start:.1f} s")
    p.flush(60)


if __name__ == "__main__":
    main()
