"""The pytest plugin and its fixtures: fakes, virtual time and a PostgreSQL for your own tests.

`harness.testing.plugin` is registered as the `reliability_harness` pytest11 plugin; it gathers
the fixtures of `harness.testing.fakes`, `harness.testing.respx_fixtures` (the fake n8n as a
respx route), `harness.testing.vclock` (with `harness.testing.freeze`, freezegun in step with
virtual time) and `harness.testing.postgres`. respx and freezegun are imported only by the
fixtures that use them.
"""
