"""Many generations from one file: the jobs it holds, the runner (bounded concurrency, one
shared rate-limit pause, budgets, shards) and the manifest that makes a batch resumable."""
