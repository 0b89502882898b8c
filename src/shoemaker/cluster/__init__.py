"""Where attempts run: the runner boundary (``attempt.py``), the worker function that runs one
attempt from a git bundle to a git bundle (``worker.py``), and the Dask cluster's runner
(``dask_runner.py``, the one module that imports ``distributed``)."""
