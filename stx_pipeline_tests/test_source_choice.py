"""`HIRO_SOURCE=auto|v3|v1`: the setting, and `auto` asking the server (v9 or older)."""

from __future__ import annotations

import pytest
import requests

from stx_pipeline.hiro import HiroClient
from stx_pipeline.hiro.source_choice import resolve_source, serves_v3, source_setting


def test_setting_defaults_to_auto_and_rejects_typos() -> None:
    assert source_setting(environ={}) == "auto"
    assert source_setting(environ={"HIRO_SOURCE": " V3 "}) == "v3"
    assert source_setting("v1", environ={"HIRO_SOURCE": "v3"}) == "v1"
    with pytest.raises(ValueError, match="HIRO_SOURCE='v2' is not one of auto, v3, v1"):
        source_setting(environ={"HIRO_SOURCE": "v2"})


def test_auto_prefers_v3_and_falls_back_on_an_older_server(make_simulator) -> None:
    v9 = make_simulator(history_days=1, tx_per_day=500)
    old = make_simulator(history_days=1, tx_per_day=500, pre_v9=True,
                         api_version="v8.15.4 (master:1a2b3c4d)")
    with HiroClient(v9.url) as c:
        assert serves_v3(c) and resolve_source(c, "auto") == "v3"
        assert resolve_source(c, "v1") == "v1"
    with HiroClient(old.url) as c:
        assert not serves_v3(c) and resolve_source(c, "auto") == "v1"
        assert resolve_source(c, "v3") == "v3"  # the user's explicit choice stands
    r = requests.get(old.url + "/extended/v1/tx", params={"limit": 1}, timeout=10)
    assert r.status_code == 200 and "warning" not in r.headers
    assert r.headers["x-api-version"].startswith("v8.15.4")
    assert requests.get(old.url + "/extended/v3/transactions", timeout=10).status_code == 404
    assert requests.get(old.url + "/extended/v2/blocks", timeout=10).status_code == 200
