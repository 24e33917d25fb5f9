"""`python -m demo` is `python -m demo.app`."""

import sys

from demo.app import main

sys.exit(main())
