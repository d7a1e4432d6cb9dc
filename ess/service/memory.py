"""This server process's memory, for ``/v1/health``.

Read from ``/proc/self/status`` (Linux: ``VmRSS``, the resident set now, and
``VmHWM``, its peak), else from :func:`resource.getrusage` (the peak only:
``ru_maxrss``, in KiB on Linux and in bytes on macOS). Cheap: one small file read.
"""

from __future__ import annotations

import sys

#: A mebibyte, the unit of the figures.
MIB = 2**20


def process_memory(status: str = "/proc/self/status") -> tuple[float | None, float | None]:
    """Current and peak resident memory of this process, in MiB.

    Parameters
    ----------
    status : str
        The ``/proc`` status file to read (a test may point at another process's).

    Returns
    -------
    (float or None, float or None)
        ``(rss, peak)``; ``None`` for a figure the system does not give.
    """
    fields: dict[str, float] = {}
    try:
        with open(status, encoding="ascii", errors="replace") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) * 1024 / MIB   # given in kB
    except (OSError, ValueError, IndexError):
        pass
    if "VmHWM" in fields:
        return fields.get("VmRSS"), fields["VmHWM"]
    try:
        import resource
    except ImportError:          # not a Unix
        return None, None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return None, peak / MIB if sys.platform == "darwin" else peak * 1024 / MIB
