"""Dagster entry point (`dagster dev -m stx_pipeline.definitions`, `dg check defs`).

Everything lives under `stx_pipeline/defs/`, one folder per domain, and is discovered by
`load_from_defs_folder`; this module only points Dagster at the project.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
