"""The last mile of a run: an HTML report, a dataset card and trainer hand-off files."""

from datamill.report.build import report_command, write_report
from datamill.report.handoff import handoff_command, write_handoff

__all__ = ["handoff_command", "report_command", "write_handoff", "write_report"]
