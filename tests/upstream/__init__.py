"""Upstream-faithful WAA and OSWorld logs, made by upstream's own logging setup (test helpers).

Owns: reproducing what a real run writes — WAA ``client/`` at 6d39ed8 (``run.py``,
``lib_run_single.py``, ``desktop_env.py``, ``controllers/python.py``, the Paint getter) and
OSWorld's ``run_multienv.py`` — with Python's real ``logging`` (WAA's format string and
handler layout, upstream's logger names, modules and line numbers), real tqdm on a real pty,
real ``requests``/``urllib3`` exceptions and real httpx records; and, for each scenario, the
events a truthful parser gives, written from the scenario's definition. Must not: contain
tests, or decide anything by running the parser.

Modules: :mod:`.sites` (the catalogue of upstream logging calls, file:line), :mod:`.logsetup`
(the handlers, the console), :mod:`.errors` (exception texts and tracebacks),
:mod:`.builder` (upstream's control flow), :mod:`.scenarios` (the scenarios).

    from upstream import SCENARIOS, build
    fx = build("waa_parallel")
    fx.artifacts["logs/normal-0-20241120@140512.log"]   # bytes, as on disk
    fx.expected[...]                                     # the events that file must give
    fx.timeline                                          # (artifact, appended bytes) in order

``scripts/upstream_fixtures.py`` writes them to a directory, and reports what a parser and
monitor make of them.
"""

from .scenarios import SCENARIOS, Fixture, build

__all__ = ["SCENARIOS", "Fixture", "build"]
