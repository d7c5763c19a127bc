"""How much of BERT to train: five fine-tuning strategies behind one call.

``plan = apply_strategy(model, name, **options)`` prepares a classification model
for one strategy and returns a :class:`StrategyPlan`: the (possibly wrapped)
model, the optimizer's parameter groups, the Trainer callbacks, and how many
parameters will train. Pass them straight to the Trainer::

    plan = apply_strategy(model, "adapters", seed=42)
    trainer = Trainer(plan.model, config, param_groups=plan.param_groups,
                      callbacks=plan.callbacks, ...)
    trainer.train()
    plan.save("out/model", tokenizer)      # a folder transformers.pipeline loads

=============  ===============================================================
``full``       every weight trains (the baseline)
``freeze``     freeze the embeddings, the bottom k encoder layers, or everything
               but the top k layers and the head (k = 0: only the head trains)
``layerwise``  layer-wise learning-rate decay (each layer down gets ``decay`` times
               the rate of the one above, the top one ``TrainingConfig.learning_rate``)
               plus gradual unfreezing from the top, as in ULMFiT and FinBERT
``adapters``   Houlsby bottleneck adapters (written here) after the attention
               output and after the feed-forward output of every layer; the
               backbone is frozen
``lora``       low-rank updates of the attention and feed-forward matrices, through
               ``peft``; the backbone is frozen
=============  ===============================================================

The "head" is everything above the encoder: BERT's pooler and the classifier.

The package, one job per module: ``anatomy`` (where the layers and the head are),
``freezing``, ``layerwise`` (rates and gradual unfreezing), ``adapters`` (the
adapter modules and their transformers model class, registered with the Auto
classes on import), ``lora``, ``plan`` (:func:`apply_strategy`), ``saving``
(pipeline folders and adapter-only files). Training only the top layers on cached
outputs of frozen lower layers lives in :mod:`course_lib.heads` (``cache_hidden_states``,
``TopLayers``).
"""

from .adapters import (
    ADAPTER_MODEL_TYPE,
    AdaptedOutput,
    AdapterBertConfig,
    AdapterBertForSequenceClassification,
    BottleneckAdapter,
    adapter_parameter_count,
    adapters_of,
    add_adapters,
    encoder_layer_norms,
    reduction_of,
)
from .anatomy import (
    base_model,
    encoder_layers,
    head_parameters,
    parameter_counts,
    set_trainable,
    units_top_down,
)
from .freezing import freeze
from .layerwise import GradualUnfreezing, layerwise_param_groups
from .lora import LORA_TARGETS, add_lora, task_type_of
from .plan import (
    RECOMMENDED_EPOCHS,
    RECOMMENDED_LR,
    STRATEGIES,
    StrategyPlan,
    apply_strategy,
)
from .saving import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    load_adapter,
    mergeable_copy,
    save_adapter,
    save_for_pipeline,
    task_state,
)

__all__ = [
    "ADAPTER_CONFIG", "ADAPTER_MODEL_TYPE", "ADAPTER_WEIGHTS", "LORA_TARGETS",
    "RECOMMENDED_EPOCHS", "RECOMMENDED_LR", "STRATEGIES", "AdaptedOutput", "AdapterBertConfig",
    "AdapterBertForSequenceClassification", "BottleneckAdapter", "GradualUnfreezing",
    "StrategyPlan", "adapter_parameter_count", "adapters_of", "add_adapters", "add_lora",
    "apply_strategy", "base_model", "encoder_layer_norms", "encoder_layers", "freeze",
    "head_parameters", "layerwise_param_groups", "load_adapter", "mergeable_copy",
    "parameter_counts", "reduction_of", "save_adapter", "save_for_pipeline", "set_trainable",
    "task_state", "task_type_of", "units_top_down",
]
