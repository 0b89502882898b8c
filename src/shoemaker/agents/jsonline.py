"""The fast decoding of one stream-json line, for the parser to try before ``json.loads``.

msgspec decodes a line several times faster than :func:`json.loads`, to the same values, but
refuses some lines the standard decoder takes (``NaN`` and ``Infinity``, numbers that overflow
to infinity, lone surrogates, a byte-order mark, encodings other than UTF-8): for those,
:func:`decode_fast` raises one of :data:`REFUSED` and the caller decodes the line again with
``json.loads``, so that every line decodes (or fails to) exactly as it always did.

Nesting, too: both decoders count their depth against Python's recursion limit, the standard
one from a few frames deeper. So that msgspec always gives up first, never taking a line the
standard decoder would refuse, a line long enough to nest near that limit is decoded inside
eight one-element arrays, which take eight levels of its headroom; the shape is checked as it
is decoded. A shorter line is decoded as it is.

orjson, as fast, turns an integer beyond 64 bits into a float where ``json.loads`` keeps it
whole, and has a fixed nesting limit of its own: every line would have to be searched for
both, which cost more than a third of the decoding itself.
"""

from __future__ import annotations

import threading
from sys import getrecursionlimit
from typing import Any, Final

import msgspec

_LEVELS = 8
_Wrapped: Any = Any
for _ in range(_LEVELS):
    _Wrapped = tuple[_Wrapped]  # a one-element array, its length checked by msgspec
_decode = msgspec.json.Decoder(_Wrapped).decode
_decode_plain = msgspec.json.Decoder().decode
_OPEN, _CLOSE = b"[" * _LEVELS, b"]" * _LEVELS
_OPEN_STR, _CLOSE_STR = "[" * _LEVELS, "]" * _LEVELS
# A long line is wrapped in a buffer each thread keeps (up to _KEPT bytes): a fresh copy of a
# megabyte line, alive beside the decoded text, costs the allocator more than the decoding.
_LONG = 64 * 1024
_KEPT = 2 * 1024 * 1024
_buffers = threading.local()

REFUSED: Final = (msgspec.DecodeError, ValueError, RecursionError)
"""What :func:`decode_fast` raises for a line to decode with ``json.loads`` instead: not JSON,
JSON that msgspec does not take, a ``str`` that cannot be encoded (UnicodeEncodeError), deep
nesting."""


def decode_fast(line: bytes | str) -> Any:
    """The JSON value on ``line``; raises one of :data:`REFUSED` where ``json.loads`` is to
    decide."""
    if len(line) < getrecursionlimit():
        # It cannot nest deeper than half the recursion limit (an array or object takes two
        # characters), which both decoders take from any stack a parser runs on: no wrapping.
        # Half of the lines an agent prints are this short.
        return _decode_plain(line)
    if isinstance(line, str):
        value = _decode(_OPEN_STR + line + _CLOSE_STR)
    elif len(line) <= _LONG:
        value = _decode(_OPEN + line + _CLOSE)
    else:
        value = _decode_long(line)
    return value[0][0][0][0][0][0][0][0]


def _decode_long(line: bytes) -> Any:
    size = len(line) + 2 * _LEVELS
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = bytearray(size + size // 4)
        if len(buffer) <= _KEPT:
            _buffers.buffer = buffer
    end = _LEVELS + len(line)
    buffer[:_LEVELS] = _OPEN  # slices of the same length: written in place, never resized
    buffer[_LEVELS:end] = line
    buffer[end:size] = _CLOSE
    with memoryview(buffer) as whole, whole[:size] as wrapped:
        return _decode(wrapped)
