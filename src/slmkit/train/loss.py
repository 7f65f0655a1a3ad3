"""Answer-only loss: the vocabulary projection only where a label exists, the shared prefix once."""

from __future__ import annotations

from typing import Any

from slmkit.models.generate import cache_argument
from slmkit.models.labels import causal_lm_parts
from slmkit.train.batches import IGNORE


def answer_loss(model: Any, batch: dict[str, Any], *, per_row: bool = False) -> tuple[Any, ...]:
    """(summed cross-entropy over answer tokens, number of answer tokens); with `per_row`, also
    each row's summed loss and answer tokens (validation's paired comparison needs them).

    Two savings, both exact:
    - The vocabulary projection is the largest matmul of a small model (49k x 576 for
      SmolLM2), and on prompt tokens its output is thrown away: project only the hidden
      states whose next token carries a label.
    - When the batch has `prefix_ids` (the system prompt every row starts with), run them
      once, repeat their keys/values across the rows and run only the rest per row. The
      gradient flows back through the shared keys/values, summed over rows, as it would
      through identical copies.
    Summed, not averaged, so gradient accumulation can divide by the step's token count.
    """
    import torch
    import torch.nn.functional as F

    decoder, lm_head = causal_lm_parts(model)
    input_ids, attention = batch["input_ids"], batch["attention_mask"]
    if "prefix_ids" in batch:
        prefix = batch["prefix_ids"]
        rows, suffix_len, prefix_len = input_ids.shape[0], input_ids.shape[1], prefix.shape[1]
        cache_arg = cache_argument(decoder)
        prefix_out = decoder(input_ids=prefix, use_cache=True)
        cache = getattr(prefix_out, cache_arg)
        cache.batch_repeat_interleave(rows)
        hidden = decoder(
            input_ids=input_ids,
            attention_mask=torch.cat(
                [torch.ones(rows, prefix_len, dtype=attention.dtype, device=attention.device), attention], dim=1
            ),
            position_ids=torch.arange(prefix_len, prefix_len + suffix_len, device=input_ids.device).unsqueeze(0),
            use_cache=True,
            **{cache_arg: cache},
        ).last_hidden_state
    else:
        hidden = decoder(input_ids=input_ids, attention_mask=attention, use_cache=False).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = lm_head(hidden[:, :-1][keep])
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if softcap:  # Gemma-style logit soft-capping, as the model's own forward applies it
        logits = torch.tanh(logits / softcap) * softcap
    if not per_row:
        loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum")
        return loss, int(keep.sum())
    token_losses = F.cross_entropy(logits.float(), targets[keep], reduction="none")
    row_of = torch.arange(keep.shape[0], device=keep.device)[:, None].expand(keep.shape)[keep]
    row_losses = torch.zeros(keep.shape[0], device=keep.device).index_add_(0, row_of, token_losses.detach())
    return token_losses.sum(), int(keep.sum()), row_losses, keep.sum(dim=1)
