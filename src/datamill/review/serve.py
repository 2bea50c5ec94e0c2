"""Starting the web app with uvicorn. It binds 127.0.0.1 unless told otherwise; any other address is
refused while the project has no annotator (no token, so nobody could sign in — and the refusal
makes "open to the network" a decision someone took by adding people first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import func, select

from datamill.review import DEFAULT_PORT
from datamill.review.schema import Annotator
from datamill.review.store import Project, ReviewError
from datamill.review.web import create_app, is_loopback


def server_for(target: str | Path | Project, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
               log_level: str = "warning", **options: Any) -> uvicorn.Server:  # fmt: skip
    """A configured (not yet running) uvicorn server for the project, or ReviewError. ``options``: the
    learner's (:func:`~datamill.review.web.create_app`)."""
    project = target if isinstance(target, Project) else Project(target)
    with project.read() as s:
        people = s.scalar(select(func.count(Annotator.id)))
    if not is_loopback(host) and not people:
        raise ReviewError(
            f"refusing to listen on {host}: the project has no annotator, so no token protects it; "
            "add people first (`datamill review add-annotator`) or serve on 127.0.0.1"
        )
    if options.get("auto_confidence") is not None and not 0 < options["auto_confidence"] <= 1:
        raise ReviewError(f"--auto-confidence must be above 0 and at most 1, not {options['auto_confidence']:g}")
    app = create_app(project, local=is_loopback(host), **options)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, server_header=False)
    return uvicorn.Server(config)
