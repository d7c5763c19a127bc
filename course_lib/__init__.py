"""course_lib: the training code of the course "Fine-tuning BERT for specialised NLP".

Importing it changes nothing in the process: no environment variable is set and no
library is reconfigured. The quick profile's offline default applies where the
course loads things (see :mod:`course_lib.settings`), and in the course's own
processes: a notebook's setup cell and the command line.
"""

from . import settings
from .settings import CourseError, get_device, profile, seed_everything

__version__ = "0.1.0"
__all__ = ["CourseError", "get_device", "profile", "seed_everything", "settings"]
