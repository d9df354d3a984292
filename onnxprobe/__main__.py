import sys

from onnxprobe.cli import main

sys.exit(main())
