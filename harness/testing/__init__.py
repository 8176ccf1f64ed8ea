"""The pytest plugin and its fixtures: fakes, virtual time and a PostgreSQL for your own tests.

`harness.testing.plugin` is registered as the `reliability_harness` pytest11 plugin; it gathers
the fixtures of `harness.testing.fakes`, `harness.testing.vclock` and `harness.testing.postgres`.
"""
