"""Shared pytest setup. Plugins: fixture modules living next to the tests. Shared helpers
(not fixtures) live in ``support.py``.

The ``slow`` marker (tests that need real processes: sshd, Chromium, a server subprocess,
curl…) is set on each such test or module; the ``sshd`` and ``browser`` markers imply it, so
``-m "not slow"`` leaves them out too.
"""

import pytest

pytest_plugins = ["browser", "nginxd", "redisd", "sshd"]

IMPLY_SLOW = ("sshd", "browser", "redis")  # markers
SLOW_FIXTURES = frozenset({"sshd", "chromium", "nginx_proxy", "redisd"})  # a test using one is slow even if unmarked


@pytest.hookimpl(tryfirst=True)  # before -m deselects (the mark plugin's own hook)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(name) for name in IMPLY_SLOW) or SLOW_FIXTURES & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.slow)
