"""The chaos harness: fakes of n8n and Stripe, virtual time, simulation, invariants, reports.

It exercises `reliability/` (which never imports it). Import what you need from its modules:
`harness.vclock`, `harness.faults`, `harness.fake_n8n`, `harness.fake_stripe`, `harness.sim`,
`harness.invariants`; the pytest plugin is `harness.pytest_plugin` (loaded automatically).
"""

from __future__ import annotations

__all__: list[str] = []
