"""spread.flow's frame codec: layout, round trips, and bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spread
from spread.flow import _frame as fr


def test_service_bits_and_msg_type_match_spread() -> None:
    assert (fr.FIFO_MESS, fr.CAUSAL_MESS, fr.AGREED_MESS, fr.SAFE_MESS) == (
        spread.FIFO_MESS,
        spread.CAUSAL_MESS,
        spread.AGREED_MESS,
        spread.SAFE_MESS,
    )
    assert (fr.UNRELIABLE_MESS, fr.RELIABLE_MESS, fr.SELF_DISCARD) == (
        spread.UNRELIABLE_MESS,
        spread.RELIABLE_MESS,
        spread.SELF_DISCARD,
    )
    assert -32768 <= fr.FLOW_MSG_TYPE <= 32767


def test_header_layout() -> None:
    h = fr.header(fr.DATA, 0x0102030405060708, 9, 10, fr.F_REPORT, -2)
    assert len(h) == fr.HEADER_SIZE == 32
    assert h[:4] == b"\xf5\xc5\x01\x01"
    assert struct.unpack("<Hh", h[4:8]) == (fr.F_REPORT, -2)
    assert h[8:16] == bytes.fromhex("0807060504030201")
    assert fr.decode_header(h) == fr.Header(fr.DATA, fr.F_REPORT, -2, 0x0102030405060708, 9, 10)


@pytest.mark.parametrize(
    "data, text",
    [
        (b"", "shorter"),
        (b"\xf5\xc5\x01\x01" + bytes(27), "shorter"),
        (b"XX" + fr.header(fr.DATA, 1, 1)[2:], "magic"),
        (b"\xf5\xc5\x02" + fr.header(fr.DATA, 1, 1)[3:], "version"),
        (b"\xf5\xc5\x01\x63" + fr.header(fr.DATA, 1, 1)[4:], "kind"),
        (fr.header(fr.DATA, 1, 1, flags=0x8000), "flags"),
    ],
)
def test_bad_headers(data: bytes, text: str) -> None:
    with pytest.raises(fr.FrameError, match=text):
        fr.decode_header(data)


def test_is_frame_needs_type_and_magic() -> None:
    h = fr.header(fr.DATA, 1, 1)
    assert fr.is_frame(fr.FLOW_MSG_TYPE, h)
    assert not fr.is_frame(0, h)
    assert not fr.is_frame(fr.FLOW_MSG_TYPE, b"plain")


@settings(max_examples=200, deadline=500)
@given(st.lists(st.tuples(st.binary(max_size=300), st.integers(-32768, 32767)), min_size=1))
def test_batch_round_trip(items: list[tuple[bytes, int]]) -> None:
    body = fr.encode_batch_body(items)
    assert fr.HEADER_SIZE + len(body) == fr.batch_size(items)
    back = fr.decode_batch_body(memoryview(body))
    assert [(bytes(i.data), i.msg_type) for i in back] == items


def test_batch_item_overhead_is_three_bytes_for_small_items() -> None:
    assert fr.batch_item_cost(10) - 10 == 3


@settings(max_examples=300, deadline=500)
@given(st.binary(max_size=200))
def test_batch_decoder_only_raises_frame_error(body: bytes) -> None:
    try:
        fr.decode_batch_body(memoryview(body))
    except fr.FrameError:
        pass


def test_batch_decoder_refuses_huge_counts_and_trailing_bytes() -> None:
    with pytest.raises(fr.FrameError):
        fr.decode_batch_body(memoryview(b"\xff\xff\xff\xff\x0f"))
    good = fr.encode_batch_body([(b"ab", 1)])
    with pytest.raises(fr.FrameError, match="after"):
        fr.decode_batch_body(memoryview(good + b"x"))
    with pytest.raises(fr.FrameError):
        fr.decode_batch_body(memoryview(good[:-1]))


def test_chunk_prefix() -> None:
    body = fr.chunk_prefix(10, 4) + b"abc"
    total, pos, piece = fr.decode_chunk_body(memoryview(body))
    assert (total, pos, bytes(piece)) == (10, 4, b"abc")
    with pytest.raises(fr.FrameError):
        fr.decode_chunk_body(memoryview(fr.chunk_prefix(5, 4) + b"abc"))
    with pytest.raises(fr.FrameError):
        fr.decode_chunk_body(memoryview(b"short"))
    assert fr.chunk_pieces(0, 100) == 1
    assert fr.chunk_pieces(52, 100) == 1 and fr.chunk_pieces(53, 100) == 2


def test_limits_follow_spec_3_5() -> None:
    assert fr.MAX_WIRE_DATA + 32 == 143_952
    assert fr.DEFAULT_MAX_FRAME <= fr.PORTABLE_WIRE_DATA


def _by_entry(body: bytes):
    """batch_table's general case on the same body (count read the same way)."""
    count, pos = fr._read_uvarint(memoryview(body), 0)
    if count == 0 or count * 3 > len(body) - pos:
        raise fr.FrameError("count")
    return fr._table_by_entry(body, pos, count)


def _outcome(f, body: bytes):
    try:
        return f(body)
    except fr.FrameError as e:
        return type(e)


# Tables whose lengths all take one byte, all two (1 KB messages), or mixed;
# then bodies with a byte changed: the one-call readers must agree with the
# entry-by-entry one, on the answer or the refusal.
_table_items = st.lists(
    st.tuples(
        st.one_of(st.binary(max_size=127), st.binary(min_size=128, max_size=1100)),
        st.integers(-32768, 32767),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_table_items, st.integers(0, 10_000), st.integers(0, 255))
def test_batch_table_in_one_call_agrees_with_entry_by_entry(items, where, value) -> None:
    body = fr.encode_batch_body(items)
    pos, lengths, types = fr.batch_table(body, 0)
    assert (pos, lengths, types) == _by_entry(body)
    assert lengths == [len(d) for d, _ in items] and types == [t for _, t in items]
    bad = bytearray(body)
    bad[where % len(bad)] = value
    assert _outcome(lambda b: fr.batch_table(b, 0), bytes(bad)) == _outcome(_by_entry, bytes(bad))


def test_two_byte_lengths_written_long_are_read_as_the_general_reader_reads_them() -> None:
    # 0x80 0x00 is a two-byte zero (not minimal): the one-call path reads it as
    # the entry-by-entry one does.
    body = bytes([2, 0x80, 0x00, 1, 0, 0x81, 0x00, 2, 0]) + b"x"
    assert fr.batch_table(body, 0) == _by_entry(body) == (9, [0, 1], [1, 2])
