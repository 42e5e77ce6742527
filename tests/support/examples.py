"""How many examples a property test draws, and how CI draws them.

`examples(n)` is a test's own figure times `LEDGER_PROPERTY_SCALE` (default 1): a developer
hunting rare cases runs e.g. `LEDGER_PROPERTY_SCALE=10 bash scripts/uv.sh run pytest
tests/unit/test_fold_properties.py`. The test command (`scripts/test.sh`) runs the `ci`
profile, registered in tests/conftest.py: derandomized, so a run draws the same examples
as the last run of the same code and a red CI run can be reproduced by running it again;
a plain `pytest` draws new examples each run.
"""

from __future__ import annotations

import os

SCALE = max(1, int(os.environ.get("LEDGER_PROPERTY_SCALE", "1")))


def examples(n: int) -> int:
    return n * SCALE
