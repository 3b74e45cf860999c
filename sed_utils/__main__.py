"""``python -m sed_utils ...``: see :mod:`sed_utils.cli.runner`."""

import sys

from sed_utils.cli.runner import main

sys.exit(main())
