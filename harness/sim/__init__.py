"""The deterministic simulator: the real reliability layer against the fakes, on virtual time.

`simulate(scenario, seed=...)` runs one scenario on a fresh virtual loop and returns a `SimRun`
(trace hash, records, figures, series); the scenario format is `harness.sim.scenario`.
"""

from __future__ import annotations

from harness.sim.run import (
    BreakerOp,
    Checkpoint,
    DlqLife,
    DlqProbe,
    DlqRetry,
    Hooks,
    Progress,
    ProgressBar,
    Records,
    SeedLedgerGuard,
    Send,
    SimRun,
    SimulationError,
    Trace,
    derive_rng,
    herd_settings,
    iter_variants,
    simulate,
    uuid4_text,
)

__all__ = [
    "BreakerOp",
    "Checkpoint",
    "DlqLife",
    "DlqProbe",
    "DlqRetry",
    "Hooks",
    "Progress",
    "ProgressBar",
    "Records",
    "SeedLedgerGuard",
    "Send",
    "SimRun",
    "SimulationError",
    "Trace",
    "derive_rng",
    "herd_settings",
    "iter_variants",
    "simulate",
    "uuid4_text",
]
