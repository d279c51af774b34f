"""ImageNet weights are an option for users with network or a local Keras cache, never a requirement."""

import os


def imagenet_weights(enabled: bool, app_name: str):
    """`"imagenet"` when requested and obtainable, else `None`; a clear error when requested but unavailable."""
    if not enabled:
        return None
    cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
    if os.environ.get("TFMOOD_OFFLINE") == "1" and not os.path.isdir(cache):
        raise RuntimeError(
            f"--imagenet needs ImageNet weights for {app_name}: no network (TFMOOD_OFFLINE=1) and no Keras "
            f"cache at {cache}. Download them once with network access, or train without --imagenet."
        )
    return "imagenet"
