"""Where the tests find the real Hiro API samples: in the repository, next to this file.

Provenance of every file is in `data/README.md`. A missing sample is a broken checkout,
so tests read these paths directly and fail loudly; they never skip.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "data"

# The one complete, current answer (8 transactions, February 2026, testnet).
TESTNET_PAGE_2026 = SAMPLES / "testnet-contract-principal-transactions-2026-02.json"
