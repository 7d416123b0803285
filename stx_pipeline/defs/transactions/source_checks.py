"""`source_not_deprecated`: WARN while the backfill reads a route the server marks deprecated.

Hiro announces a sunset months ahead with `Warning: 299` on every answer of a deprecated
route; at sunset the route answers 410. The `transactions` asset records what the server said
(`api_*` metadata, from the client's `DeprecationWatch`); this check turns it into a failed
WARN evaluation, which the check-alert sensor delivers through the usual alert path (status
JSON and webhook) with what to do.
"""

from typing import Any

import dagster as dg

from stx_pipeline.defs import settings
from stx_pipeline.hiro.deprecation import WHAT_TO_DO

TRANSACTIONS = dg.AssetKey(settings.TRANSACTIONS_KEY)
UPGRADE_ADVICE = (
    "nothing breaks yet (a 410 switches the run to v3 by itself); unset HIRO_SOURCE (auto)"
    " or set it, or the Hiro resource's `source`, to v3, so that runs read"
    " /extended/v3/transactions from the start"
)


def api_metadata(api: dict[str, Any]) -> dict[str, dg.MetadataValue]:
    """Asset metadata from `DeprecationWatch.to_dict()`; read back by the check below."""
    deprecated = api.get("deprecated") or []
    return {
        "api_version": dg.MetadataValue.text(str(api.get("api_version") or "unknown")),
        "api_deprecated_paths": dg.MetadataValue.json([d["path"] for d in deprecated]),
        "api_warning": dg.MetadataValue.text(deprecated[0]["warning"] if deprecated else ""),
        "api_gone_paths": dg.MetadataValue.json(sorted(api.get("gone") or {})),
    }


def deprecation_message(meta: dict[str, Any]) -> str | None:
    """One line saying what is deprecated and what to do, None when nothing is."""
    paths = list(meta.get("api_deprecated_paths") or [])
    gone = list(meta.get("api_gone_paths") or [])
    if not paths and not gone:
        return None
    version = meta.get("api_version") or "unknown"
    parts = []
    if gone:
        parts.append(f"{', '.join(gone)} answered 410 Gone")
    if paths:
        warning = meta.get("api_warning") or ""
        parts.append(f"{', '.join(paths)} is deprecated by the server ({warning})")
    return (
        f"Hiro API {version}: {'; '.join(parts)}. {WHAT_TO_DO[0].upper()}{WHAT_TO_DO[1:]}."
        f" What to do: {UPGRADE_ADVICE}."
    )


def _latest_metadata(instance: dg.DagsterInstance) -> dict[str, Any] | None:
    event = instance.get_latest_materialization_event(TRANSACTIONS)
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.asset_check(
    asset=TRANSACTIONS,
    description=(
        "The latest backfill read no API route that the server marks deprecated (Warning: 299)"
        " or has switched off (410)."
    ),
)
def source_not_deprecated(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """WARN with the route, the server version, its warning and what to do."""
    meta = _latest_metadata(context.instance)
    if meta is None or "api_version" not in meta:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="no backfill has recorded the API's headers yet",
        )
    message = deprecation_message(meta)
    return dg.AssetCheckResult(
        passed=message is None,
        severity=dg.AssetCheckSeverity.WARN,
        description=message or f"Hiro API {meta['api_version']}: no deprecated route in use",
        metadata={
            "api_version": str(meta.get("api_version")),
            "deprecated_paths": dg.MetadataValue.json(list(meta.get("api_deprecated_paths") or [])),
            "gone_paths": dg.MetadataValue.json(list(meta.get("api_gone_paths") or [])),
        },
    )
