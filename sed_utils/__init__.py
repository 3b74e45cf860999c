"""sed_utils: the shared code of the sed-tutorial notebook series.

Data flows one way through the package, each layer importing only the layers above it in this
list (``tests/test_layers.py`` enforces it; ``docs/architecture.md`` draws it):

``errors``, ``atomic``, ``keys`` -> ``config`` -> ``io`` (audio, download, extract) -> ``data``
(ESC-50, DESED, scenes, test sets, registry, demo data, label statistics) -> ``chunking``,
``features``, ``augment``, ``dataset`` -> ``model`` -> ``metrics`` -> ``checkpoint`` ->
``inference`` -> ``training`` -> ``postprocess`` -> ``evaluation`` -> ``plots`` -> ``runner``.

Everything reads its knobs from :func:`sed_utils.config.load_config`.
"""

from sed_utils.config import Config, load_config

__all__ = ["Config", "load_config"]
__version__ = "0.1.0"
