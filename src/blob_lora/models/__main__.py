"""`python -m blob_lora.models gemma-270m`: prepare the offline models' cache once."""

import logging
import sys

from . import SHORT_NAMES, resolve_model

logging.basicConfig(level=logging.INFO)
for arg in sys.argv[1:] or list(SHORT_NAMES):
    print(arg, resolve_model(arg)[0])
