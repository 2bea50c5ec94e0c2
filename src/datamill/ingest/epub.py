"""EPUB → sections: the chapters in spine (reading) order, each XHTML file read like a web page
(headings kept as the section path, ``chapter`` = the file inside the book). Read with the standard
library: container.xml → the OPF package → its spine."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from xml.etree import ElementTree

from datamill.ingest.base import DocumentError, Section, Source, markdown_sections, open_zip

_OPF = "{http://www.idpf.org/2007/opf}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


def read(src: Source) -> Iterator[Section]:
    from datamill.ingest.html import decode_html, html_to_markdown

    with open_zip(src, "EPUB") as z:
        try:
            container = ElementTree.fromstring(z.read("META-INF/container.xml"))
            rootfile = container.find(f"{_CONTAINER}rootfiles/{_CONTAINER}rootfile")
            opf_path = rootfile.get("full-path") if rootfile is not None else None
            if not opf_path:
                raise DocumentError("EPUB without a package file (META-INF/container.xml names none)")
            opf = ElementTree.fromstring(z.read(opf_path))
        except (KeyError, ElementTree.ParseError) as e:
            raise DocumentError(f"broken EPUB structure: {e}") from None
        if opf.find(f"{_OPF}manifest") is None:
            raise DocumentError("broken EPUB structure: the package has no manifest")
        base = posixpath.dirname(opf_path)
        manifest = {item.get("id"): item for item in opf.iter(f"{_OPF}item") if item.get("id") is not None}
        if "META-INF/encryption.xml" in z.namelist():
            raise DocumentError("copy-protected: the EPUB is DRM-encrypted (META-INF/encryption.xml)")
        for ref in opf.iter(f"{_OPF}itemref"):
            item = manifest.get(ref.get("idref"))
            if item is None or "nav" in (item.get("properties") or "").split():
                continue
            if item.get("media-type") not in ("application/xhtml+xml", "text/html"):
                continue
            name = posixpath.normpath(posixpath.join(base, item.get("href", "")))
            try:
                html = decode_html(z.read(name))
            except KeyError:
                raise DocumentError(f"broken EPUB: the spine names {name}, which is not in the book") from None
            yield from markdown_sections(html_to_markdown(html), {"chapter": name})
