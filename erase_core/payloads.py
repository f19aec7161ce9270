"""The JSON text of a payload: the one spelling the index stores, hashes into its digest and
hands back, so every adapter that needs a payload's text asks here instead of re-encoding."""

from __future__ import annotations

import json
from typing import Any

from ._validation import ERASEError

__all__ = ["payload_json"]


def payload_json(payload: Any) -> str:
    """``payload`` as canonical JSON (sorted keys, UTF-8 text, no NaN): the text
    :meth:`ExampleIndex.add <erase_core.ExampleIndex.add>` stores and hashes. A payload JSON
    cannot hold raises :class:`ERASEError` naming the problem."""
    try:
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ERASEError(f"payload is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise ERASEError("payload is nested too deeply to serialise as JSON") from None
