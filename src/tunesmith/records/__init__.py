"""Records every layer exchanges, at the bottom of the package.

Here: conversations (:mod:`.conversations`), the create request (:mod:`.tuning`),
permissions and the caller (:mod:`.permissions`), generation deltas (:mod:`.generation`);
tuned models, operations and generations are in :mod:`tunesmith.types`, just below. Neither
imports anything of tunesmith but :mod:`tunesmith.errors` and each other; :mod:`tunesmith.store`
maps its rows to these records, and the SDK and the wire see only these.
"""
