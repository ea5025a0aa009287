"""The history and cost ledger: every generation, in SQLite."""
