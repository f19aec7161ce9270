"""What a forget returns, and the error of a closed index."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .._validation import ERASEError


@dataclass(frozen=True)
class ForgetReceipt:
    """What ``forget`` did. ``recompute_from``: None (statistics only), -1 (seeding rerun) or
    the Lloyd iteration recomputed from. ``selected_changed``: whether the erase set moved."""

    ids: tuple[str, ...]
    n_remaining: int
    selected_changed: bool
    recomputed: bool
    recompute_from: int | None
    digest_before: str
    digest_after: str
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class IndexClosedError(ERASEError):
    """A persisted index was used after :meth:`ExampleIndex.close`."""
