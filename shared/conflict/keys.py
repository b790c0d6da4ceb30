"""The conflict features' keys computed here: PostgreSQL's `hashtextextended(key, 0)` (Bob
Jenkins' lookup3 over the key's UTF-8 bytes, as src/common/hashfn.c's hash_bytes_extended does
on a little-endian server), for many keys at once by numpy: each step runs over every key.

It is the stored events' `conflict_key` (migration 0008) only where the server reads the same
bytes in the same order; features_repository.py checks that once per connection against the
server itself and asks the server when it differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

U32 = NDArray[np.uint32]


def _rot(x: U32, k: int) -> U32:
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))  # type: ignore[no-any-return]


# lookup3's two mixing steps as (rotation) tables over the state [a, b, c]; each round changes
# s[x] from s[z] and, in mix, then adds s[y] to s[z], with (x, y, z) turning over a, b, c.
_MIX_ROTATIONS = (4, 6, 8, 16, 19, 4)
_FINAL_ROTATIONS = (14, 11, 25, 16, 4, 14, 24)


def _mix(state: list[U32]) -> None:
    for step, k in enumerate(_MIX_ROTATIONS):  # a -= c; a ^= rot(c, 4); c += b; then b, c, a ...
        x, y, z = step % 3, (step + 1) % 3, (step + 2) % 3
        state[x] -= state[z]
        state[x] ^= _rot(state[z], k)
        state[z] += state[y]


def _final(state: list[U32]) -> None:
    for step, k in enumerate(_FINAL_ROTATIONS):  # c ^= b; c -= rot(b, 14); then a from c, b from a ...
        x = (step + 2) % 3
        z = (x + 2) % 3
        state[x] ^= state[z]
        state[x] -= _rot(state[z], k)


def hash_keys(keys: Sequence[str]) -> NDArray[np.int64]:
    """hashtextextended(key, 0) of each key, as the signed bigint PostgreSQL returns."""
    if not keys:
        return np.zeros(0, dtype=np.int64)
    encoded = [key.encode() for key in keys]
    length = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    blocks = int(length.max()) // 12 + 1  # whole 12-byte blocks, then the last (partial or empty) one
    # Zero-padded to whole blocks: a text holds no NUL byte, so the padding is all the S dtype strips.
    words = np.array(encoded, dtype=f"S{blocks * 12}").view("<u4").reshape(len(keys), blocks * 3).astype(np.uint32)
    start = (np.uint32(0x9E3779B9 + 3923095) + length.astype(np.uint32)).astype(np.uint32)
    a, b, c = start, start.copy(), start.copy()
    whole = length // 12
    for block in range(blocks):
        wa, wb, wc = words[:, 3 * block], words[:, 3 * block + 1], words[:, 3 * block + 2]
        full = np.flatnonzero(whole > block)
        if len(full):
            state = [a[full] + wa[full], b[full] + wb[full], c[full] + wc[full]]
            _mix(state)
            a[full], b[full], c[full] = state
        last = np.flatnonzero(whole == block)  # the last 0..11 bytes; c's lowest byte is left for the length
        a[last] += wa[last]
        b[last] += wb[last]
        c[last] += wc[last] << np.uint32(8)
    state = [a, b, c]
    _final(state)
    _, b, c = state
    hashed: NDArray[np.int64] = ((b.astype(np.uint64) << np.uint64(32)) | c.astype(np.uint64)).view(np.int64)
    return hashed
