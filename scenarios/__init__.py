"""The chaos scenario catalogue (`catalogue/*.yaml`) and the suites that run it (`test_*.py`)."""
