"""dlq_ttl: each probed entry is visible 1 ms before `expires_at` and invisible at it; each purge
removes exactly the expired entries; each manual retry is re-dispatched and recorded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from harness.chaos.invariants._base import EPS, Findings, Violation
from harness.sim import Records, SimRun
from reliability.events import Attempted, DeadLettered, Snoozed

__all__ = ["check_dlq_ttl"]

_WORKED_ON: Final = (Attempted, Snoozed, DeadLettered)
"""Events that show a dispatcher took an outbox row up."""


def check_dlq_ttl(run: SimRun, params: Mapping[str, Any]) -> Findings:
    r = run.records
    out = Findings()
    _check_probes(r, out)
    _check_purges(r, out)
    _check_manual_retries(r, out)
    out.notes.append(
        f"{len(r.probes)} visibility probes, {len(r.purges)} purges, "
        f"{len(r.retries)} manual retries"
    )
    return out


def _check_probes(r: Records, out: Findings) -> None:
    """Visible (get and list) 1 ms before `expires_at`, invisible at it."""
    for p in r.probes:
        out.checked += 1
        visible = (p.visible_get, p.visible_list)
        if p.phase == "before" and all(visible):
            continue
        if p.phase != "before" and not any(visible):
            continue
        where = "invisible 1 ms before" if p.phase == "before" else "still visible at"
        out.fail(
            Violation(
                f"entry {where} its expires_at (get={p.visible_get}, list={p.visible_list})",
                p.tenant,
                None,
                p.dlq_id,
                {"probe": p.t, "expires_at": r.seconds(p.expires_at)},
                (p.dlq_id,),
            )
        )


def _check_purges(r: Records, out: Findings) -> None:
    """Each purge removes exactly the stays that had expired and were not taken back first."""
    purged: set[int] = set()
    lives = r.dlq_lives
    for t, now, count in r.purges:
        out.checked += 1
        now_s = r.seconds(now)
        expected = [
            i
            for i, life in enumerate(lives)
            if i not in purged
            and life.created <= t
            and life.expires <= now_s + EPS
            and not (life.retried is not None and life.retried <= t)
        ]
        if len(expected) != count:
            first = lives[expected[0]].dlq_id if expected else None
            out.fail(
                Violation(
                    f"purge at t={t:.3f} removed {count} entries, {len(expected)} had expired",
                    None,
                    None,
                    first,
                    {"purge": t},
                    ("dlq-purge",),
                )
            )
        purged.update(expected)


def _check_manual_retries(r: Records, out: Findings) -> None:
    """Each manual retry is taken up by a dispatcher and recorded with retry_count + 1 and the
    delivery's own idempotency key (on its outbox row, or on the DLQ entry it went back to)."""
    redispatched = {ev.outbox_id for _, _, ev in r.events if isinstance(ev, _WORKED_ON)}
    stored = {row.id: (row.retry_count, row.idempotency_key) for row in r.retried_rows}
    # Every stay, not the last entry per id: a delivery retried twice, failing in between,
    # goes back under the same DLQ id, and its first retry must still be found.
    for e in r.dlq_written:
        if e.source_outbox_id and e.source_outbox_id not in stored:
            stored[e.source_outbox_id] = (e.retry_count, e.idempotency_key)
    for retry in r.retries:
        new = retry.new_outbox_id
        if new is None:
            continue
        out.checked += 1
        expected = (retry.retry_count + 1, retry.idempotency_key)
        if new not in redispatched and not _crashed_after(r, retry.t):
            problem = "manual retry made an outbox row nobody attempted"
        elif stored.get(new) != expected:
            count, key = stored.get(new, (None, None))
            problem = (
                f"manual retry recorded retry_count={count} key={key}, expected "
                f"{expected[0]} and {expected[1]}"
            )
        else:
            continue
        out.fail(Violation(problem, retry.tenant, None, new, {"retry": retry.t}, (new,)))


def _crashed_after(r: Records, t: float) -> bool:
    return any(at >= t for at, _, _ in r.crashes)
