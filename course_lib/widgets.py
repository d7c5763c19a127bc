"""Small ipywidgets explorers used in the notebooks (each returns a widget to display)."""

from __future__ import annotations

import ipywidgets as widgets
from IPython.display import clear_output, display


def tokenizer_explorer(tokenizer, text: str = "Thrombocytopenia lowered EBITDA guidance."):
    """Type a sentence, see its WordPiece tokens, ids and how many pieces each word became."""
    box = widgets.Text(value=text, description="Text:", layout=widgets.Layout(width="90%"),
                       continuous_update=True)
    out = widgets.Output()

    def show(_=None):
        with out:
            clear_output(wait=True)
            enc = tokenizer(box.value)
            tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
            print(f"{len(tokens)} tokens: " + " ".join(tokens))
            print("ids:", enc["input_ids"])
            for word in box.value.split():
                pieces = tokenizer.tokenize(word)
                if len(pieces) > 2:
                    print(f"  {word!r} -> {len(pieces)} pieces {pieces}")

    box.observe(show, names="value")
    show()
    return widgets.VBox([box, out])


def attention_explorer(attentions, tokens, plot_fn):
    """Sliders for layer and head over ``attentions`` (a tuple of [1, heads, n, n] tensors)."""
    import matplotlib.pyplot as plt

    layer = widgets.IntSlider(0, 0, len(attentions) - 1, description="layer")
    head = widgets.IntSlider(0, 0, attentions[0].shape[1] - 1, description="head")
    out = widgets.Output()

    def show(_=None):
        with out:
            clear_output(wait=True)
            fig = plot_fn(attentions[layer.value][0, head.value].detach().numpy(), tokens,
                          title=f"layer {layer.value}, head {head.value}")
            display(fig)
            plt.close(fig)

    layer.observe(show, names="value")
    head.observe(show, names="value")
    show()
    return widgets.VBox([widgets.HBox([layer, head]), out])


def prediction_box(predict, text: str = "", description: str = "Sentence:"):
    """A text box whose content is passed to ``predict(text) -> str`` on every change."""
    box = widgets.Text(value=text, description=description, layout=widgets.Layout(width="90%"))
    out = widgets.Output()

    def show(_=None):
        with out:
            clear_output(wait=True)
            if box.value.strip():
                print(predict(box.value))

    box.observe(show, names="value")
    show()
    return widgets.VBox([box, out])
