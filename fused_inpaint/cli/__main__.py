import sys

from fused_inpaint.cli import main

sys.exit(main())
