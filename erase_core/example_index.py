"""ExampleIndex: a pool of few-shot examples whose selection can be exactly unlearned.

The class is built from parts in :mod:`erase_core.index`; this module keeps its import path.
"""

from .index.example_index import FORMAT_VERSION, INDEX_PARAMETERS, ExampleIndex
from .index.receipt import ForgetReceipt, IndexClosedError

__all__ = ["ExampleIndex", "FORMAT_VERSION", "ForgetReceipt", "INDEX_PARAMETERS", "IndexClosedError"]
