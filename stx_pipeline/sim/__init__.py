"""Offline stand-in for the Hiro API: a seeded, growing chain served over real HTTP.

    from stx_pipeline.sim import run_simulator
    with run_simulator(seed=7, history_days=3, tx_per_day=3000, frozen=True) as sim:
        requests.get(f"{sim.url}/extended/v1/tx", params={"limit": 50})
"""

from stx_pipeline.sim.server import SimConfig, Simulator, run_simulator, serve_forever

__all__ = ["SimConfig", "Simulator", "run_simulator", "serve_forever"]
