"""Which service instance made each call at the fake n8n.

Every instance sends through its own `CallerTransport` around the one fake: it notes the
instance and the idempotency key of each request, then hands the request on. The fake writes
its journal entry before anything can suspend, so the notes line up with the journal entry by
entry; `attribute` checks that they do (by key) and gives each journal entry its instance.
"""

from __future__ import annotations

import httpx

from harness.fakes.journal import JournalEntry

__all__ = ["CallerTransport", "Callers", "MisalignedCallers"]


class MisalignedCallers(RuntimeError):
    """The notes and the journal disagree: the attribution would be wrong, so none is made."""


class Callers:
    """The requests the instances sent, in the order they reached the fake."""

    def __init__(self) -> None:
        self._sent: list[tuple[int, str | None]] = []

    def transport(self, inner: httpx.AsyncBaseTransport, instance: int) -> CallerTransport:
        return CallerTransport(inner, instance, self._sent)

    def attribute(self, journal: tuple[JournalEntry, ...]) -> tuple[int, ...]:
        """The instance of each journal entry, in journal order."""
        if len(journal) != len(self._sent):
            raise MisalignedCallers(f"{len(self._sent)} requests sent, {len(journal)} journaled")
        for entry, (_, key) in zip(journal, self._sent, strict=True):
            if entry.idempotency_key != key:
                raise MisalignedCallers(
                    f"journal entry #{entry.seq} has key {entry.idempotency_key!r}, "
                    f"the request sent then {key!r}"
                )
        return tuple(instance for instance, _ in self._sent)


class CallerTransport(httpx.AsyncBaseTransport):
    """One instance's way to the fake n8n: notes who sent each request, then sends it."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        instance: int,
        sent: list[tuple[int, str | None]],
    ) -> None:
        self._inner = inner
        self._instance = instance
        self._sent = sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._sent.append((self._instance, request.headers.get("idempotency-key")))
        return await self._inner.handle_async_request(request)
