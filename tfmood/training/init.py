"""Initialise output biases at the tags' prior log-odds.

With ~2% positives per tag, a sigmoid head starting at 0.5 spends its first hundreds of steps only learning
the priors (Lin et al. 2017, focal loss, §4.1: "prior probability" initialisation). Starting at the priors puts
the first updates into features instead; the demo run needs that to learn in minutes.
"""

import numpy as np


def _walk(layer):
    yield layer
    for child in getattr(layer, "layers", []) or []:
        yield from _walk(child)


def tag_heads(model, num_tags):
    """Dense layers with `num_tags` sigmoid outputs (several for dual-branch and co-teaching models)."""
    return [layer for layer in _walk(model)
            if getattr(layer, "units", None) == num_tags and getattr(layer, "use_bias", False)
            and getattr(getattr(layer, "activation", None), "__name__", "") == "sigmoid"]


def set_prior_bias(model, tag_counts, num_tracks: int, floor: float = 0.5) -> int:
    """Set each tag head's bias to logit(count / num_tracks); returns how many heads were set."""
    p = np.clip((np.asarray(tag_counts, np.float64) + floor) / (num_tracks + 2 * floor), 1e-4, 1 - 1e-4)
    heads = tag_heads(model, len(p))
    for head in heads:
        head.bias.assign(np.log(p / (1 - p)).astype(head.bias.dtype))
    return len(heads)
