"""Randomness from the seed: one independent random source per part of the simulation.

Every random choice derives from the run's seed by name (`derive_rng(seed, "traffic")`, ...),
so adding randomness in one place never shifts another.
"""

from __future__ import annotations

import hashlib
import random
from typing import Final

__all__ = ["derive_rng", "token", "uuid4_text"]

_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UUID4_CLEAR: Final = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET: Final = (0x8000 << 48) | (0x4000 << 64)


def derive_rng(seed: int, name: str) -> random.Random:
    """An independent RNG for one part of the simulation: `Random(sha256(f"{seed}:{name}"))`."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def uuid4_text(bits: int) -> str:
    """`str(uuid.UUID(int=bits, version=4))` without the UUID object: ids are minted per row."""
    h = "%032x" % (bits & _UUID4_CLEAR | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def token(rng: random.Random, n: int) -> str:
    """`n` letters and digits from one draw of `rng` (Stripe-like ids)."""
    value = rng.getrandbits(6 * n)
    chars = []
    for _ in range(n):
        value, r = divmod(value, 62)
        chars.append(_ALPHABET[r])
    return "".join(chars)
