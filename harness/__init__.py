"""The chaos harness: fakes of n8n and Stripe, virtual time, simulation, invariants, reports.

It exercises `reliability/` (which never imports it). One folder per part (see
`docs/architecture.md`): `harness.fakes` (n8n, Stripe, faults, journal), `harness.vclock`
(virtual time), `harness.sim` (the simulator and the scenario format), `harness.chaos`
(invariants and results), `harness.live` (real processes: load and crash tests),
`harness.report`, `harness.cli` and `harness.testing` (the pytest plugin, loaded automatically).
"""

from __future__ import annotations

__all__: list[str] = []
