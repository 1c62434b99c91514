#!/usr/bin/env python3
"""Remote cost: SSH connections and remote commands per minute on one SSH target with 1, 10
and 100 clients — trio-sse against the polling design it replaces (issue 6, benchmark 4).

The target is a real OpenSSH ``sshd`` on a loopback port (the ``tests/sshd.py`` harness,
started outside pytest) serving a WAA log. Counted from the **sshd log** (``LogLevel
VERBOSE``: one ``Accepted publickey`` per login, one ``Starting session: command`` per exec
channel) — the same independent count for both designs — and for trio-sse cross-checked with
``SSHSource.statistics()`` (written by the server process on exit).

* **trio-sse**: a server process with the SSH target (``--process-pattern`` set, so status
  probes run ``pgrep`` and the WAA ``curl`` probe over the connection); N raw-socket clients
  with ``interval=5`` (so the monitor probes every 5 s) held for ``--window`` seconds.
* **Polling design** (SPEC §0): per client, every 5 s, the two commands its documentation
  names — ``pgrep -f 'python.*run.py'`` and ``tail -100 LOG`` — each through a new ``ssh``
  process (a new connection per command, as it did). That is a *lower bound* of the
  original, which ran ~10 commands per client per interval. With ``--measure-polling-max``
  clients or fewer it is run for real; above that (100 clients: 40 SSH logins per second,
  more than this 2-core machine can serve next to everything else) the count is computed
  from the measured per-client rate and marked so.

    .venv/bin/python scripts/bench_remote_cost.py [--clients 1,10,100] [--window 20] [--no-tuning]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _bench_clients import Clients, Poller, ssh_prefix  # noqa: E402
from _bench_measure import machine, ratio, table  # noqa: E402
from _bench_servers import kill, start_server  # noqa: E402
from _bench_workloads import waa_run  # noqa: E402
from bench_latency import start_sshd, stop_sshd  # noqa: E402


def sshd_counts(log: Path, start: int) -> tuple[int, int]:
    text = log.read_bytes()[start:].decode("utf-8", "replace")
    return text.count("Accepted publickey"), text.count("Starting session: command")


def trio_run(n: int, a: argparse.Namespace, work: Path, ssh: dict[str, str], sshd_log: Path) -> dict[str, float]:
    stats = work / f"stats-{n}.json"
    mark = sshd_log.stat().st_size
    server, port = start_server(
        "trio", work, log=work / "waa.log", ssh=ssh["address"], identity=ssh["identity"],
        known_hosts=ssh["known_hosts"], process_pattern="python.*run.py", stats=stats, no_tuning=a.no_tuning,
    )  # fmt: skip
    try:
        with Clients(port, n, 1, work, path="/api/benchmark-sse?interval=5") as clients:
            clients.wait_ready()
            t0 = time.monotonic()
            mark = sshd_log.stat().st_size  # count the steady state: from all clients connected
            time.sleep(a.window)
            logins, commands = sshd_counts(sshd_log, mark)
            elapsed = time.monotonic() - t0
            clients.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    finally:
        kill(server)
    s = json.loads(stats.read_text()) if stats.exists() else {}
    return {
        "logins_min": logins / elapsed * 60,
        "commands_min": commands / elapsed * 60,
        "stat_connections": s.get("connections_opened", float("nan")),
        "stat_commands": s.get("commands_run", float("nan")),
        "measured": 1,
    }


def polling_run(n: int, a: argparse.Namespace, work: Path, ssh: dict[str, str], sshd_log: Path) -> dict[str, float]:
    prefix = ssh_prefix(ssh["user"], "127.0.0.1", int(ssh["port"]), ssh["identity"], ssh["known_hosts"])
    rng = random.Random(3)
    pollers = [Poller(str(work / "waa.log"), 5.0, prefix, rng.uniform(0, 5.0), pgrep=True) for _ in range(n)]
    mark = sshd_log.stat().st_size
    t0 = time.monotonic()
    for p in pollers:
        p.start()
    time.sleep(a.window)
    logins, commands = sshd_counts(sshd_log, mark)
    elapsed = time.monotonic() - t0
    for p in pollers:
        p.close()
    return {
        "logins_min": logins / elapsed * 60,
        "commands_min": commands / elapsed * 60,
        "stat_connections": float("nan"),
        "stat_commands": sum(p.commands for p in pollers),
        "measured": 1,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", default="1,10,100")
    p.add_argument("--window", type=float, default=20.0, help="seconds counted per run")
    p.add_argument("--measure-polling-max", type=int, default=10)
    p.add_argument("--no-tuning", action="store_true",
                   help="run trio-sse's server untuned (no trio_sse.tuning.tune_process): the 'before' numbers")  # fmt: skip
    a = p.parse_args()
    counts = [int(c) for c in a.clients.split(",")]
    print(f"machine: {machine()}")
    print(f"remote cost: one SSH target (loopback sshd), clients {counts}, {a.window:g} s counted per run"
          f"{', trio-sse untuned' if a.no_tuning else ''}\n")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        work = Path(tmp)
        started = start_sshd(work)
        if started is None:
            sys.exit("needs /usr/sbin/sshd and ssh (Debian: apt-get install openssh-server openssh-client)")
        sshd, ssh = started
        sshd_log = Path(sshd.log)  # type: ignore[attr-defined]
        (work / "waa.log").write_bytes(waa_run(1).header)  # a run that has just begun
        per_client: dict[str, float] | None = None
        try:
            for n in counts:
                t = trio_run(n, a, work, ssh, sshd_log)
                if n <= a.measure_polling_max:
                    b = polling_run(n, a, work, ssh, sshd_log)
                    if n == 1 or per_client is None:
                        per_client = {k: b[k] / n for k in ("logins_min", "commands_min")}
                else:
                    assert per_client is not None, "measure the polling design for a smaller count first"
                    b = {k: v * n for k, v in per_client.items()} | {"measured": 0, "stat_commands": float("nan")}
                print(f"  {n:4} clients: trio-sse {t['logins_min']:.1f} logins/min, {t['commands_min']:.1f} commands/min "
                      f"(statistics(): {t['stat_connections']:.0f} connections, {t['stat_commands']:.0f} commands in the "
                      f"server's life); polling {b['logins_min']:.0f} logins/min, {b['commands_min']:.0f} commands/min"
                      f"{'' if b['measured'] else ' (computed)'}", flush=True)  # fmt: skip
                rows.append([n, "trio-sse", f"{t['stat_connections']:.0f} for the server's life",
                             t["logins_min"], t["commands_min"], "measured"])  # fmt: skip
                rows.append([n, "polling design (2 commands / 5 s / client)", "one per command", b["logins_min"],
                             b["commands_min"], "measured" if b["measured"] else "computed from the 1-client rate"])  # fmt: skip
                rows.append([n, "ratio polling / trio-sse", "", "", ratio(b["commands_min"], t["commands_min"]), ""])
        finally:
            stop_sshd(sshd)
    print()
    print(table(["clients", "design", "SSH connections", "SSH logins / min (steady)", "remote commands / min", ""], rows))


if __name__ == "__main__":
    main()
