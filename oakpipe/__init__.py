"""oakpipe: a trained PyTorch model onto an OAK camera (MyriadX, RVC2), offline, verified.

The Python API mirrors the CLI: ``oakpipe.convert(model, **options)`` returns an
``Export`` (artifact paths and manifest), ``oakpipe.run(export, **options)`` a run summary
(see ``oakpipe.api``). Heavy libraries are imported lazily so a cached convert stays well
under a second.
"""

from __future__ import annotations

import os

from oakpipe import privacy

# Before any module below can import depthai or openvino: oakpipe is offline by default.
privacy.apply()
os.environ.setdefault("DEPTHAI_LEVEL", "error")  # not the "no USB in a container" warning

__version__ = "0.1.0"

from oakpipe.api import convert, run  # noqa: E402
from oakpipe.convert import Export  # noqa: E402
from oakpipe.options import ConvertOptions  # noqa: E402
from oakpipe.preprocessing import Preprocessing  # noqa: E402

__all__ = ["convert", "run", "Export", "ConvertOptions", "Preprocessing", "__version__"]
