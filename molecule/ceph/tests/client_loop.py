"""A bounded RADOS client for the rolling restart test, run on a testbed node (python3-rados).

Writes a small object and reads it back, again and again, until a stop file appears or a time
or operation limit is reached; then prints one JSON line with the counts. Every operation has a
timeout, so an operation that hangs counts as failed instead of blocking the loop.

Usage: python3 - POOL NAMESPACE CLIENT_ID STOP_FILE MAX_SECONDS MAX_OPS < client_loop.py
"""

import contextlib
import json
import os
import sys
import time

import rados


def main():
    pool, namespace, client_id, stop_file = sys.argv[1:5]
    max_seconds, max_ops = float(sys.argv[5]), int(sys.argv[6])
    counts = {"writes_ok": 0, "writes_failed": 0, "reads_ok": 0, "reads_failed": 0, "mismatches": 0}
    errors = []
    latencies = []
    cluster = rados.Rados(
        conffile="/etc/ceph/ceph.conf",
        rados_id=client_id,
        conf={"rados_osd_op_timeout": "60", "rados_mon_op_timeout": "60"},
    )
    cluster.connect(timeout=60)
    ioctx = cluster.open_ioctx(pool)
    ioctx.set_namespace(namespace)
    print("connected", file=sys.stderr, flush=True)
    start = time.monotonic()
    op = 0
    while op < max_ops and time.monotonic() - start < max_seconds and not os.path.exists(stop_file):
        name = f"loop-{op % 100:03d}"
        payload = os.urandom(4096)
        began = time.monotonic()
        try:
            ioctx.write_full(name, payload)
            counts["writes_ok"] += 1
        except rados.Error as exc:
            counts["writes_failed"] += 1
            errors.append(f"write {name} at {began - start:.0f}s: {exc}")
            op += 1
            continue
        try:
            data = ioctx.read(name, len(payload))
            counts["reads_ok"] += 1
            if data != payload:
                counts["mismatches"] += 1
        except rados.Error as exc:
            counts["reads_failed"] += 1
            errors.append(f"read {name} at {began - start:.0f}s: {exc}")
        latencies.append(time.monotonic() - began)
        op += 1
        time.sleep(0.05)
    for index in range(100):
        with contextlib.suppress(rados.ObjectNotFound):
            ioctx.remove_object(f"loop-{index:03d}")
    ioctx.close()
    cluster.shutdown()
    latencies.sort()
    counts.update(
        seconds=round(time.monotonic() - start, 1),
        max_latency_s=round(latencies[-1], 2) if latencies else None,
        p99_latency_s=round(latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
        errors=errors[:20],
    )
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
