"""Dagster entry point (`dagster dev -m stx_pipeline.definitions`, `dg check defs`).

Everything lives under `stx_pipeline/defs/`, one folder per domain, and is discovered by
`load_from_defs_folder`; this module only points Dagster at the project, after parsing
every setting: a malformed environment variable fails the load with its one-line error
(in `dg check defs`, the UI's code location and every run worker), instead of a default.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from stx_pipeline import settings


@dg.definitions
def defs() -> dg.Definitions:
    settings.current()  # SettingError: "<VARIABLE>='<value>' is not <what is allowed>; ..."
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
