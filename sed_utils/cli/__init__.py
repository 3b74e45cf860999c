"""The command line, ``python -m sed_utils run|download|detect`` (no notebook: the headless series and
notebook 09's ``detect``).

``runner``: the notebook series with papermill, ``download``, one-line errors with hints; ``detect``:
the ``detect`` verb (files, folders, globs; bad files listed at the end).
"""
