"""Validate `/extended/v1/tx` query strings the way Hiro's Fastify/AJV schema does.

Only the first error is reported, in schema property order, with AJV's message text, so a
client's error handling meets the same 400 bodies it would get from api.hiro.so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stx_pipeline.sim.c32 import is_valid_principal, is_valid_stacks_address
from stx_pipeline.sim.chain import TX_TYPES, TYPE_CODE, Query

MAX_LIMIT = 50
DEFAULT_LIMIT = 20
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


class ParamError(Exception):
    """A 400 answer: `body` is the exact JSON object to send."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.body = body


def _schema_error(message: str) -> ParamError:
    return ParamError(
        {"statusCode": 400, "code": "FST_ERR_VALIDATION", "error": "Bad Request",
         "message": message}
    )


def _handler_error(message: str) -> ParamError:
    return ParamError({"statusCode": 400, "error": "Bad Request", "message": message})


def _integer(name: str, values: list[str], lo: int | None, hi: int | None) -> int:
    v = values[0] if len(values) == 1 else None
    if v is None or not _NUMBER.match(v):
        raise _schema_error(f"querystring/{name} must be integer")
    f = float(v)
    if not math.isfinite(f) or f != math.floor(f):
        raise _schema_error(f"querystring/{name} must be integer")
    i = int(f)
    if lo is not None and i < lo:
        raise _schema_error(f"querystring/{name} must be >= {lo}")
    if hi is not None and i > hi:
        raise _schema_error(f"querystring/{name} must be <= {hi}")
    return i


def _boolean(name: str, values: list[str]) -> bool:
    if len(values) != 1 or values[0] not in ("true", "false"):
        raise _schema_error(f"querystring/{name} must be boolean")
    return values[0] == "true"


def _enum(name: str, values: list[str], allowed: tuple[str, ...]) -> str:
    if len(values) != 1 or values[0] not in allowed:
        raise _schema_error(f"querystring/{name} must be equal to one of the allowed values")
    return values[0]


def _string(name: str, values: list[str]) -> str:
    if len(values) != 1:
        raise _schema_error(f"querystring/{name} must be string")
    return values[0]


@dataclass
class TxListRequest:
    query: Query
    exclude_function_args: bool
    unanchored: bool


def parse_tx_list(
    params: dict[str, list[str]], wallet_of: Callable[[str], int]
) -> TxListRequest:
    """Raise ParamError (400) or return the query; `wallet_of` maps an address to a wallet id."""
    q = Query()
    got = {k: v for k, v in params.items()}
    if "offset" in got:
        q.offset = _integer("offset", got["offset"], 0, None)
    if "limit" in got:
        q.limit = _integer("limit", got["limit"], 0, MAX_LIMIT) or DEFAULT_LIMIT
    if "type" in got:
        types = [t for v in got["type"] for t in v.split(",")]
        for i, t in enumerate(types):
            if t not in TX_TYPES:
                raise _schema_error(
                    f"querystring/type/{i} must be equal to one of the allowed values"
                )
        q.types = frozenset(TYPE_CODE[t] for t in types)
    unanchored = _boolean("unanchored", got["unanchored"]) if "unanchored" in got else False
    if "order" in got:
        q.desc = _enum("order", got["order"], ("asc", "desc")) != "asc"
    if "sort_by" in got:
        q.sort_by = _enum("sort_by", got["sort_by"], ("block_height", "burn_block_time", "fee"))
    from_address = _string("from_address", got["from_address"]) if "from_address" in got else ""
    to_address = _string("to_address", got["to_address"]) if "to_address" in got else ""
    if "start_time" in got:
        q.start_time = _integer("start_time", got["start_time"], None, None) or None
    if "end_time" in got:
        q.end_time = _integer("end_time", got["end_time"], None, None) or None
    contract_id = _string("contract_id", got["contract_id"]) if "contract_id" in got else ""
    function_name = (
        _string("function_name", got["function_name"]) if "function_name" in got else ""
    )
    if "nonce" in got:
        q.nonce = _integer("nonce", got["nonce"], 0, 2**53 - 1) or None
    exclude = (
        _boolean("exclude_function_args", got["exclude_function_args"])
        if "exclude_function_args" in got else False
    )
    # handler checks (InvalidRequestError: no "code" key), only for truthy values
    if from_address:
        if not is_valid_stacks_address(from_address):
            raise _handler_error(
                f'Invalid query parameter for "from_address": "{from_address}" is not a '
                "valid STX address"
            )
        q.sender = wallet_of(from_address)
    if to_address:
        if not is_valid_principal(to_address):
            raise _handler_error(
                f'Invalid query parameter for "to_address": "{to_address}" is not a '
                "valid STX address"
            )
        q.recipient = wallet_of(to_address) if "." not in to_address else -1
    if contract_id:
        if not is_valid_principal(contract_id):
            raise _handler_error(
                f'Invalid query parameter for "contract_id": "{contract_id}" is not a '
                "valid principal"
            )
        q.contract_id = contract_id
    if function_name:
        q.function_name = function_name
    return TxListRequest(q, exclude, unanchored)
