#!/usr/bin/env bash
# The pinned uv that scripts/bootstrap.sh installed: the project's own copy (.tools/, made
# where python3 is externally managed, PEP 668), else python3's.
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$here/.tools/bin/uv" ]; then
    exec "$here/.tools/bin/uv" "$@"
fi
exec python3 -m uv "$@"
