"""The middleware reads event streams as the official client does (issue 16, finding 6).

Differential: generated streams (data, event, comment and blank lines; CR, LF and CR LF line
ends; split at arbitrary byte offsets, CR LF pairs included) go to ``asgi_sse.SseReader`` and to
the ``openai`` package's own ``SSEDecoder``. They MUST agree on every dispatched event, and the
bytes the middleware releases (its events' raw bytes, comments emptied) MUST decode, in the
official client, to the same events, with no comment text in them.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from openai._streaming import SSEDecoder

from auditlog.integrations.asgi_sse import SseReader, media_type

_TEXT = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
                max_size=12)  # fmt: skip
_LINES = st.one_of(
    _TEXT.map(lambda t: f"data: {t}"),
    _TEXT.map(lambda t: f"data:{t}"),
    _TEXT.map(lambda t: f": COMMENT {t}"),
    st.sampled_from(["event: message", "event: update", "", "", ""]),
)


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    lines = [*draw(st.lists(_LINES, max_size=24)), ""]
    ends = draw(st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=len(lines),
                         max_size=len(lines)))  # fmt: skip
    raw = "".join(line + end for line, end in zip(lines, ends, strict=True)).encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


def _official(chunks: list[bytes]) -> list[tuple[str, str | None]]:
    return [(e.data, e.event) for e in SSEDecoder().iter_bytes(iter(chunks)) if e.data]


@settings(max_examples=300, deadline=None)
@given(chunks=streams())
def test_events_and_released_bytes_match_the_official_client(chunks: list[bytes]) -> None:
    reader = SseReader()
    events = [e for chunk in chunks for e in reader.feed(chunk)]
    ours = [(e.data, e.event_type) for e in events if e.data]
    assert ours == _official(chunks)
    released = b"".join(e.raw for e in events)
    assert b"COMMENT" not in released
    assert _official([released]) == ours


def test_split_crlf_and_bare_cr_dispatch_once() -> None:
    reader = SseReader()
    got = [e for c in (b"data: a\r", b"\n\r", b"\ndata: b\r\r", b": c\r", b"\ndata: d\n\n")
           for e in reader.feed(c)]  # fmt: skip
    assert [e.data for e in got] == ["a", "b", "d"]
    assert reader.unterminated() == b""


def test_media_types_are_case_insensitive() -> None:
    assert media_type("Text/Event-Stream; Charset=UTF-8") == ("text/event-stream",
                                                              {"charset": "utf-8"})  # fmt: skip
    assert media_type("")[0] == ""
