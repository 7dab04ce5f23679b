"""`python -m visual_priors.cli`: the `visual-priors` command."""

import sys

from visual_priors.cli import main

sys.exit(main())
