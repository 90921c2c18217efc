import sys

from hydra_vision.cli import main

sys.exit(main())
