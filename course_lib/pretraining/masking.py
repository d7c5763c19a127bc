"""Masked-language-model inputs: windows of text, whole-word masking, 80/10/10.

BERT's objective, in one paragraph: pick 15% of the tokens; replace 80% of the picked
ones with ``[MASK]``, 10% with a random token and leave 10% as they were; train the
model to predict the original token at every picked position (and nowhere else). The
random and unchanged 20% keep the model from learning that only ``[MASK]`` positions
matter, since ``[MASK]`` never occurs when the model is fine-tuned.

*Whole-word masking* picks words, not word pieces: when ``hepatotoxicity`` is split
into ``hep ##ato ##to ##xi ##city``, masking one piece alone is too easy (the other
pieces give it away), so all pieces of a word are picked together. The word boundaries
and the picking come from transformers' ``DataCollatorForLanguageModeling(
whole_word_mask=True)``. In transformers 5 that collator replaces every picked token
with ``[MASK]`` when it masks whole words (it warns and drops the 10% random / 10%
unchanged split), so :class:`WholeWordMasking` asks it for the picking alone and
applies BERT's 80/10/10 to the picked tokens itself, token by token as the original
BERT code did.
"""

from __future__ import annotations

import torch

from ..settings import CourseError

DEFAULT_MLM_PROBABILITY = 0.15
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the picked tokens; the other 10% stay as they are
MASKING_INPUTS = ("special_tokens_mask", "offset_mapping")


def tokenize_texts(tokenizer, texts: list[str], max_length: int = 128) -> list[dict]:
    """Token windows for masked-LM training: every text cut into ``max_length`` windows.

    A long document (a medical abstract) becomes several windows instead of being cut
    at ``max_length``, so none of the domain text is thrown away. Each window keeps
    ``special_tokens_mask`` (never mask ``[CLS]``/``[SEP]``) and ``offset_mapping``
    (where each token sits in the text: pieces that touch belong to one word).
    """
    if not texts:
        raise CourseError("no texts to tokenise")
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length,
                        return_overflowing_tokens=True, return_special_tokens_mask=True,
                        return_offsets_mapping=True)
    keep = [k for k in ("input_ids", "attention_mask", "token_type_ids", *MASKING_INPUTS)
            if k in encoded]
    return [{k: encoded[k][i] for k in keep} for i in range(len(encoded["input_ids"]))]


class WholeWordMasking:
    """Turn a padded batch of token ids into masked-LM ``(input_ids, labels)``.

    ``labels`` hold the original token at picked positions and -100 elsewhere (ignored
    by the loss). ``generator=None`` draws from torch's global stream (fresh masks every
    epoch, reproducible under the Trainer's seed, like dropout); pass a seeded
    ``torch.Generator`` for a fixed masking (:func:`fixed_masking`).
    """

    def __init__(self, tokenizer, mlm_probability: float = DEFAULT_MLM_PROBABILITY,
                 whole_word_mask: bool = True):
        from transformers import DataCollatorForLanguageModeling

        if not 0 < mlm_probability < 1:
            raise CourseError(f"mlm_probability {mlm_probability}: must be between 0 and 1")
        if tokenizer.mask_token_id is None:
            raise CourseError("this tokenizer has no [MASK] token; masked-LM needs one")
        self.mlm_probability = mlm_probability
        self.whole_word_mask = whole_word_mask
        self.mask_token_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        # Picking only: every picked token comes back as [MASK]; 80/10/10 is applied below.
        self.picker = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=mlm_probability, whole_word_mask=whole_word_mask,
            mask_replace_prob=1.0, random_replace_prob=0.0)

    def __call__(self, input_ids: torch.Tensor, special_tokens_mask: torch.Tensor,
                 offset_mapping: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.whole_word_mask and offset_mapping is None:
            raise CourseError("whole-word masking needs offset_mapping (tokenize_texts keeps it)")
        device = input_ids.device
        original = input_ids.cpu()
        self.picker.generator = generator  # None: the global stream
        _, labels = self.picker.torch_mask_tokens(
            original.clone(), special_tokens_mask=special_tokens_mask.cpu(),
            offset_mapping=None if offset_mapping is None else offset_mapping.cpu())
        picked = labels != -100
        # BERT's split, token by token: 80% [MASK], 10% a random token, 10% unchanged
        draw = torch.rand(labels.shape, generator=generator)
        to_mask = picked & (draw < MASK_SHARE)
        to_random = picked & (draw >= MASK_SHARE) & (draw < MASK_SHARE + RANDOM_SHARE)
        random_ids = torch.randint(self.vocab_size, labels.shape, generator=generator)
        masked = original.clone()
        masked[to_mask] = self.mask_token_id
        masked[to_random] = random_ids[to_random]
        return masked.to(device), labels.to(device)


def fixed_masking(masker: WholeWordMasking, examples: list[dict], seed: int = 0) -> list[dict]:
    """The same masked copy of ``examples`` every time: perplexity before and after
    training is then measured on exactly the same hidden tokens, so the two compare.

    Each example is masked on its own (not in a batch), so the masking does not depend
    on batch size or order.
    """
    generator = torch.Generator().manual_seed(seed)
    masked_examples = []
    for example in examples:
        ids = torch.as_tensor(example["input_ids"]).unsqueeze(0)
        special = torch.as_tensor(example["special_tokens_mask"]).unsqueeze(0)
        offsets = example.get("offset_mapping")
        offsets = None if offsets is None else torch.as_tensor(offsets).unsqueeze(0)
        masked, labels = masker(ids, special, offsets, generator=generator)
        row = {k: v for k, v in example.items() if k not in (*MASKING_INPUTS, "input_ids")}
        masked_examples.append({**row, "input_ids": masked[0].tolist(),
                                "labels": labels[0].tolist()})
    return masked_examples


def masked_token_count(examples: list[dict]) -> int:
    """How many tokens a fixed masking hides (the size of the evaluation)."""
    return sum(sum(label != -100 for label in ex["labels"]) for ex in examples)
