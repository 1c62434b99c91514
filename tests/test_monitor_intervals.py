"""Monitor.probe_interval: the fastest interval any subscriber asked for, kept as a count per
interval (no scan of every subscriber per connect — that made 10 000 connects quadratic)."""

from __future__ import annotations

from test_stream import monitor


class Sub:
    def __init__(self, interval: float) -> None:
        self.interval = interval

    def offer(self, monitor, item) -> None:
        pass


def test_fastest_interval_follows_subscribes_and_unsubscribes():
    m = monitor()
    idle = m.probe_interval()
    a, b, c, d = Sub(5), Sub(1), Sub(3), Sub(1)
    for s in (a, b, c, d):
        m.subscribe(s, None)
    assert m.probe_interval() == 1
    m.unsubscribe(b)
    assert m.probe_interval() == 1  # d still asks for 1
    m.unsubscribe(d)
    assert m.probe_interval() == 3
    m.unsubscribe(d)  # twice: harmless
    m.unsubscribe(c)
    assert m.probe_interval() == 5
    m.subscribe(a, None)  # again: still one subscriber
    assert m.subscriber_count == 1
    m.unsubscribe(a)
    assert m.probe_interval() == idle and m.subscriber_count == 0
