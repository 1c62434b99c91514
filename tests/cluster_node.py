"""One trio-sse cluster process for the failover test: ``python tests/cluster_node.py URL LOG
LEASE_SECONDS``. Follows the log at LOG as target ``vm1`` through a ``ClusterNode`` on the
Redis at URL and prints ``leading vm1`` (flushed) each time it becomes the leader — the test
waits for that line, then SIGKILLs this process mid-run."""

from __future__ import annotations

import sys

import trio

from trio_sse.cluster.node import ClusterNode
from trio_sse.cluster.timing import ClusterTiming
from trio_sse.monitor import Monitor
from trio_sse.sources.local import LocalSource


def main(url: str, log: str, lease_seconds: float) -> None:
    def make_monitor(name: str, resume: object) -> Monitor:
        print(f"leading {name}", flush=True)
        return Monitor(name, LocalSource(log, process_pattern=None), idle_probe_seconds=60)

    timing = ClusterTiming(lease_seconds=lease_seconds, backoff_first=0.02, backoff_cap=0.2, block_ms=500)
    node = ClusterNode(url, ["vm1"], make_monitor, timing=timing)
    trio.run(node.run)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
