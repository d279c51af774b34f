"""ImageNet weights are an option for users with network or a local Keras cache, never a requirement."""

import os

import keras


def keras_cache_dir() -> str:
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def imagenet_weights(enabled: bool, app_name: str):
    """`"imagenet"` when requested and obtainable, else `None`; a clear error when requested but unavailable."""
    if not enabled:
        return None
    cache = keras_cache_dir()
    if os.environ.get("TFMOOD_OFFLINE") == "1" and not os.path.isdir(cache):
        raise RuntimeError(
            f"--imagenet needs ImageNet weights for {app_name}: no network (TFMOOD_OFFLINE=1) and no Keras "
            f"cache at {cache}. Download them once with network access, or train without --imagenet."
        )
    return "imagenet"


def build_application(app_name: str, imagenet: bool = False, **kwargs):
    """`keras.applications.<app_name>(weights=..., **kwargs)`; a failed ImageNet download raises a RuntimeError
    that says how to get the weights instead of a bare URL error deep inside Keras."""
    factory = getattr(keras.applications, app_name)
    weights = imagenet_weights(imagenet, app_name)
    try:
        return factory(weights=weights, **kwargs)
    except ValueError:
        raise  # bad arguments (shape, alpha, ...): Keras's own message is the right one
    except Exception as error:  # Keras's get_file wraps URLError/HTTPError/OSError in a plain Exception
        if weights is None:
            raise
        raise RuntimeError(
            f"Could not load the ImageNet weights of {app_name} ({error}). They are downloaded once from "
            f"storage.googleapis.com into {keras_cache_dir()}: run once with network access (or copy the .h5 "
            f"file there from a machine that has it), or build without imagenet=True / train without --imagenet."
        ) from error
