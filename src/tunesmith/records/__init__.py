"""The records every layer exchanges, at the bottom of the package.

Tuned models, operations, permissions, the create request, conversations, generation deltas and
the caller live here. This package imports nothing of tunesmith but :mod:`tunesmith.errors`;
:mod:`tunesmith.store` maps its rows to these records, and the SDK, the wire and the routes
see only these.
"""
