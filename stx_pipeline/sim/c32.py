"""c32check addresses, so generated senders pass the same check Hiro applies to `from_address`."""

from __future__ import annotations

import hashlib

C32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_C32_INDEX = {c: i for i, c in enumerate(C32)}
MAINNET_P2PKH = 22  # "SP..."


def _c32encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n > 0:
        n, r = divmod(n, 32)
        out.append(C32[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "0" * zeros + "".join(reversed(out))


def _c32decode(text: str) -> bytes:
    text = text.upper().replace("O", "0").replace("L", "1").replace("I", "1")
    zeros = len(text) - len(text.lstrip("0"))
    n = 0
    for ch in text[zeros:]:
        n = n * 32 + _C32_INDEX[ch]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _checksum(version: int, data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(bytes([version]) + data).digest()).digest()[:4]


def c32_address(version: int, hash160: bytes) -> str:
    """Encode a 20-byte hash as a Stacks address (`S` + version char + c32check body)."""
    if len(hash160) != 20:
        raise ValueError("hash160 must be 20 bytes")
    return "S" + C32[version] + _c32encode(hash160 + _checksum(version, hash160))


def is_valid_stacks_address(address: str) -> bool:
    """Standard principal with a good checksum (Hiro's `isValidStacksAddress`)."""
    if not isinstance(address, str) or len(address) < 5 or address[0] != "S":
        return False
    try:
        version = _C32_INDEX[address[1].upper()]
        raw = _c32decode(address[2:])
    except (KeyError, ValueError):
        return False
    if len(raw) != 24:
        return False
    data, check = raw[:20], raw[20:]
    return _checksum(version, data) == check


def is_valid_principal(principal: str) -> bool:
    """Standard address or `ADDR.contract-name` (Hiro's `isValidPrincipal`)."""
    if not isinstance(principal, str):
        return False
    addr, dot, name = principal.partition(".")
    if dot and not (1 <= len(name) <= 128):
        return False
    return is_valid_stacks_address(addr)
