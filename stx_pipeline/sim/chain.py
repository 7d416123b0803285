"""The simulated chain: numpy column arrays, deterministic from a seed, queried like Hiro's SQL.

Rows are kept sorted by (block_height, tx_index); block times only grow with height, so
visibility is a binary search and a page is a slice. Burn (Bitcoin header) times grow with
height too unless the out-of-order flags are on: then time filters go through a burn-time
index (a stable argsort), which keeps the API's tie-breakers exact. Only the rows
actually served are turned into Python objects (see `TxRow` and `txjson.py`), which is what
lets 10^6+ transactions answer a page in a few milliseconds.

Generation runs in one-day chunks, each with its own RNG seeded by (seed, chunk), while wallet
nonces carry over from chunk to chunk: the same seed always yields the same chain, however far
ahead it was generated or extended lazily.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stx_pipeline.sim.c32 import MAINNET_P2PKH, c32_address

TX_TYPES: tuple[str, ...] = (
    "token_transfer",
    "smart_contract",
    "contract_call",
    "poison_microblock",
    "coinbase",
    "tenure_change",
)
TYPE_CODE = {name: i for i, name in enumerate(TX_TYPES)}
T_TRANSFER, T_DEPLOY, T_CALL, _T_POISON, T_COINBASE, T_TENURE = range(6)
TX_STATUSES: tuple[str, ...] = ("success", "abort_by_response", "abort_by_post_condition")

GENESIS_HEIGHT = 3_800_000
GENESIS_BURN_HEIGHT = 905_000
CHUNK_SECONDS = 86_400
N_MINERS = 12
N_SPONSORS = 6
USER_BASE = N_MINERS + N_SPONSORS  # wallet ids: miners, then sponsor services, then users
BLOCK_INTERVAL = 30.0  # mean seconds between Stacks blocks inside a tenure
REMINED_KEY_BASE = 1 << 62  # tx keys of transactions first seen in a reorg
MAX_FUTURE_SECONDS = 7200  # Bitcoin rejects a header more than 2 h ahead of network time

_CONTRACT_BASES = (
    "amm-pool-v2-01", "univ2-router", "stackingdao-core-v3", "sbtc-token", "sbtc-deposit",
    "arkadiko-swap-v2-1", "velar-router", "bns-v2", "pox-4", "usda-token", "alex-vault-v1-1",
    "zest-pool-v2-0", "charisma-dex", "nft-marketplace-v3", "gamma-listings", "token-welsh",
    "stx20-bridge", "bitflow-stableswap", "hermetica-vault", "granite-borrow", "lisa-staking",
    "xyk-core-v-1-2", "jing-cash", "ordinals-bridge", "leo-token", "memegoat-launchpad",
)
_FUNCTIONS = (
    "swap-x-for-y", "swap-y-for-x", "swap-helper", "transfer", "stake", "unstake",
    "claim-rewards", "deposit", "withdraw", "mint", "list-asset", "purchase-asset",
    "delegate-stx", "name-register", "add-liquidity", "remove-liquidity", "vote", "borrow",
    "repay", "set-price",
)
N_CONTRACTS = 260


def _h(*parts: object) -> bytes:
    return hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=32).digest()


@dataclass(frozen=True)
class TxRow:
    """Everything needed to render one transaction object; built only for served rows."""

    seed: int
    tx_key: int
    tx_id: str
    canonical: bool
    block_height: int
    block_hash: str
    index_block_hash: str
    parent_block_hash: str
    tx_index: int
    block_time: int
    burn_block_time: int
    burn_block_height: int
    parent_burn_block_time: int
    tx_type: str
    tx_status: str
    sender_address: str
    nonce: int
    fee_rate: int
    sponsor_address: str | None
    sponsor_nonce: int | None
    contract_id: str | None
    function_name: str | None
    recipient_address: str | None
    amount: int | None

    def ground_truth(self) -> dict[str, Any]:
        """The flat record tests compare against (not a Hiro object)."""
        return {
            "tx_id": self.tx_id,
            "canonical": self.canonical,
            "burn_block_time": self.burn_block_time,
            "burn_block_height": self.burn_block_height,
            "block_time": self.block_time,
            "block_height": self.block_height,
            "block_hash": self.block_hash,
            "tx_index": self.tx_index,
            "tx_type": self.tx_type,
            "tx_status": self.tx_status,
            "sender_address": self.sender_address,
            "nonce": self.nonce,
            "sponsored": self.sponsor_address is not None,
            "sponsor_address": self.sponsor_address,
            "sponsor_nonce": self.sponsor_nonce,
            "fee_rate": self.fee_rate,
            "contract_id": self.contract_id,
            "function_name": self.function_name,
            "token_recipient": self.recipient_address,
            "token_amount": self.amount,
        }


@dataclass
class Query:
    """A validated `/extended/v1/tx` query; falsy filters (0, None) mean "no filter"."""

    limit: int = 20
    offset: int = 0
    desc: bool = True
    sort_by: str = "block_height"
    types: frozenset[int] | None = None
    start_time: int | None = None
    end_time: int | None = None
    sender: int | None = None  # wallet id; -1 = valid address that never sent
    recipient: int | None = None
    contract_id: str | None = None
    function_name: str | None = None
    nonce: int | None = None


_ROW_FIELDS: dict[str, Any] = {
    "block": np.int64, "btime": np.int64, "burn": np.int64, "tx_index": np.int32,
    "ttype": np.int8, "status": np.int8, "sender": np.int64, "nonce": np.int64,
    "fee": np.int64, "sponsor": np.int64, "sponsor_nonce": np.int64, "contract": np.int32,
    "func": np.int16, "recipient": np.int64, "amount": np.int64, "key": np.uint64,
}


class Chain:
    """Column store of one simulated Stacks chain, with Hiro-like queries and reorgs."""

    def __init__(
        self, seed: int, history_days: float, tx_per_day: float, now: int, *,
        burn_disorder: float = 0.0, burn_ahead: float = 0.0,
    ) -> None:
        self.seed = int(seed)
        # Bitcoin header times: a block needs only a time above the median of the previous
        # 11 (so it can be earlier than its parent) and at most 2 h ahead of network time.
        self.burn_disorder = float(burn_disorder)
        self.burn_ahead = float(burn_ahead)
        self.tx_per_day = float(tx_per_day)
        self.genesis_time = int(now - history_days * 86_400)
        self.lock = threading.RLock()
        self.version = 0  # bumped on every mutation; keys the query caches
        # tenures, blocks, rows
        self.t_time = np.zeros(0, np.int64)  # when the tenure really started
        self.t_header = np.zeros(0, np.int64)  # its burn block's header time (burn_block_time)
        self.t_miner = np.zeros(0, np.int64)
        self.b_time = np.zeros(0, np.int64)
        self.b_tenure = np.zeros(0, np.int64)
        self.b_fork = np.zeros(0, np.int32)
        self.t_fork: dict[int, int] = {}  # tenure -> Bitcoin forks that replaced its burn block
        self.rows: dict[str, np.ndarray] = {k: np.zeros(0, t) for k, t in _ROW_FIELDS.items()}
        # generation state carried from chunk to chunk
        self._chunks = 0
        self._next_tenure_time = self.genesis_time
        self._wallets = USER_BASE
        self._user_rows = 0
        self._next_nonce = np.zeros(1024, np.int64)
        self._next_sponsor_nonce = np.zeros(USER_BASE, np.int64)
        self._new_keys = 0
        self._reorgs = 0
        self.orphaned: list[dict[str, Any]] = []
        self._addr_cache: dict[int, str] = {}
        self._addr_index: dict[str, int] | None = None
        self._type_cache: dict[tuple[frozenset[int], int], np.ndarray] = {}
        self._sort_cache: tuple[tuple[Any, ...], np.ndarray] | None = None
        self._burn_index: tuple[int, tuple[np.ndarray, np.ndarray] | None] | None = None
        rng = np.random.default_rng([self.seed, 0xC0DE])
        self._contract_funcs = rng.integers(1, 7, N_CONTRACTS)
        self._contract_func_start = rng.integers(0, len(_FUNCTIONS), N_CONTRACTS)
        self.generated_until = self.genesis_time

    # ------------------------------------------------------------------ generation
    def ensure_generated(self, until: float) -> None:
        """Extend the chain in whole chunks until it covers `until` (sim seconds)."""
        with self.lock:
            if until < self.generated_until:
                return
            chunks: list[dict[str, np.ndarray]] = []
            t_off, b_off = len(self.t_time), len(self.b_time)
            while self.generated_until <= until:
                c = self._gen_chunk(t_off, b_off)
                t_off += len(c["t_time"])
                b_off += len(c["b_time"])
                chunks.append(c)
            self._append(chunks)

    def _append(self, chunks: list[dict[str, np.ndarray]]) -> None:
        for key in self.rows:
            self.rows[key] = np.concatenate([self.rows[key], *[c[key] for c in chunks]])
        self.t_time = np.concatenate([self.t_time, *[c["t_time"] for c in chunks]])
        self.t_header = np.concatenate([self.t_header, *[c["t_header"] for c in chunks]])
        self.t_miner = np.concatenate([self.t_miner, *[c["t_miner"] for c in chunks]])
        self.b_time = np.concatenate([self.b_time, *[c["b_time"] for c in chunks]])
        self.b_tenure = np.concatenate([self.b_tenure, *[c["b_tenure"] for c in chunks]])
        self.b_fork = np.concatenate(
            [self.b_fork, *[np.zeros(len(c["b_time"]), np.int32) for c in chunks]]
        )
        self._bump()

    def _bump(self) -> None:
        self.version += 1
        self._type_cache.clear()
        self._sort_cache = None
        self._burn_index = None
        self._addr_index = None

    def _grow_nonces(self, n: int) -> None:
        if n > len(self._next_nonce):
            grown = np.zeros(max(n, 2 * len(self._next_nonce)), np.int64)
            grown[: len(self._next_nonce)] = self._next_nonce
            self._next_nonce = grown

    def _gen_chunk(self, t_first: int, b_first: int) -> dict[str, np.ndarray]:
        """One day of chain; `t_first`/`b_first` are the global ids of its first tenure/block."""
        k = self._chunks
        rng = np.random.default_rng([self.seed, 0x5717, k])
        chunk_end = self.genesis_time + (k + 1) * CHUNK_SECONDS
        # --- Bitcoin tenures: ~10 min apart, exponential-ish, ~4% long gaps of 30-90 min
        times = [np.array([self._next_tenure_time], np.int64)]
        last = self._next_tenure_time
        while last < chunk_end:
            n = 200
            long_gap = rng.random(n) < 0.04
            gaps = np.where(
                long_gap, rng.integers(1800, 5401, n), 45 + rng.exponential(470.0, n)
            ).astype(np.int64)
            t = last + np.cumsum(gaps)
            times.append(t)
            last = int(t[-1])
        all_t = np.concatenate(times)
        m = int(np.searchsorted(all_t, chunk_end, "left"))
        t_time = all_t[:m]
        dur = all_t[1 : m + 1] - t_time
        self._next_tenure_time = int(all_t[m])
        t_miner = rng.integers(0, N_MINERS, m).astype(np.int64)
        # --- Stacks blocks: several per tenure, strictly increasing times inside it
        nb = np.minimum(1 + rng.poisson(dur / BLOCK_INTERVAL), dur).astype(np.int64)
        b_ten_local = np.repeat(np.arange(m), nb)
        first_block_local = np.concatenate([[0], np.cumsum(nb)[:-1]])
        j = np.arange(len(b_ten_local)) - first_block_local[b_ten_local]
        d_rep, nb_rep = dur[b_ten_local], nb[b_ten_local]
        lo = (j * d_rep) // nb_rep
        hi = ((j + 1) * d_rep) // nb_rep
        b_time = t_time[b_ten_local] + lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)
        # --- user txs per tenure: duration x heavy-tailed activity x daily cycle, some empty
        sigma = 0.9
        activity = rng.lognormal(-0.5 * sigma * sigma, sigma, m) / 0.95
        activity[rng.random(m) < 0.05] = 0.0
        diurnal = 1.0 + 0.35 * np.sin(2 * np.pi * ((t_time % 86_400) / 86_400.0 - 0.3))
        lam = self.tx_per_day * dur / 86_400.0 * activity * diurnal
        n_user = rng.poisson(lam)
        u_ten = np.repeat(np.arange(m), n_user)
        u_block = first_block_local[u_ten] + (rng.random(len(u_ten)) * nb[u_ten]).astype(np.int64)
        # --- rows: tenure_change (index 0) + coinbase (index 1) open each tenure's first block
        s_block = np.repeat(first_block_local, 2)
        s_type = np.tile(np.array([T_TENURE, T_COINBASE], np.int64), m)
        s_ten = np.repeat(np.arange(m), 2)
        blocks = np.concatenate([s_block, u_block])
        subkey = np.concatenate([np.tile([0.0, 1.0], m), 2.0 + rng.random(len(u_block))])
        order = np.lexsort((subkey, blocks))
        n = len(order)
        is_user = (order >= 2 * m)
        blocks = blocks[order]
        ten_local = np.concatenate([s_ten, u_ten])[order]
        tx_index = np.arange(n) - np.searchsorted(blocks, blocks, "left")
        ttype = np.full(n, T_CALL, np.int64)
        ttype[~is_user] = s_type[order[~is_user]]
        nu = int(is_user.sum())
        # user tx attributes
        u_type = rng.choice([T_TRANSFER, T_CALL, T_DEPLOY], nu, p=[0.27, 0.70, 0.03])
        ttype[is_user] = u_type
        status = np.zeros(n, np.int64)
        st = rng.choice([0, 1, 2], nu, p=[0.90, 0.07, 0.03])
        st[(u_type == T_DEPLOY) & (st == 2)] = 0
        status[is_user] = st
        base_fee = np.select(
            [u_type == T_TRANSFER, u_type == T_CALL], [1_500.0, 6_000.0], 120_000.0
        )
        fee_u = np.maximum(180, np.round(base_fee * rng.lognormal(0, 0.9, nu) / 100) * 100)
        fee = np.zeros(n, np.int64)
        fee[is_user] = fee_u.astype(np.int64)
        # senders: new wallets keep arriving; returning ones lean to recent and to heavy users
        ui = self._user_rows + np.arange(nu)
        p_new = 0.035 + 0.6 * np.exp(-ui / 3000.0)
        is_new = rng.random(nu) < p_new
        users_before = self._wallets - USER_BASE
        if users_before == 0 and nu:
            is_new[0] = True
        count = users_before + np.cumsum(is_new)
        u1 = rng.random(nu)
        recent = rng.random(nu) < 0.55
        pick_recent = count - 1 - np.floor(np.minimum(count, 4000) * u1**2).astype(np.int64)
        pick_heavy = np.floor(count * u1**2.2).astype(np.int64)
        idx = np.where(is_new, count - 1, np.where(recent, pick_recent, pick_heavy))
        sender = np.empty(n, np.int64)
        sender[is_user] = USER_BASE + np.clip(idx, 0, np.maximum(count - 1, 0))
        sender[~is_user] = t_miner[ten_local[~is_user]]
        self._wallets = USER_BASE + int(count[-1]) if nu else self._wallets
        self._user_rows += nu
        # sponsorship (~5%), token transfer recipients and amounts, contract calls
        sponsor = np.full(n, -1, np.int64)
        sp = rng.random(nu) < 0.05
        sp_ids = N_MINERS + rng.integers(0, N_SPONSORS, nu)
        sponsor_u = np.where(sp, sp_ids, -1)
        sponsor[is_user] = sponsor_u
        recipient = np.full(n, -1, np.int64)
        rec_u = USER_BASE + np.floor(rng.random(nu) * count).astype(np.int64)
        recipient[is_user] = np.where(u_type == T_TRANSFER, rec_u, -1)
        amount = np.full(n, -1, np.int64)
        amt = np.maximum(1, rng.lognormal(math.log(5e6), 2.0, nu)).astype(np.int64)
        amount[is_user] = np.where(u_type == T_TRANSFER, amt, -1)
        contract = np.full(n, -1, np.int32)
        c_u = (rng.zipf(1.4, nu) - 1) % N_CONTRACTS
        contract[is_user] = np.where(u_type == T_CALL, c_u, -1)
        func = np.full(n, -1, np.int16)
        f_u = rng.integers(0, 1 << 14, nu) % self._contract_funcs[c_u]
        func[is_user] = np.where(u_type == T_CALL, f_u, -1)
        # nonces: +1 per sender tx, continuing from the previous chunks
        self._grow_nonces(self._wallets)
        nonce = self._assign_nonces(sender, self._next_nonce)
        sponsor_nonce = np.full(n, -1, np.int64)
        sponsored_rows = np.flatnonzero(sponsor >= 0)
        if len(sponsored_rows):
            sponsor_nonce[sponsored_rows] = self._assign_nonces(
                sponsor[sponsored_rows], self._next_sponsor_nonce
            )
        key = (np.uint64(k) << np.uint64(24)) + np.arange(n, dtype=np.uint64)
        b_global = blocks + b_first
        b_ten_global = b_ten_local + t_first
        t_header = self._header_times(t_time, k)
        burn = t_header[ten_local]
        self._chunks += 1
        self.generated_until = chunk_end
        out = {
            "block": b_global, "btime": b_time[blocks], "burn": burn,
            "tx_index": tx_index.astype(np.int32), "ttype": ttype.astype(np.int8),
            "status": status.astype(np.int8), "sender": sender, "nonce": nonce, "fee": fee,
            "sponsor": sponsor, "sponsor_nonce": sponsor_nonce, "contract": contract,
            "func": func, "recipient": recipient, "amount": amount, "key": key,
            "t_time": t_time, "t_header": t_header, "t_miner": t_miner, "b_time": b_time,
            "b_tenure": b_ten_global.astype(np.int64),
        }
        return out

    def _header_times(self, t_time: np.ndarray, chunk: int) -> np.ndarray:
        """Header times of a chunk's burn blocks: their real times, unless the flags perturb
        some within Bitcoin's rules (above the median of the previous 11, at most 2 h ahead).
        A separate RNG stream, so the default chain is the same with the flags off."""
        if not (self.burn_disorder or self.burn_ahead):
            return t_time.copy()
        rng = np.random.default_rng([self.seed, 0xB17C, chunk])
        prev = [int(x) for x in self.t_header[-11:]]
        out = np.empty_like(t_time)
        for i, real in enumerate(t_time.tolist()):
            mtp = int(np.median(prev[-11:])) if prev else real - 1
            u = rng.random()
            header = real
            if u < self.burn_ahead:
                header = real + int(rng.integers(60, MAX_FUTURE_SECONDS + 1))
            elif u < self.burn_ahead + self.burn_disorder and prev and prev[-1] - mtp > 2:
                header = int(rng.integers(mtp + 1, prev[-1]))
            out[i] = max(header, mtp + 1)
            prev.append(int(out[i]))
            prev = prev[-11:]
        return out

    @staticmethod
    def _assign_nonces(owner: np.ndarray, next_nonce: np.ndarray) -> np.ndarray:
        """Nonce = owner's next nonce + rank of the row among the owner's rows, in row order."""
        n = len(owner)
        order = np.argsort(owner, kind="stable")
        s = owner[order]
        idx = np.arange(n)
        starts = np.where(np.r_[True, s[1:] != s[:-1]], idx, 0)
        rank = idx - np.maximum.accumulate(starts)
        out = np.empty(n, np.int64)
        out[order] = next_nonce[s] + rank
        np.add.at(next_nonce, owner, 1)
        return out

    # ------------------------------------------------------------------ addresses, hashes
    def address(self, wallet: int) -> str:
        a = self._addr_cache.get(wallet)
        if a is None:
            a = c32_address(MAINNET_P2PKH, _h(self.seed, "wallet", wallet)[:20])
            self._addr_cache[wallet] = a
        return a

    def wallet_of(self, address: str) -> int:
        """Wallet id of an address, or -1 (a valid address that never appears)."""
        with self.lock:
            if self._addr_index is None:
                self._addr_index = {self.address(w): w for w in range(self._wallets)}
            return self._addr_index.get(address, -1)

    def contract_id(self, c: int) -> str:
        base = _CONTRACT_BASES[c % len(_CONTRACT_BASES)]
        name = base if c < len(_CONTRACT_BASES) else f"{base}-{c // len(_CONTRACT_BASES)}"
        deployer = c32_address(MAINNET_P2PKH, _h(self.seed, "deployer", c % 40)[:20])
        return f"{deployer}.{name}"

    def function_name(self, c: int, f: int) -> str:
        return _FUNCTIONS[(int(self._contract_func_start[c]) + f) % len(_FUNCTIONS)]

    def tx_id(self, key: int) -> str:
        return "0x" + _h(self.seed, "tx", key).hex()

    def block_hash(self, b: int) -> str:
        return "0x" + _h(self.seed, "block", b, int(self.b_fork[b]) if b >= 0 else 0).hex()

    def index_block_hash(self, b: int) -> str:
        return "0x" + _h(self.seed, "iblock", b, int(self.b_fork[b]) if b >= 0 else 0).hex()

    def burn_block_hash(self, t: int, what: str = "burn") -> str:
        """Tenure t's burn block hash (`what="miner"`: its miner txid); a Bitcoin fork that
        replaced the burn block gives it a new one."""
        fork = self.t_fork.get(t, 0)
        return "0x" + (_h(self.seed, what, t, fork) if fork else _h(self.seed, what, t)).hex()

    # ------------------------------------------------------------------ visibility, tip
    def visible_rows(self, sim_now: float) -> int:
        return int(np.searchsorted(self.rows["btime"], math.floor(sim_now), "right"))

    def tip_block(self, sim_now: float) -> int:
        return int(np.searchsorted(self.b_time, math.floor(sim_now), "right")) - 1

    def tip(self, sim_now: float) -> dict[str, Any]:
        with self.lock:
            b = self.tip_block(sim_now)
            return {
                "block_height": GENESIS_HEIGHT + b,
                "block_hash": self.block_hash(b),
                "index_block_hash": self.index_block_hash(b),
                "microblock_hash": "0x",
                "microblock_sequence": 2147483647,
                "burn_block_height": GENESIS_BURN_HEIGHT + int(self.b_tenure[b]) if b >= 0 else 0,
            }

    # ------------------------------------------------------------------ queries
    def _type_positions(self, types: frozenset[int]) -> np.ndarray:
        ck = (types, self.version)
        got = self._type_cache.get(ck)
        if got is None:
            got = np.flatnonzero(np.isin(self.rows["ttype"], np.array(sorted(types), np.int8)))
            self._type_cache[ck] = got
        return got

    def burn_sorted(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(positions ordered by (burn time, position), their burn times), or None while burn
        times grow with the row order and a binary search on the rows suffices."""
        if self._burn_index is not None and self._burn_index[0] == self.version:
            return self._burn_index[1]
        burn = self.rows["burn"]
        index: tuple[np.ndarray, np.ndarray] | None = None
        if len(burn) > 1 and not bool(np.all(burn[1:] >= burn[:-1])):
            perm = np.argsort(burn, kind="stable")
            index = (perm, burn[perm])
        self._burn_index = (self.version, index)
        return index

    def _in_burn_range(
        self, start: int | None, end: int | None, visible: int
    ) -> tuple[int, int, np.ndarray | None]:
        """Visible rows with burn time in [start, end]: a row range (lo, hi, None) when burn
        times are monotonic, else (0, 0, positions in (burn time, position) order)."""
        index = self.burn_sorted()
        if index is None:
            burn = self.rows["burn"]
            lo, hi = 0, visible
            if start:
                lo = max(lo, int(np.searchsorted(burn, start, "left")))
            if end:
                hi = min(hi, int(np.searchsorted(burn, end, "right")))
            return lo, max(hi, lo), None
        perm, sorted_burn = index
        a = int(np.searchsorted(sorted_burn, start, "left")) if start else 0
        b = int(np.searchsorted(sorted_burn, end, "right")) if end else len(perm)
        sel = perm[a:b]
        return 0, 0, sel[sel < visible]

    def query(self, q: Query, sim_now: float) -> tuple[int, list[int]]:
        """(total, row positions of the page) for a validated query, Hiro's ordering."""
        with self.lock:
            r = self.rows
            lo, hi, by_burn = self._in_burn_range(
                q.start_time, q.end_time, self.visible_rows(sim_now))
            cand: np.ndarray | None = None
            if by_burn is not None:
                # burn order for sort_by=burn_block_time, else (block_height, tx_index) order
                cand = by_burn if q.sort_by == "burn_block_time" else np.sort(by_burn)
                if q.types:
                    cand = cand[np.isin(r["ttype"][cand], np.array(sorted(q.types), np.int8))]
            elif q.types:
                tp = self._type_positions(q.types)
                cand = tp[np.searchsorted(tp, lo) : np.searchsorted(tp, hi)]
            masks = []
            if q.sender is not None:
                masks.append(("sender", q.sender))
            if q.recipient is not None:
                masks.append(("recipient", q.recipient))
            if q.nonce:
                masks.append(("nonce", q.nonce))
            if q.contract_id or q.function_name:
                cand = self._contract_mask(cand, lo, hi, q.contract_id, q.function_name)
            for col, val in masks:
                if cand is None:
                    cand = np.arange(lo, hi)
                cand = cand[r[col][cand] == val]
            total = (hi - lo) if cand is None else len(cand)
            if q.offset >= total:
                return total, []
            if q.sort_by == "fee":
                order = self._fee_order(cand, lo, hi, q)
                if q.desc:
                    sel = order[::-1][q.offset : q.offset + q.limit]
                else:
                    sel = order[q.offset : q.offset + q.limit]
                return total, [int(x) for x in sel]
            # `cand` (or the row range) is already in the sort's ascending order
            if q.desc:
                end = total - q.offset
                idx = np.arange(end - 1, max(end - q.limit, 0) - 1, -1)
            else:
                idx = np.arange(q.offset, min(q.offset + q.limit, total))
            pos = idx + lo if cand is None else cand[idx]
            return total, [int(x) for x in pos]

    def _contract_mask(
        self, cand: np.ndarray | None, lo: int, hi: int, cid: str | None, fname: str | None
    ) -> np.ndarray:
        r = self.rows
        if cand is None:
            cand = np.arange(lo, hi)
        cand = cand[r["ttype"][cand] == T_CALL]
        if cid:
            wanted = [c for c in range(N_CONTRACTS) if self.contract_id(c) == cid]
            cand = cand[np.isin(r["contract"][cand], wanted)]
        if fname:
            cs, fs = r["contract"][cand], r["func"][cand]
            names = np.array(
                [self.function_name(int(c), int(f)) for c, f in zip(cs, fs, strict=True)]
            )
            cand = cand[names == fname] if len(cand) else cand
        return cand

    def _fee_order(self, cand: np.ndarray | None, lo: int, hi: int, q: Query) -> np.ndarray:
        """Row positions sorted by (fee, position) ascending; cached for paging."""
        ck = (self.version, lo, hi, q.start_time, q.end_time, q.types, q.sender, q.recipient,
              q.nonce, q.contract_id, q.function_name)
        if self._sort_cache is not None and self._sort_cache[0] == ck:
            return self._sort_cache[1]
        pos = np.arange(lo, hi) if cand is None else np.sort(cand)
        order = pos[np.argsort(self.rows["fee"][pos], kind="stable")]
        self._sort_cache = (ck, order)
        return order

    # ------------------------------------------------------------------ row objects
    def row(self, pos: int, canonical: bool = True) -> TxRow:
        r = self.rows
        return self._make_row({k: r[k][pos].item() for k in r}, canonical)

    def _make_row(self, v: dict[str, Any], canonical: bool) -> TxRow:
        b = int(v["block"])
        ten = int(self.b_tenure[b])
        prev_b = b - 1
        prev_ten = int(self.b_tenure[prev_b]) if prev_b >= 0 else ten
        ttype = int(v["ttype"])
        contract = int(v["contract"])
        sponsor = int(v["sponsor"])
        recipient = int(v["recipient"])
        fork_hash = v.get("block_hash")
        return TxRow(
            seed=self.seed,
            tx_key=int(v["key"]),
            tx_id=self.tx_id(int(v["key"])),
            canonical=canonical,
            block_height=GENESIS_HEIGHT + b,
            block_hash=fork_hash or self.block_hash(b),
            index_block_hash=v.get("index_block_hash") or self.index_block_hash(b),
            parent_block_hash=self.block_hash(prev_b),
            tx_index=int(v["tx_index"]),
            block_time=int(v["btime"]),
            burn_block_time=int(v["burn"]),
            burn_block_height=GENESIS_BURN_HEIGHT + ten,
            parent_burn_block_time=int(self.t_header[prev_ten]),
            tx_type=TX_TYPES[ttype],
            tx_status=TX_STATUSES[int(v["status"])],
            sender_address=self.address(int(v["sender"])),
            nonce=int(v["nonce"]),
            fee_rate=int(v["fee"]),
            sponsor_address=self.address(sponsor) if sponsor >= 0 else None,
            sponsor_nonce=int(v["sponsor_nonce"]) if sponsor >= 0 else None,
            contract_id=(
                self.contract_id(contract) if ttype == T_CALL
                else self._deploy_id(int(v["sender"]), int(v["key"])) if ttype == T_DEPLOY
                else None
            ),
            function_name=self.function_name(contract, int(v["func"])) if ttype == T_CALL else None,
            recipient_address=self.address(recipient) if recipient >= 0 else None,
            amount=int(v["amount"]) if ttype == T_TRANSFER else None,
        )

    def _deploy_id(self, sender: int, key: int) -> str:
        word = _CONTRACT_BASES[_h(self.seed, "deploy", key)[0] % len(_CONTRACT_BASES)]
        return f"{self.address(sender)}.{word}-{key % 100_000}"

    def ground_truth(
        self, sim_now: float, start_time: int | None, end_time: int | None,
        include_orphaned: bool = True,
    ) -> list[dict[str, Any]]:
        with self.lock:
            r = self.rows
            lo, hi, by_burn = self._in_burn_range(
                start_time, end_time, self.visible_rows(sim_now))
            pos = np.arange(lo, hi) if by_burn is None else np.sort(by_burn)
            cols = {k: r[k][pos].tolist() for k in r}
            out = [
                self._make_row({k: cols[k][i] for k in cols}, True).ground_truth()
                for i in range(len(pos))
            ]
            if include_orphaned:
                for o in self.orphaned:
                    bt = o["burn_block_time"]
                    if (start_time is None or bt >= start_time) and (
                        end_time is None or bt <= end_time
                    ) and o["block_time"] <= sim_now:
                        out.append(dict(o))
            return out

    # ------------------------------------------------------------------ reorg
    def reorg(self, depth: int, sim_now: float, burn_blocks: int = 0) -> dict[str, Any]:
        """Orphan the newest `depth` visible blocks and mine replacements at the same heights.

        Re-mined txs keep tx_id, sender and nonce and their relative order. Dropped txs take
        their sender's (and sponsor's) later orphaned txs with them, and the not-yet-visible
        txs of those wallets shift their nonces down, so nonce sequences stay contiguous. New
        txs come from brand-new wallets (nonce 0). System txs are re-mined in place.

        `burn_blocks` > 0 is a Bitcoin fork instead: every Stacks block of the newest
        `burn_blocks` burn blocks is orphaned, and the replacement burn blocks carry new
        header times (above the median of the previous 11), so re-mined transactions change
        `burn_block_time`, and some land in a later tenure than before.
        """
        with self.lock:
            tip = self.tip_block(sim_now)
            if burn_blocks > 0 and tip >= 0:
                first_tenure = max(0, int(self.b_tenure[tip]) - int(burn_blocks) + 1)
                depth = tip - int(np.searchsorted(self.b_tenure, first_tenure, "left")) + 1
            depth = max(1, min(int(depth), tip + 1))
            b0 = tip - depth + 1
            r = self.rows
            a = int(np.searchsorted(r["block"], b0, "left"))
            z = int(np.searchsorted(r["block"], tip, "right"))
            self._reorgs += 1
            rng = np.random.default_rng([self.seed, 0x0DE6, self._reorgs])
            old = {k: v[a:z].copy() for k, v in r.items()}
            old_blocks = [
                (self.block_hash(b), self.index_block_hash(b)) for b in range(b0, tip + 1)
            ]
            n_old = z - a
            is_sys = np.isin(old["ttype"], [T_COINBASE, T_TENURE])
            drop = self._choose_drops(rng, old, is_sys)
            self._shift_later_nonces(old, drop, z)
            for i in np.flatnonzero(drop):
                v = {k: old[k][i].item() for k in old}
                bh, ibh = old_blocks[int(v["block"]) - b0]
                v["block_hash"], v["index_block_hash"] = bh, ibh
                self.orphaned.append(self._make_row(v, False).ground_truth())
            self.b_fork[b0 : tip + 1] += 1
            if burn_blocks > 0:
                self._retime_tenures(rng, int(self.b_tenure[b0]), int(self.b_tenure[tip]), z)
            keep = {k: v[~drop] for k, v in old.items()}
            n_new = int(rng.integers(1, 4 + max(1, n_old // 3)))
            new = self._new_user_rows(rng, n_new, b0, tip)
            # A Bitcoin fork's first replacement burn block may carry no Stacks transactions:
            # its users' transactions are re-mined in the later tenures.
            user_from = b0
            if burn_blocks > 1:
                user_from = int(np.searchsorted(self.b_tenure, int(self.b_tenure[b0]) + 1))
                user_from = min(user_from, tip)
            merged = self._merge_replacement(rng, keep, new, b0, tip, user_from)
            for k in r:
                r[k] = np.concatenate([r[k][:a], merged[k], r[k][z:]])
            self._bump()
            return {
                "depth": depth,
                "from_height": GENESIS_HEIGHT + b0,
                "to_height": GENESIS_HEIGHT + tip,
                "orphaned_txs": int(n_old),
                "remined_txs": int(n_old - drop.sum()),
                "dropped_txs": int(drop.sum()),
                "new_txs": n_new,
                "dropped_tx_ids": [o["tx_id"] for o in self.orphaned[-int(drop.sum()) :]]
                if drop.any() else [],
            }

    def _retime_tenures(self, rng: np.random.Generator, t0: int, t1: int, z: int) -> None:
        """New header times for the replacement burn blocks t0..t1; rows from `z` on that sit
        in those tenures (not yet visible) follow their tenure."""
        for t in range(t0, t1 + 1):
            self.t_fork[t] = self.t_fork.get(t, 0) + 1
            prev = self.t_header[max(0, t - 11) : t]
            mtp = int(np.median(prev)) if len(prev) else int(self.t_time[t]) - 1
            self.t_header[t] = max(mtp + 1, int(self.t_time[t]) + int(rng.integers(-300, 301)))
        r = self.rows
        later = np.arange(z, len(r["block"]))
        ten = self.b_tenure[r["block"][later]]
        moved = later[(ten >= t0) & (ten <= t1)]
        r["burn"][moved] = self.t_header[self.b_tenure[r["block"][moved]]]

    def _choose_drops(
        self, rng: np.random.Generator, old: dict[str, np.ndarray], is_sys: np.ndarray
    ) -> np.ndarray:
        """Pick orphaned user txs that vanish (~25%, at least one), then also drop every later
        orphaned tx of the same sender or sponsor: without its predecessor it is invalid."""
        user = np.flatnonzero(~is_sys)
        drop = np.zeros(len(is_sys), bool)
        if not len(user):
            return drop
        drop[user] = rng.random(len(user)) < 0.25
        if not drop.any():
            drop[user[int(rng.integers(0, len(user)))]] = True
        changed = True
        while changed:
            changed = False
            dropped = np.flatnonzero(drop)
            for i in user:
                if drop[i]:
                    continue
                before = dropped[dropped < i]
                if np.any(old["sender"][before] == old["sender"][i]) or (
                    old["sponsor"][i] >= 0 and np.any(old["sponsor"][before] == old["sponsor"][i])
                ):
                    drop[i] = changed = True
        return drop

    def _shift_later_nonces(self, old: dict[str, np.ndarray], drop: np.ndarray, z: int) -> None:
        """Not-yet-visible txs (rows from `z` on) of the affected senders and sponsors move down
        by the number of their dropped txs, so every nonce sequence stays contiguous."""
        r = self.rows
        for col, owner, counter in (
            ("nonce", "sender", self._next_nonce),
            ("sponsor_nonce", "sponsor", self._next_sponsor_nonce),
        ):
            owners, counts = np.unique(old[owner][drop], return_counts=True)
            for o, c in zip(owners.tolist(), counts.tolist(), strict=True):
                if o < 0:
                    continue
                later = np.flatnonzero(r[owner][z:] == o) + z
                r[col][later] -= c
                counter[o] -= c

    def _new_user_rows(
        self, rng: np.random.Generator, n: int, b0: int, tip: int
    ) -> dict[str, np.ndarray]:
        senders = np.arange(self._wallets, self._wallets + n, dtype=np.int64)
        self._wallets += n
        self._grow_nonces(self._wallets)
        self._next_nonce[senders] = 1
        self._addr_index = None
        ttype = rng.choice([T_TRANSFER, T_CALL], n, p=[0.4, 0.6]).astype(np.int8)
        keys = REMINED_KEY_BASE + self._new_keys + np.arange(n, dtype=np.uint64)
        self._new_keys += n
        c = ((rng.zipf(1.4, n) - 1) % N_CONTRACTS).astype(np.int32)
        return {
            "block": np.zeros(n, np.int64), "btime": np.zeros(n, np.int64),
            "burn": np.zeros(n, np.int64), "tx_index": np.zeros(n, np.int32),
            "ttype": ttype, "status": np.zeros(n, np.int8), "sender": senders,
            "nonce": np.zeros(n, np.int64),
            "fee": (np.round(rng.lognormal(math.log(3000), 0.8, n) / 100) * 100 + 200).astype(
                np.int64
            ),
            "sponsor": np.full(n, -1, np.int64), "sponsor_nonce": np.full(n, -1, np.int64),
            "contract": np.where(ttype == T_CALL, c, -1).astype(np.int32),
            "func": np.where(ttype == T_CALL, 0, -1).astype(np.int16),
            "recipient": np.where(ttype == T_TRANSFER, USER_BASE, -1).astype(np.int64),
            "amount": np.where(ttype == T_TRANSFER, 1_000_000, -1).astype(np.int64),
            "key": keys.astype(np.uint64),
        }

    def _merge_replacement(
        self, rng: np.random.Generator, keep: dict[str, np.ndarray],
        new: dict[str, np.ndarray], b0: int, tip: int, user_from: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Lay kept (in order) and new txs into blocks b0..tip; system txs open their block."""
        is_sys = np.isin(keep["ttype"], [T_COINBASE, T_TENURE])
        sys_rows = {k: v[is_sys] for k, v in keep.items()}
        user = {k: v[~is_sys] for k, v in keep.items()}
        nu, nn = len(user["key"]), len(new["key"])
        ins = np.sort(rng.integers(0, nu + 1, nn))
        seq = {k: np.insert(user[k], ins, new[k]) for k in user}
        first = b0 if user_from is None else user_from
        seq["block"] = np.sort(rng.integers(first, tip + 1, nu + nn))  # sorted: order is kept
        allr = {k: np.concatenate([sys_rows[k], seq[k]]) for k in seq}
        sub = np.concatenate([sys_rows["tx_index"].astype(np.float64), 2.0 + np.arange(nu + nn)])
        order = np.lexsort((sub, allr["block"]))
        allr = {k: v[order] for k, v in allr.items()}
        bl = allr["block"]
        allr["tx_index"] = (np.arange(len(bl)) - np.searchsorted(bl, bl, "left")).astype(np.int32)
        allr["btime"] = self.b_time[bl]
        allr["burn"] = self.t_header[self.b_tenure[bl]]
        return allr

    # ------------------------------------------------------------------ helpers for tests/admin
    def count_by_tenure(self, sim_now: float) -> np.ndarray:
        """User-tx count per visible tenure (system txs excluded)."""
        with self.lock:
            n = self.visible_rows(sim_now)
            r = self.rows
            user = ~np.isin(r["ttype"][:n], [T_COINBASE, T_TENURE])
            ten = self.b_tenure[r["block"][:n]]
            return np.bincount(ten[user], minlength=int(ten[-1]) + 1 if n else 0)

    def type_counts(self, sim_now: float, types: Iterable[str] | None = None) -> dict[str, int]:
        with self.lock:
            n = self.visible_rows(sim_now)
            c = np.bincount(self.rows["ttype"][:n], minlength=len(TX_TYPES))
            names: Sequence[str] = list(types) if types else TX_TYPES
            return {t: int(c[TYPE_CODE[t]]) for t in names}
