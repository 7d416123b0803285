"""When the chain can no longer change a time window: the finality horizon.

Near the head the past still changes, by the rules of the two chains:
- Bitcoin accepts a header time above the median of the previous 11 blocks (the
  median-time-past, about an hour behind the tip) and at most 2 h ahead of network time.
  A later burn block can therefore carry an earlier `burn_block_time` than its parent, and
  its transactions land in a window that looked finished.
- A Bitcoin fork orphans the Stacks blocks of the burn blocks it replaces, several burn
  blocks deep; their transactions come back (or not) under new burn times.

So a window is *final* only if it ends before the horizon
    head − (2 h future drift + median-time-past lag + reorg depth × 10 min),
where `head` is the newest burn time seen by the run that verified it. Both the lag and
the depth are stated here and configurable; with the defaults the horizon is 4 h behind
the head. Every window after it is *provisional*: each run re-verifies it and seals it
final once a later run verifies it past the horizon (docs/architecture.md, "Finality").
"""

from __future__ import annotations

from dataclasses import dataclass

from stx_pipeline import settings

# Bitcoin consensus: a block header may be at most 2 h ahead of the network-adjusted time.
MAX_FUTURE_DRIFT_SECONDS = 7200
BURN_BLOCK_SECONDS = 600


@dataclass(frozen=True)
class FinalityRules:
    """The stated assumptions behind the horizon (defaults: 1 h lag, 6 burn blocks)."""

    # how far behind the tip the median of 11 blocks lies
    mtp_lag_seconds: int = settings.DEFAULT_MTP_LAG_SECONDS
    reorg_depth_burn_blocks: int = settings.DEFAULT_REORG_DEPTH  # the deepest fork planned for

    def __post_init__(self) -> None:
        if self.mtp_lag_seconds < 0 or self.reorg_depth_burn_blocks < 0:
            raise ValueError("finality lag and reorg depth must be >= 0")

    @property
    def span_seconds(self) -> int:
        """How far behind the head the horizon lies."""
        return (
            MAX_FUTURE_DRIFT_SECONDS
            + self.mtp_lag_seconds
            + self.reorg_depth_burn_blocks * BURN_BLOCK_SECONDS
        )

    def horizon(self, head_burn_time: int) -> int:
        """Windows ending before this instant (unix seconds) cannot change any more."""
        return head_burn_time - self.span_seconds

    @classmethod
    def from_env(cls) -> FinalityRules:
        """$STX_PIPELINE_FINALITY_MTP_LAG_SECONDS and $STX_PIPELINE_REORG_DEPTH (settings.py)."""
        current = settings.current()
        return cls(current.finality_mtp_lag_seconds, current.reorg_depth)
