"""Cluster mode (SPEC §10): several trio-sse processes on one Redis, one follower per target.

Modules, bottom up — the pure ones import nothing async:

* ``keys``      (pure) key names, lease tokens, owner ids, the ``--redis`` URL check;
* ``timing``    (pure) every time limit and size bound of cluster mode, the back-off rule;
* ``lua``       (pure) the scripts that make lease and publish steps atomic;
* ``codec``     (pure) publish steps → script arguments; stream entries → events and values;
* ``redis``     the process's Redis connection (the only coredis importer), typed errors;
* ``lease``     ``Leadership``: per target, wait for the lease, lead while holding it;
* ``publisher`` ``Publisher``: the leader's monitor → Redis, fenced, republishing what Redis lost;
* ``mirror``    ``Mirror``: Redis → the interface of a local monitor, on every process.

How the pieces are wired into the server is in ``docs/cluster.md``.
"""

from trio_sse.cluster.codec import Checkpoint
from trio_sse.cluster.keys import DEFAULT_PREFIX, check_url, owner_id
from trio_sse.cluster.timing import ClusterTiming

__all__ = ["DEFAULT_PREFIX", "Checkpoint", "ClusterTiming", "check_url", "owner_id"]
