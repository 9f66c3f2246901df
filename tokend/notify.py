"""Desktop notifications through desktop-notifier, behind a small adapter.

Why an adapter: the daemon must never stop or slow down because a notification
could not be shown (no notification server, no session bus, a server that hangs).
So :meth:`Notifier.send` only queues the notification on a private asyncio loop in
a daemon thread and returns at once; every failure is caught there and logged
*once* (a desktop without a notification server would otherwise fill the log on
every alert). The loop also keeps running after a send, which is what lets a click
on the notification (``ActionInvoked``) reach ``on_click``.

desktop-notifier is imported lazily, in the loop thread, so importing this module
costs nothing on the statusline path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from importlib import resources
from pathlib import Path
from typing import Any, Literal

__all__ = ["Notifier", "Urgency", "app_icon_path"]

Urgency = Literal["low", "normal", "critical"]

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 3.0
"""close() waits this long for queued notifications before giving up on them."""


def app_icon_path(size: int = 128) -> Path | None:
    """The packaged tokend icon (a PNG), for notifications and the tray fallback.

    ``None`` when the package data is missing (a broken install): a notification
    then goes out without an icon rather than with the Python logo.
    """
    try:
        path = Path(str(resources.files("tokend") / "data" / f"tokend-{size}.png"))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - zipped/odd installs
        return None
    return path if path.is_file() else None


class _OnceFilter(logging.Filter):
    """Lets the first 'Notification failed' warning of desktop-notifier through, then
    drops the rest: they all say the same thing (no server) with a full traceback."""

    def __init__(self, notifier: Notifier) -> None:
        super().__init__()
        self._notifier = notifier

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Notification failed"):
            return self._notifier._failed_once()
        return True


class Notifier:
    """Sends desktop notifications; never raises.

    :param app_name: shown by the notification server as the sender.
    :param icon: a PNG shown with every notification; ``None`` means tokend's own
        packaged icon (:func:`app_icon_path`), never the Python logo that
        desktop-notifier would use by default.
    """

    def __init__(self, app_name: str, icon: Path | None) -> None:
        self.app_name = app_name
        self.icon = icon if icon is not None else app_icon_path()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._backend: Any = None
        self._order: asyncio.Lock | None = None
        self._pending: set[Future[None]] = set()
        self._logged_failure = False
        self._closed = False
        self._filter = _OnceFilter(self)
        logging.getLogger("desktop_notifier").addFilter(self._filter)
        logging.getLogger("desktop_notifier.backends.base").addFilter(self._filter)

    def send(
        self,
        title: str,
        body: str,
        urgency: Urgency,
        on_click: Callable[[], None] | None = None,
    ) -> None:
        """Queue one notification. Returns at once; failures are logged once."""
        try:
            loop = self._ensure_loop()
            if loop is None:
                return
            future = asyncio.run_coroutine_threadsafe(
                self._send(title, body, urgency, on_click), loop
            )
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._done)
        except Exception as exc:  # never let a notification break the daemon
            self._fail(exc)

    def flush(self, timeout: float = _CLOSE_TIMEOUT) -> bool:
        """Wait until every queued notification was handed to the server (tests, exit)."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            try:
                future.result(timeout)
            except Exception:
                return False
        return True

    def close(self) -> None:
        """Deliver what is queued (briefly), then stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        self.flush()
        logging.getLogger("desktop_notifier").removeFilter(self._filter)
        logging.getLogger("desktop_notifier.backends.base").removeFilter(self._filter)
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CLOSE_TIMEOUT)
            if not thread.is_alive():
                loop.close()

    # -- internals -------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop | None:
        with self._lock:
            if self._closed:
                return None
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._run, args=(loop,), name="tokend-notify", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    async def _send(
        self, title: str, body: str, urgency: Urgency, on_click: Callable[[], None] | None
    ) -> None:
        # One at a time, in the order queued: "80 %" must not arrive after "reset",
        # and the first send must finish connecting before a second one starts.
        if self._order is None:
            self._order = asyncio.Lock()
        async with self._order:
            await self._send_now(title, body, urgency, on_click)

    async def _send_now(
        self, title: str, body: str, urgency: Urgency, on_click: Callable[[], None] | None
    ) -> None:
        from desktop_notifier import DesktopNotifier, Icon
        from desktop_notifier import Urgency as DnUrgency

        if self._backend is None:
            icon = Icon(path=self.icon) if self.icon is not None else None
            self._backend = DesktopNotifier(app_name=self.app_name, app_icon=icon)
        level = {
            "low": DnUrgency.Low,
            "normal": DnUrgency.Normal,
            "critical": DnUrgency.Critical,
        }.get(urgency, DnUrgency.Normal)
        await self._backend.send(
            title, body, urgency=level, on_clicked=_guard(on_click) if on_click else None
        )

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        exc = future.exception() if not future.cancelled() else None
        if exc is not None:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._failed_once():
            log.warning("desktop notification failed: %s (further failures not logged)", exc)
        else:
            log.debug("desktop notification failed: %s", exc)

    def _failed_once(self) -> bool:
        """True the first time only: the caller logs, later failures stay quiet."""
        with self._lock:
            first = not self._logged_failure
            self._logged_failure = True
            return first


def _guard(callback: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            callback()
        except Exception:
            log.exception("notification click handler failed")

    return run
