"""The chaos run: invariant checkers over simulated runs, scenario comparisons, results files.

`harness.chaos.results.run_scenario` simulates a scenario (and its variants), checks it with
`harness.chaos.invariants` and returns its outcome; `results_document` and the writers turn a
run into `results.json` and `junit.xml`.
"""
