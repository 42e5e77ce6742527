"""Rebuilding and checking the read models from the ledger: `ledger replay`, `ledger verify`.

`rebuild` folds the whole ledger into fresh tables and swaps them in atomically,
`verify` compares the live read models with the pure fold, `from_kafka` rebuilds the
ledger itself from the topic's history.
"""
