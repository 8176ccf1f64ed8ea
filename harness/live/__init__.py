"""The system under test as real processes: the service, the fake n8n and PostgreSQL.

`harness.live.stack` starts and supervises them; `harness.live.load` drives them with locust,
`harness.live.crash` kills the service mid-delivery, and `harness.live.checks` checks the
invariants from the database and the fake's journal.
"""
