#!/usr/bin/env python3
"""Local in-memory S3 server (moto) for Tansu's s3:// storage engine.

Usage: s3server.py PORT [BUCKET ...]   (default bucket: tansu)

Listens on 127.0.0.1:PORT, creates the buckets, prints "ready" on stdout and
runs until SIGTERM/SIGINT. Data lives in this process's memory: it survives
restarts of the Tansu broker (which is what it is for), not of this server.
Run through scripts/kafka/s3server after `scripts/kafka/setup --s3`.
"""
import logging
import os
import signal
import sys
import time

import boto3
from moto.server import ThreadedMotoServer


def main():
    if len(sys.argv) < 2 or not sys.argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    port = int(sys.argv[1])
    buckets = sys.argv[2:] or ["tansu"]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % port, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    for b in buckets:
        s3.create_bucket(Bucket=b)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))  # state is in memory only
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
