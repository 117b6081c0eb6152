#!/usr/bin/env python3
"""Independent Kafka consumer for Ferry's tests and benchmark.

Reads every partition of the chosen topics from the earliest offset and prints
one JSON object per message, one per line, to stdout:

  {"topic": "t", "partition": 0, "offset": 0, "key": "k" | null,
   "value": "v" | null, "headers": [["name", "value" | null], ...]}

key/value/header values are UTF-8 strings, or null when absent (a tombstone
has "value": null). Bytes that are not valid UTF-8 come out as null plus an
extra "key_base64" / "value_base64" field (headers: {"base64": "..."}).

Partitions are assigned directly (no consumer-group join, no commits), with a
unique group.id, so each run sees the whole topic. New topics/partitions that
match are picked up while running (checked every second).

Stops when --expect N messages were read, when nothing arrived for --idle
seconds, when every assigned partition reached its end (--eof), or at
--timeout. Exit 0 when done; 2 when --expect N was given and fewer arrived;
1 when the cluster never answered, on a fatal client error or bad arguments.

Needs confluent-kafka: run via scripts/kafka/consume (sets PYTHONPATH to
.build-kafka/py after scripts/kafka/setup), or with
PYTHONPATH=.build-kafka/py python3 scripts/kafka/consume.py ...
"""
import argparse
import base64
import json
import re
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition


def text_field(obj, name, data):
    if data is None:
        obj[name] = None
        return
    try:
        obj[name] = data.decode("utf-8")
    except UnicodeDecodeError:
        obj[name] = None
        obj[name + "_base64"] = base64.b64encode(data).decode("ascii")


def header_value(data):
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT[,HOST:PORT...]")
    ap.add_argument("--topic", action="append", default=[], help="topic to read (repeatable)")
    ap.add_argument("--topic-regex", help="read every topic whose full name matches this Python regex")
    ap.add_argument("--expect", type=int, help="stop after this many messages in total")
    ap.add_argument("--idle", type=float, default=10.0,
                    help="stop when no message arrived for this many seconds (default 10; 0 = never)")
    ap.add_argument("--timeout", type=float, default=120.0, help="overall limit in seconds (default 120)")
    ap.add_argument("--eof", action="store_true",
                    help="stop as soon as every assigned partition has been read to its end")
    ap.add_argument("--sort", action="store_true",
                    help="print at the end, sorted by (topic, partition, offset), instead of as they arrive")
    ap.add_argument("-X", dest="config", action="append", default=[], metavar="KEY=VALUE",
                    help="extra librdkafka consumer property (repeatable)")
    args = ap.parse_args()
    if not args.topic and not args.topic_regex:
        ap.error("give --topic (repeatable) or --topic-regex")
    pattern = re.compile(args.topic_regex) if args.topic_regex else None
    wanted = set(args.topic)

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": "ferry-consume-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "allow.auto.create.topics": False,
        "topic.metadata.refresh.interval.ms": 1000,
        "socket.timeout.ms": 10000,
        "reconnect.backoff.ms": 200,
        "reconnect.backoff.max.ms": 2000,
        # librdkafka's own log lines would repeat every connection failure;
        # errors are reported (once each) by on_error below instead.
        "log_level": 2,
    }
    for kv in args.config:
        k, sep, v = kv.partition("=")
        if not sep:
            ap.error("-X wants KEY=VALUE, got %r" % kv)
        conf[k] = v

    fatal = []
    reported = set()

    def on_error(err):
        # Transient errors (broker down, all brokers down) are retried by librdkafka.
        if err.fatal():
            fatal.append(err)
        key = re.sub(r" \(after \d+ms.*", "", err.str())
        if key not in reported:
            reported.add(key)
            print("consume.py: kafka: %s" % err, file=sys.stderr)

    conf["error_cb"] = on_error
    consumer = Consumer(conf)

    start = time.monotonic()
    deadline = start + args.timeout
    last_activity = start
    assigned = set()      # (topic, partition)
    at_eof = set()        # (topic, partition) whose end was reached and nothing newer seen
    next_refresh = 0.0
    connected = [False]   # got metadata from the cluster at least once
    count = 0
    buffered = []
    out = sys.stdout

    def refresh():
        try:
            md = consumer.list_topics(timeout=min(2.0, max(0.2, deadline - time.monotonic())))
        except KafkaException as e:
            if str(e) not in reported:
                reported.add(str(e))
                print("consume.py: metadata: %s" % e, file=sys.stderr)
            return
        connected[0] = True
        new = []
        for name, t in md.topics.items():
            if name.startswith("__"):
                continue
            if name not in wanted and not (pattern and pattern.fullmatch(name)):
                continue
            if t.error is not None:
                continue
            for p in t.partitions:
                if (name, p) not in assigned:
                    new.append(TopicPartition(name, p, OFFSET_BEGINNING))
        if new:
            consumer.incremental_assign(new)
            for tp in new:
                assigned.add((tp.topic, tp.partition))

    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                print("consume.py: --timeout %gs reached after %d message(s)" % (args.timeout, count),
                      file=sys.stderr)
                break
            if args.idle > 0 and now - last_activity >= args.idle:
                break
            if now >= next_refresh:
                refresh()
                next_refresh = time.monotonic() + 1.0
            if fatal:
                return 1
            if args.eof and assigned and at_eof >= assigned:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_eof.add((msg.topic(), msg.partition()))
                    continue
                if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION,
                                  KafkaError._UNKNOWN_TOPIC):
                    continue
                print("consume.py: %s" % err, file=sys.stderr)
                if err.fatal():
                    return 1
                continue
            at_eof.discard((msg.topic(), msg.partition()))
            last_activity = time.monotonic()
            rec = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
            text_field(rec, "key", msg.key())
            text_field(rec, "value", msg.value())
            rec["headers"] = [[k, header_value(v)] for k, v in (msg.headers() or [])]
            if args.sort:
                buffered.append(rec)
            else:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                out.flush()
            count += 1
            if args.expect is not None and count >= args.expect:
                break
    finally:
        if args.sort:
            buffered.sort(key=lambda r: (r["topic"], r["partition"], r["offset"]))
            for rec in buffered:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
        consumer.close()

    if not connected[0]:
        print("consume.py: could not get metadata from %s" % args.bootstrap, file=sys.stderr)
        return 1
    if args.expect is not None and count < args.expect:
        print("consume.py: expected %d message(s), got %d" % (args.expect, count), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
