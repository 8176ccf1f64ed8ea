"""The deterministic simulator: the real reliability layer against the fakes, on virtual time.

`simulate(scenario, seed=...)` runs one scenario on a fresh virtual loop and returns a `SimRun`
(trace hash, records, figures, series); the scenario format is `harness.sim.scenario`.
"""

from __future__ import annotations

from harness.sim.ledger_guard import SeedLedgerGuard
from harness.sim.records import (
    BreakerOp,
    Checkpoint,
    DlqLife,
    DlqProbe,
    DlqRetry,
    Records,
    Send,
)
from harness.sim.run import (
    Hooks,
    Progress,
    SimRun,
    SimulationError,
    simulate,
)
from harness.sim.seeds import derive_rng, uuid4_text
from harness.sim.trace import Trace

__all__ = [
    "BreakerOp",
    "Checkpoint",
    "DlqLife",
    "DlqProbe",
    "DlqRetry",
    "Hooks",
    "Progress",
    "Records",
    "SeedLedgerGuard",
    "Send",
    "SimRun",
    "SimulationError",
    "Trace",
    "derive_rng",
    "simulate",
    "uuid4_text",
]
