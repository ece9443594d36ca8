"""Human-readable HTML transcript of a trail (C20). Every value is escaped; no scripts; the
output depends only on the trail, so the same trail renders to the same bytes."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from .schemas import TrailPublic

__all__ = ["render_transcript"]

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}"
    "pre{white-space:pre-wrap;background:#f4f4f4;padding:1em}"
    ".anchored{color:#060}.failed{color:#a00}.pending{color:#a60}"
)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _time(ts: int | None) -> str:
    if ts is None:
        return ""
    stamp = datetime.fromtimestamp(ts // 1_000_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ts % 1_000_000_000:09d}Z ({ts} ns)"


def _rows(pairs: list[tuple[str, object]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)


def render_transcript(trail: TrailPublic) -> str:
    """The trail as a standalone HTML page."""
    v = trail.verification
    meta = _rows(
        [
            ("request id", trail.request_id),
            ("log", trail.log),
            ("tenant", trail.tenant),
            ("principal", trail.principal),
            ("model", trail.model),
            ("started", _time(trail.started_ts)),
            ("finished", _time(trail.finished_ts)),
            ("finish reason", trail.finish_reason),
            ("tokens generated / delivered", f"{trail.n_generated} / {trail.n_delivered}"),
        ]
    )
    tokens = "".join(
        f"<tr><td>{t.index}</td><td>{_e(t.token_id)}</td><td>{_e(t.provenance)}</td>"
        f"<td>{t.step}</td><td>{t.seq}</td></tr>"
        for t in trail.tokens
    )
    drafts = "".join(
        f"<tr><td>{d.step}</td><td>{d.seq}</td><td>{_e(' '.join(map(str, d.token_ids)))}</td></tr>"
        for d in trail.drafts
    )
    records = "".join(
        f"<tr><td>{r.seq}</td><td>{_e(r.req_seq)}</td><td>{_e(r.kind)}</td>"
        f"<td>{_e(_time(r.ts))}</td><td><code>{_e(r.leaf)}</code></td></tr>"
        for r in trail.records
    )
    prompt_ids = " ".join(map(str, trail.prompt_token_ids or []))
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>Audit trail {_e(trail.request_id)}'
        f"</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>Audit trail of request {_e(trail.request_id)}</h1>\n"
        f'<p class="{_e(v.status)}">Verification: <strong>{_e(v.status)}</strong> '
        f"({_e(v.trust or 'no key')}; checkpoint size {_e(v.checkpoint_size)}): "
        f"{_e(v.message)}</p>\n"
        f"<table>{meta}</table>\n"
        f"<h2>Prompt</h2><pre>{_e(trail.content_note or trail.prompt_text)}</pre>\n"
        f"<p>Prompt token ids: <code>{_e(prompt_ids)}</code></p>\n"
        "<h2>Generated tokens</h2><table><tr><th>#</th><th>token id</th><th>provenance</th>"
        f"<th>step</th><th>record</th></tr>{tokens}</table>\n"
        "<h2>Draft proposals</h2><table><tr><th>step</th><th>record</th><th>proposed ids</th>"
        f"</tr>{drafts}</table>\n"
        "<h2>Records</h2><table><tr><th>seq</th><th>req_seq</th><th>kind</th><th>time</th>"
        f"<th>leaf hash</th></tr>{records}</table>\n"
        "</body></html>\n"
    )
