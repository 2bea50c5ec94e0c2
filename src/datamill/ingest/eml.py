"""E-mail (.eml) → the body as a section (plain text part, or the HTML part's text) with subject,
sender and date in meta, and every attachment as a nested ``Source`` that the caller reads by its
own type (recursively: a forwarded .eml inside an .eml works)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage

from datamill.ingest.base import DocumentError, Section, Source


def read(src: Source) -> Iterator[Section | Source]:
    msg = email.message_from_bytes(src.data, policy=email.policy.default)
    if not isinstance(msg, EmailMessage) or not (msg.keys() and (msg["From"] or msg["Subject"] or msg.is_multipart())):
        raise DocumentError("not an e-mail message (no From/Subject headers, no MIME parts)")
    meta = {k.lower(): str(msg[k]) for k in ("Subject", "From", "Date") if msg[k]}
    body = msg.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = body.get_content()
        if body.get_content_subtype() == "html":
            from datamill.ingest.html import html_to_markdown

            content = html_to_markdown(content)
        text = "\n\n".join(p.strip() for p in content.replace("\r\n", "\n").split("\n\n") if p.strip())
    if text:
        head = f"Subject: {meta['subject']}\n\n" if meta.get("subject") else ""
        yield Section(head + text, {"part": "body", **meta})
    for n, part in enumerate(msg.iter_attachments(), 1):
        name = part.get_filename() or f"attachment-{n}"
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            yield Source(f"{src.name}#{name}", payload)
        elif part.get_content_type() == "message/rfc822":
            inner = part.get_content()
            yield Source(f"{src.name}#{name}.eml", bytes(inner))
