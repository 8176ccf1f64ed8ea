"""The fake n8n's control API, like Toxiproxy's: `GET/PUT /__faults`, `GET /__journal`
(`?bucket=SECONDS` adds arrivals per bucket), `POST /__reset`."""

from __future__ import annotations

import math
import urllib.parse
from typing import TYPE_CHECKING

from harness.fakes.faults import FaultProfileError, parse_profile
from harness.fakes.n8n_answers import Answer, FakeRequest, json_answer

if TYPE_CHECKING:
    from harness.fakes.n8n import FakeN8n

__all__ = ["control_answer"]


def control_answer(fake: FakeN8n, req: FakeRequest) -> Answer:
    """Answer a call to the control API (`/__faults`, `/__journal`, `/__reset`)."""
    route = (req.method, req.path)
    if route == ("GET", "/__faults"):
        return json_answer(200, fake.faults.profile.to_json())
    if route == ("PUT", "/__faults"):
        try:
            profile = parse_profile(req.body, source="PUT /__faults body")
        except FaultProfileError as exc:
            return json_answer(400, {"error": str(exc), "key": exc.key})
        fake.faults.load(profile)
        return json_answer(200, profile.to_json())
    if route == ("GET", "/__journal"):
        query = urllib.parse.parse_qs(req.query)
        bucket: float | None = None
        if "bucket" in query:
            try:
                bucket = float(query["bucket"][0])
                if not bucket > 0 or not math.isfinite(bucket):
                    raise ValueError(bucket)
            except ValueError:
                return json_answer(400, {"error": "bucket must be a positive number"})
        return json_answer(200, fake.journal.to_json(bucket=bucket))
    if route == ("POST", "/__reset"):
        fake.reset()
        return json_answer(200, {"status": "reset"})
    known = {"/__faults": "GET, PUT", "/__journal": "GET", "/__reset": "POST"}
    if req.path in known:
        return json_answer(405, {"error": f"{req.method} not allowed"}, ("Allow", known[req.path]))
    return json_answer(404, {"error": f"no control route {req.path}"})
