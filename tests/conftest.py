"""Shared pytest setup. Plugins: fixture modules living next to the tests. Shared helpers
(not fixtures) live in ``support.py``.

Every test (and every server process a test starts) gets its own ``XDG_DATA_HOME`` in the
session's temporary folder, so a server that keeps the run history at its default place
(``storedb.default_db_path``) never writes into the developer's home.

The ``slow`` marker (tests that need real processes: sshd, Chromium, a server subprocess,
curl…) is set on each such test or module; the ``sshd`` and ``browser`` markers imply it, so
``-m "not slow"`` leaves them out too.
"""

from collections.abc import Iterator

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


@pytest.fixture(scope="session", autouse=True)
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        yield
