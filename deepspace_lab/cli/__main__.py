"""``python -m deepspace_lab.cli``: the same as the ``deepspace-lab`` command."""

import sys

from . import main

sys.exit(main())
