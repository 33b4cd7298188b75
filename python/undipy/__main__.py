"""``undipy`` / ``python -m undipy``: the command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: undipy bench [--url URL] [--duration S] [--loop asyncio|uvloop]")
        print("       undipy --version")
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from . import __version__

        print(f"undipy {__version__}")
        return 0
    if args[0] == "bench":
        from ._bench.cli import main as bench

        return bench(args[1:])
    print(f"undipy: unknown command {args[0]!r} (try: undipy bench)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
