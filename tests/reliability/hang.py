"""Run a ``rerank-align`` command line that stops for good inside a chosen function, so a test can SIGKILL it at
that exact point (a real kill: no cleanup code runs).

    HANG_AT=module:attr[.attr] HANG_AFTER=N READY=/path [SET=module:NAME=int] python tests/reliability/hang.py ARGS

The N-th call of the function touches READY and sleeps forever.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path


def _resolve(spec: str) -> tuple[object, str]:
    module, attrs = spec.split(":")
    owner: object = importlib.import_module(module)
    *parents, name = attrs.split(".")
    for a in parents:
        owner = getattr(owner, a)
    return owner, name


def main() -> int:
    owner, name = _resolve(os.environ["HANG_AT"])
    real = getattr(owner, name)
    after = int(os.environ.get("HANG_AFTER", "1"))
    calls = {"n": 0}

    def hang(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= after:
            Path(os.environ["READY"]).touch()
            while True:
                time.sleep(1)
        return real(*args, **kwargs)

    setattr(owner, name, hang)
    if os.environ.get("SET"):
        target, value = os.environ["SET"].split("=")
        obj, attr = _resolve(target)
        setattr(obj, attr, int(value))
    from rerank_align.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
