#!/usr/bin/env python3
"""A Kafka-protocol broker for benchmarks and trials: librdkafka's mock cluster, hosted by a
confluent-kafka client in this process. Prints the bootstrap servers (HOST:PORT,...) on one
line, then serves until SIGTERM/SIGINT. Messages are kept in memory.

Usage: scripts/kafka/mock-broker [BROKERS]   (run through the wrapper, which sets PYTHONPATH)
"""
import signal
import sys
import time

from confluent_kafka import Producer

brokers = int(sys.argv[1]) if len(sys.argv) > 1 else 1
host = Producer({"test.mock.num.brokers": brokers, "bootstrap.servers": "mock", "log_level": 2})
metadata = host.list_topics(timeout=10)
print(",".join(f"{b.host}:{b.port}" for b in sorted(metadata.brokers.values(), key=lambda b: b.id)), flush=True)

stop = False
def handle(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, handle)
signal.signal(signal.SIGINT, handle)
while not stop:
    host.poll(0.2)
