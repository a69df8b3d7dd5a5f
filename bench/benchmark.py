"""The benchmark's command line as a script: ``PYTHONPATH=workflow/scripts python
bench/benchmark.py [--sections ...]`` (``make bench``), the same as ``python -m bench``.
The sections live in the package ``bench`` (``bench.cli``: the flags and what each
section measures, also in ``--help``)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: the package ``bench`` in it
# run as a script, Python puts bench/ first on the path: the repository instead, so that
# the package's modules are found as bench.* and never shadow another top-level module
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cli import SECTIONS, main, parse_args  # noqa: E402

__all__ = ["SECTIONS", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
