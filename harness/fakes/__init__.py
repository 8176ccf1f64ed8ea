"""Fakes of the systems the layer talks to: n8n (webhooks, faults, journal) and Stripe.

Each fake runs in-process (an httpx transport, a virtual clock) or served for real (uvicorn on
127.0.0.1), with one core deciding every answer either way. Import from the modules:
`harness.fakes.n8n` (core; `n8n_answers`, `n8n_asgi`, `n8n_transport`, `n8n_server`, `n8n_control`
are its parts), `harness.fakes.stripe`, `harness.fakes.faults` (engine; `fault_model`,
`fault_profiles`), `harness.fakes.journal`,
`harness.fakes.n8n_export`.
"""
