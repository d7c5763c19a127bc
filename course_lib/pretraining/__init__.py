"""Domain- and task-adaptive pretraining: continue BERT's masked-LM training on your text.

BioBERT and FinBERT are BERT after more masked-language-model training on biomedical or
financial text; "Don't Stop Pretraining" (Gururangan et al., 2020) showed that even the
task's own unlabelled sentences (task-adaptive pretraining) help, at a fraction of the
cost. This package does it for any BERT backbone:

- :mod:`.masking`: token windows, whole-word masking with BERT's 80/10/10, fixed masks
  for a fair before/after evaluation;
- :mod:`.model`: ``BertForMaskedLM`` from any BERT checkpoint (a new head, tied to the
  word embeddings, when the checkpoint has none), the loss on masked positions only;
- :mod:`.phases`: training with the course Trainer (head first, then everything),
  perplexity and masked-token accuracy, saving for ``pipeline("fill-mask")`` and
  ``classify --model``.
"""

from .masking import (
    DEFAULT_MLM_PROBABILITY,
    WholeWordMasking,
    fixed_masking,
    masked_token_count,
    tokenize_texts,
)
from .model import (
    MaskedLMTraining,
    build_masked_lm,
    head_is_tied,
    masked_lm_logits,
    masked_lm_loss,
    masked_lm_sums,
    set_encoder_trainable,
    start_bias_at_word_frequencies,
)
from .phases import (
    HEAD_SHARE,
    RECOMMENDED_EPOCHS,
    RECOMMENDED_LR,
    HeadFirst,
    PretrainingRun,
    evaluate_masked_lm,
    pretrain,
    save_masked_lm,
)

__all__ = [
    "DEFAULT_MLM_PROBABILITY", "HEAD_SHARE", "RECOMMENDED_EPOCHS", "RECOMMENDED_LR",
    "HeadFirst", "MaskedLMTraining", "PretrainingRun", "WholeWordMasking", "build_masked_lm",
    "evaluate_masked_lm", "fixed_masking", "head_is_tied", "masked_lm_logits", "masked_lm_loss", "masked_lm_sums",
    "masked_token_count", "pretrain", "save_masked_lm", "set_encoder_trainable",
    "start_bias_at_word_frequencies", "tokenize_texts",
]
