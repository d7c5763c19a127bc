"""The course's datasets and the tables a learner brings: one name each, one output shape.

``load_dataset(name)`` reads the original files under ``COURSE_DATA_DIR``, the
Hub copy, or the bundled sample, and returns a ``datasets.DatasetDict`` with
``train`` / ``validation`` / ``test`` splits made with a fixed seed (stratified
for classification, by document and passage for QA), after duplicates are
removed, so that no text appears in two splits. Column names and label names
are the same for every source:

============== =============================================================
finance        ``text``, ``label`` (negative/neutral/positive), ``topic`` (-1
               when the source has no topic, as FPB has not)
medical        ``text``, ``label`` (the five condition names)
biomedical_qa  ``id``, ``title``, ``context``, ``question``, ``answers``
               (``{"text": [...], "answer_start": [...]}``, empty = unanswerable)
pubmedqa       ``id``, ``question``, ``context``, ``label`` (yes/no/maybe),
               ``long_answer``
============== =============================================================

Two texts count as the same when they differ only in case, spaces or
punctuation (:func:`text_key`): FPB, for example, holds sentences that differ by
one comma, and a model that saw one in training has seen the other.

Every problem a user's file can have (missing file or column, empty text, a
label outside the label set, wrong encoding, malformed JSON or SQuAD, an answer
nowhere near its ``answer_start``) raises :class:`~course_lib.settings.CourseError`
with one line naming the file and the problem.

The rooms, in import order (nothing here imports ``backbones`` or ``training``):

- ``records``: dataset names, label sets, :class:`ParseReport`, :func:`text_key`
- ``files``: bytes to text (encodings, JSON) with one-line errors
- ``tables``: CSV / TSV / JSON Lines / Parquet for the command line
  (:func:`read_table`, :func:`write_table`, :func:`load_examples`, :func:`check_labels`)
- ``formats``: FPB, the course CSVs, Medical Abstracts, PubMedQA
- ``squad``: SQuAD files, with answer offsets repaired (:func:`parse_squad`)
- ``splits``: :func:`split_records`, :func:`find_leaks`, :func:`check_no_leakage`
- ``sources``: files / Hub / bundled and :func:`load_dataset`
- ``labels``: :func:`label_names`, :func:`label_counts`, :func:`class_weights`,
  :func:`weighted_loss`, :func:`oversample`
- ``tokens``: :func:`token_lengths`, :func:`choose_max_length`, :func:`tokenize`
- ``quality``: :func:`text_quality` and its parts
"""

from .formats import (
    parse_finance_csv,
    parse_fpb_file,
    parse_fpb_lines,
    parse_medical_csv,
    parse_pubmedqa,
)
from .labels import class_weights, label_counts, label_names, oversample, weighted_loss
from .quality import near_duplicate_pairs, repeated_ngram_share, text_quality
from .records import (
    COVIDQA_HUB,
    DATASETS,
    FINANCE_LABELS,
    FINANCE_TOPICS,
    FPB_FILES,
    FPB_HUB,
    LEAKAGE_COLUMNS,
    MEDICAL_HUB,
    MEDICAL_LABELS,
    PUBMEDQA_HUB,
    PUBMEDQA_LABELS,
    SPLIT_SEED,
    ParseReport,
    text_key,
)
from .sources import ORIGINAL_FOLDERS, bundled_path, load_dataset, to_dataset_dict
from .splits import check_no_leakage, find_leaks, split_records
from .squad import MAX_ANSWER_SHIFT, locate_answer, parse_squad
from .tables import (
    TABLE_FORMATS,
    check_labels,
    label_order,
    label_text,
    load_examples,
    read_table,
    write_table,
)
from .tokens import choose_max_length, token_lengths, tokenize

__all__ = [
    "COVIDQA_HUB", "DATASETS", "FINANCE_LABELS", "FINANCE_TOPICS", "FPB_FILES", "FPB_HUB",
    "LEAKAGE_COLUMNS", "MAX_ANSWER_SHIFT", "MEDICAL_HUB", "MEDICAL_LABELS",
    "ORIGINAL_FOLDERS", "PUBMEDQA_HUB", "PUBMEDQA_LABELS", "SPLIT_SEED", "TABLE_FORMATS",
    "ParseReport", "bundled_path", "check_labels", "check_no_leakage", "choose_max_length",
    "class_weights", "find_leaks", "label_counts", "label_names", "label_order", "label_text",
    "load_dataset", "load_examples", "locate_answer", "near_duplicate_pairs", "oversample",
    "parse_finance_csv", "parse_fpb_file", "parse_fpb_lines", "parse_medical_csv",
    "parse_pubmedqa", "parse_squad", "read_table", "repeated_ngram_share", "split_records",
    "text_key", "text_quality", "to_dataset_dict", "token_lengths", "tokenize",
    "weighted_loss", "write_table",
]
