"""``python -m grukit ...`` is the ``grukit`` command (also under torchrun)."""

import sys

from .app.cli import main

sys.exit(main())
