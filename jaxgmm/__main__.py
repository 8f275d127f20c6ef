"""``python -m jaxgmm``: the same as the ``jaxgmm`` command."""

import sys

from .cli import main

sys.exit(main())
