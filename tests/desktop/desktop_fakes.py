"""Test doubles for the desktop services tokend talks to, on a private D-Bus.

- :class:`FakeNotificationServer` owns ``org.freedesktop.Notifications`` and
  records every ``Notify`` call (desktop-notifier's target, and pystray's GTK
  backends refuse to start without it).
- :class:`FakeStatusNotifierWatcher` owns ``org.kde.StatusNotifierWatcher`` (what a
  desktop panel provides): the AppIndicator backend registers its item with it, and
  the test then reads the item's properties and its ``com.canonical.dbusmenu`` menu
  and clicks menu items, all over D-Bus, without pixels or xdotool.

Both run their own asyncio loop in a daemon thread, so synchronous tests and code
under test that blocks are both fine. Written with dbus-fast after the recipe in
the project's headless-desktop-testing reference.
"""

# dbus-fast reads D-Bus signatures from string annotations such as "as" or "a{sv}".
# ruff: noqa: F821, F722

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dbus_fast import Message, MessageType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

T = TypeVar("T")


def unwrap(value: Any) -> Any:
    """Plain Python values out of nested dbus-fast Variants."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, (list, tuple)):
        return [unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


class _LoopThread:
    """An asyncio loop in a daemon thread, and a way to run coroutines on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


# -- notifications -------------------------------------------------------------------


@dataclass
class Notification:
    """One ``Notify`` call as the server received it."""

    id: int
    app_name: str
    replaces_id: int
    app_icon: str
    summary: str
    body: str
    actions: list[str]
    hints: dict[str, Any] = field(default_factory=dict)
    expire_timeout: int = -1

    @property
    def urgency(self) -> int | None:
        """0 low, 1 normal, 2 critical (the spec's byte hint)."""
        value = unwrap(self.hints.get("urgency"))
        return None if value is None else int(value)


class _Notifications(ServiceInterface):
    def __init__(self, server: "FakeNotificationServer") -> None:
        super().__init__("org.freedesktop.Notifications")
        self._server = server
        self._next = 1

    @method()
    def Notify(
        self,
        app_name: "s",
        replaces_id: "u",
        app_icon: "s",
        summary: "s",
        body: "s",
        actions: "as",
        hints: "a{sv}",
        expire_timeout: "i",
    ) -> "u":
        nid = replaces_id or self._next
        self._next += 1
        self._server._record(
            Notification(nid, app_name, replaces_id, app_icon, summary, body, list(actions),
                         dict(hints), expire_timeout)
        )
        return nid

    @method()
    def GetCapabilities(self) -> "as":
        return ["body", "actions", "icon-static"]

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["tokend-fake-notifyd", "tokend tests", "1.0", "1.2"]

    @method()
    def CloseNotification(self, id: "u"):  # type: ignore[no-untyped-def]
        self.NotificationClosed(id, 3)

    @signal()
    def NotificationClosed(self, id: "u", reason: "u") -> "uu":
        return [id, reason]

    @signal()
    def ActionInvoked(self, id: "u", action_key: "s") -> "us":
        return [id, action_key]


class FakeNotificationServer:
    """Owns org.freedesktop.Notifications on ``address`` and records what it gets."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.received: list[Notification] = []
        self._cond = threading.Condition()
        self._loop = _LoopThread("fake-notifyd")
        self._iface = _Notifications(self)
        self._bus: MessageBus | None = None

    def start(self) -> "FakeNotificationServer":
        async def go() -> None:
            self._bus = await MessageBus(bus_address=self.address).connect()
            self._bus.export("/org/freedesktop/Notifications", self._iface)
            await self._bus.request_name("org.freedesktop.Notifications")

        self._loop.run(go())
        return self

    def stop(self) -> None:
        if self._bus is not None:
            self._loop.call(self._bus.disconnect)
        self._loop.close()

    def _record(self, n: Notification) -> None:
        with self._cond:
            self.received.append(n)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self.received.clear()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[Notification]:
        """The first ``count`` notifications; fails the test if they do not come."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(
                    f"expected {count} notification(s) within {timeout} s, "
                    f"got {self.received}"
                )
            return list(self.received)

    def click(self, nid: int, action: str = "default") -> None:
        """Act as the user clicking the notification."""
        self._loop.call(self._iface.ActionInvoked, nid, action)


# -- StatusNotifierItem host ---------------------------------------------------------


