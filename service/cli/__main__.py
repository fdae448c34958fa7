"""`python -m service.cli`: the `verity` command."""

import sys

from service.cli.main import main

sys.exit(main())
