"""Running flows: build the pipeline from a loaded flow and drive it (``runner.py``)."""