class _Watcher(ServiceInterface):
    def __init__(self, owner: "FakeStatusNotifierWatcher") -> None:
        super().__init__("org.kde.StatusNotifierWatcher")
        self._owner = owner

    @method()
    def RegisterStatusNotifierItem(self, service: "s"):  # type: ignore[no-untyped-def]
        pass  # the sender's unique name is only in the message: see _on_message

    @method()
    def RegisterStatusNotifierHost(self, service: "s"):  # type: ignore[no-untyped-def]
        pass

    @dbus_property(access=PropertyAccess.READ)
    def RegisteredStatusNotifierItems(self) -> "as":
        return [f"{s}{p}" for s, p in self._owner.items]

    @dbus_property(access=PropertyAccess.READ)
    def IsStatusNotifierHostRegistered(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ProtocolVersion(self) -> "i":
        return 0

    @signal()
    def StatusNotifierItemRegistered(self, service: "s") -> "s":
        return service


class FakeStatusNotifierWatcher:
    """Owns org.kde.StatusNotifierWatcher; reads and clicks the registered item."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.items: list[tuple[str, str]] = []
        """(unique bus name, object path) of each registered item."""
        self._registered = threading.Event()
        self._loop = _LoopThread("fake-sni-watcher")
        self._bus: MessageBus | None = None

    def start(self) -> "FakeStatusNotifierWatcher":
        async def go() -> None:
            bus = await MessageBus(bus_address=self.address).connect()
            self._bus = bus

            def on_message(msg: Message) -> None:
                if (
                    msg.message_type == MessageType.METHOD_CALL
                    and msg.member == "RegisterStatusNotifierItem"
                ):
                    service = str(msg.body[0])
                    path = service if service.startswith("/") else "/StatusNotifierItem"
                    self.items.append((str(msg.sender), path))
                    self._registered.set()

            bus.add_message_handler(on_message)
            bus.export("/StatusNotifierWatcher", _Watcher(self))
            await bus.request_name("org.kde.StatusNotifierWatcher")

        self._loop.run(go())
        return self

    def stop(self) -> None:
        if self._bus is not None:
            self._loop.call(self._bus.disconnect)
        self._loop.close()

    def _call(self, dest: str, path: str, iface: str, member: str, sig: str = "",
              body: list[Any] | None = None) -> list[Any]:
        async def go() -> list[Any]:
            assert self._bus is not None
            reply = await self._bus.call(
                Message(destination=dest, path=path, interface=iface, member=member,
                        signature=sig, body=body or [])
            )
            assert reply is not None
            if reply.message_type == MessageType.ERROR:
                raise AssertionError(f"{member} failed: {reply.error_name} {reply.body}")
            return list(reply.body)

        return self._loop.run(go())

    def wait_item(self, timeout: float = 10.0) -> tuple[str, str]:
        """The first registered item; fails the test if none registers in time."""
        assert self._registered.wait(timeout), "no StatusNotifierItem registered"
        return self.items[0]

    def props(self) -> dict[str, Any]:
        """Every org.kde.StatusNotifierItem property of the item (Title, IconName, Menu...)."""
        sender, path = self.wait_item()
        body = self._call(sender, path, "org.freedesktop.DBus.Properties", "GetAll", "s",
                          ["org.kde.StatusNotifierItem"])
        return dict(unwrap(body[0]))

    def menu(self) -> list[dict[str, Any]]:
        """The item's menu as a flat list: ``{"id", "depth", "label", "enabled", ...}``.

        Separators have ``type == "separator"``; submenu entries follow their parent
        with ``depth`` one more.
        """
        sender, _ = self.wait_item()
        path = self.props()["Menu"]
        _revision, layout = self._call(sender, path, "com.canonical.dbusmenu", "GetLayout",
                                       "iias", [0, -1, []])
        out: list[dict[str, Any]] = []

        def walk(node: Any, depth: int) -> None:
            nid, props, children = unwrap(node)
            if depth:
                out.append({"id": nid, "depth": depth, **props})
            for child in children:
                walk(child, depth + 1)

        walk(layout, 0)
        return out

    def labels(self) -> list[str]:
        """The visible top-level and submenu labels in order, separators as ``---``."""
        out = []
        for item in self.menu():
            if item.get("visible", True) is False:
                continue
            if item.get("type") == "separator":
                out.append("---")
            else:
                out.append("  " * (item["depth"] - 1) + str(item.get("label", "")))
        return out

    def click(self, label: str) -> None:
        """Click the menu item whose label is ``label`` (as a panel does)."""
        sender, _ = self.wait_item()
        items = self.menu()
        matches = [i for i in items if i.get("label") == label]
        assert matches, f"no menu item {label!r} in {[i.get('label') for i in items]}"
        self._call(sender, self.props()["Menu"], "com.canonical.dbusmenu", "Event", "isvu",
                   [matches[0]["id"], "clicked", Variant("s", ""), int(time.time())])
