"""sed_utils: the shared code of the sed-tutorial notebook series.

The package mirrors the notebooks (see docs/architecture.md): ``download``/``demo_data`` (01),
``audio``/``esc50``/``desed``/``explore`` (02), ``chunking`` (03), ``features``/``augment``/``dataset``
(04), ``model``/``training`` (05), ``evaluation``/``eval_plots`` (06), ``scenes`` (07), ``runner``
(all of them, headless). Everything reads its knobs from :func:`sed_utils.config.load_config`.
"""

from .config import Config, load_config

__all__ = ["Config", "load_config"]
__version__ = "0.1.0"
