"""The exact, resumable two-phase backfill over a coverage ledger."""

from stx_pipeline.backfill.result import BackfillResult, StopReason
from stx_pipeline.backfill.runner import Progress, ensure_transaction_history
from stx_pipeline.backfill.status import check_backfill_progress, write_status_file

__all__ = [
    "BackfillResult",
    "Progress",
    "StopReason",
    "check_backfill_progress",
    "ensure_transaction_history",
    "write_status_file",
]
