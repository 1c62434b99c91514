"""python -m trio_sse → the CLI."""

from trio_sse.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
