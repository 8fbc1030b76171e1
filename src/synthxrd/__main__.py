"""``python -m synthxrd`` is the ``synthxrd`` command."""

import sys

from synthxrd.cli import main

sys.exit(main())
