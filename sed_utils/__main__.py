"""``python -m sed_utils ...``: see :mod:`sed_utils.runner`."""

import sys

from .runner import main

sys.exit(main())
