"""Functions generated once from declarations, as `dataclasses` generates `__init__`.

The copies, snapshots and COPY rows of pack state run for every pack a batch writes. A
loop over the declarations cost 2-2.5 times the same code with every field spelled out,
so the code is spelled out from the declarations at import: the declaration stays the
single source, and the hot path reads like hand-written code (`inspect` shows it under
the name `<generated NAME>`).
"""

from __future__ import annotations

from typing import Any


def compiled(name: str, source: str, namespace: dict[str, Any]) -> Any:
    """The function `name` defined by `source`, with `namespace` as its globals."""
    exec(compile(source, f"<generated {name}>", "exec"), namespace)
    return namespace[name]
