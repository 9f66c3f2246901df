"""A report answered by the running daemon: the fast path of ``tokend daily`` & co.
(``daily``, ``weekly``, ``monthly``, ``sessions``, ``blocks``, ``status``).

With a daemon running, the store is current and every module a report needs is
already imported in the daemon; what this process would spend is starting Python,
importing the reporting code and asking the daemon to sync, several times the work
of the report itself. So it sends its command line, environment and home folder over
the control socket and prints the text the daemon rendered
(:meth:`tokend.daemon_control.DaemonControls.render_report`).

Anything short of a clean answer (no daemon, an older one, roots the daemon does not
watch, a bad argument, a timeout) returns ``False`` and the command runs here as
usual, so its errors and output are exactly those of a run without a daemon. Only
the standard library's light parts are imported before the answer is printed.
"""

# (os.path, not pathlib: importing pathlib costs more than this whole path)
# ruff: noqa: PTH110, PTH111, PTH118
from __future__ import annotations

import os
import sys

__all__ = ["print_served"]

WAIT_SECONDS = 10.0
"""How long the daemon may take to catch up (its first scan of a long history)."""

ALIVE_SECONDS = 2.0
"""How long a running daemon may take to answer a ``ping``: one that does not is
stopped or hung, and the report runs here at once instead of after the whole wait."""


def print_served(argv: list[str]) -> bool:
    """Print the report for ``argv`` rendered by the daemon; ``False`` if it cannot."""
    if {"-h", "--help"} & set(argv):
        return False
    from tokend.statusline import runtime_dir

    sock = os.path.join(runtime_dir(), "tokend.sock")
    if not os.path.exists(sock):
        return False
    from tokend import ipc
    from tokend.errors import DaemonNotResponding, TokendError

    try:
        result = ipc.request(
            sock, "report", timeout=WAIT_SECONDS + 5.0, alive_within=ALIVE_SECONDS,
            wait=WAIT_SECONDS, argv=argv, env=dict(os.environ),
            home=os.path.expanduser("~"), tty=sys.stdout.isatty(),
        )
    except DaemonNotResponding as exc:
        # Said once, on stderr: the report that follows is this process's own.
        print(f"tokend: {exc.message}; reporting without it\n  hint: {exc.hint}",
              file=sys.stderr)
        return False
    except TokendError:
        return False
    if not isinstance(result, dict) or not isinstance(result.get("text"), str):
        return False
    try:
        sys.stdout.write(result["text"])
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # `tokend daily | head`: the reader had enough
    return True
