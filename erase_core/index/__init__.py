"""The example index, in parts with one job each.

- :mod:`.params`: the parameters that define an index (checked once, config, digest text).
- :mod:`.encoding`: examples on the way in (checked, normalised, hashed once).
- :mod:`.pool`: the rows in memory (ids, vectors, payloads, attributes, hashes, row numbers).
- :mod:`.clustering`: the pool's quantized k-means, possibly lagging, and the ``erase`` set.
- :mod:`.memory`: pool and clustering changed together, and the caches derived from them.
- :mod:`.snapshot`: the ``erase`` answer ``select_nowait`` reads without the lock.
- :mod:`.replica`: memory kept caught up with a store (versions, change log, posted selection).
- :mod:`.local`: the same calls without a store: in memory (audit log, notes), or closed.
- :mod:`.example_index`: :class:`ExampleIndex`, the public face: locking, steps, audit, copies.
"""

from .example_index import ExampleIndex
from .receipt import ForgetReceipt, IndexClosedError

__all__ = ["ExampleIndex", "ForgetReceipt", "IndexClosedError"]
