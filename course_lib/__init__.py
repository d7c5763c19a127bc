"""course_lib: the training code of the course "Fine-tuning BERT for specialised NLP".

Importing it puts the quick profile offline (HF_HUB_OFFLINE=1 unless set) before
any Hugging Face library reads that variable.
"""

from . import settings

settings.apply_offline_default()

from .settings import CourseError, get_device, profile, seed_everything  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CourseError", "get_device", "profile", "seed_everything", "settings"]
