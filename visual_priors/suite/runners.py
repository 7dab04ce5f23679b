"""Which function runs each kind of step."""

from visual_priors.suite import adapt_steps, eval_steps, steps, vision_steps

RUNNERS = {
    "tokenizer": steps.run_tokenizer, "shards": steps.run_shards, "labels": steps.run_labels,
    "pretrain": steps.run_pretrain, "encoder": vision_steps.run_encoder,
    "features": vision_steps.run_features, "real_features": vision_steps.run_real_features,
    "align": adapt_steps.run_align, "sft": adapt_steps.run_sft,
    "evaluate": eval_steps.run_evaluate, "language": eval_steps.run_language,
    "alignment": eval_steps.run_alignment,
}
