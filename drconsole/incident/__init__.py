"""The incident record: an append-only, hash-chained JSON Lines log of one run."""
