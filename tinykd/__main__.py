import sys

from tinykd.cli import main

sys.exit(main())
