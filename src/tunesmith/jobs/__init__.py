"""Turning queued tuning operations into runs: workers, leases, the embedded worker."""
