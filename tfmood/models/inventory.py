"""Parameter counts of the zoo next to published reference counts (feeds docs/models.md via tools/count_params.py).

Counts are taken at the input each seed used; for the ImageNet comparison the same architecture is built as a
bare 224x224x3 classifier with 1000 classes: Keras applications by Keras (total parameters, as Keras's table
counts them), our rebuilds of PyTorch models by their `imagenet_classes` option (trainable parameters, which is
what PyTorch's `numel()` sum counts: BatchNorm running statistics are buffers there).
"""

import inspect

import keras
import numpy as np

from tfmood import models

# name -> (seed system, input the seed used as (bands, frames), extra build options for that input)
SEED_INPUTS = {
    "mobilenetv2": ("HCMUS 2020 run 1 / AMLAG 2019 sub. 1", (96, 1366), {}),
    "efficientnet_b0": ("HCMUS 2020 mel run; SELAB-HCMUS 2021", (96, 1366), {}),
    "efficientnet_b7": ("HCMUS 2020 run 3 (WaveNet features)", (16, 937), {}),
    "cp_resnet": ("CP-JKU 2019 base (rho 7)", (256, 1366), {}),
    "fa_resnet": ("CP-JKU 2019 run 2", (256, 1366), {}),
    "shake_fa_resnet": ("CP-JKU 2019 run 1", (256, 1366), {}),
    "resnet34": ("CP-JKU 2019 run 5; UAI-CNRL 2020 backbone", (96, 1366), {}),
    "crnn": ("CP-JKU 2019 run 4 (Choi et al. 2017)", (96, 1366), {}),
    "rexnet_100": ("SELAB-HCMUS 2021", (96, 640), {}),
    "mixnet_s": ("SELAB-HCMUS 2021", (96, 640), {}),
    # other helpers' families: counted at their builder's default input (None)
    "attention_mobilenetv2": ("AMLAG 2019 sub. 2", None, {}),
    "attention_resnet34": ("UAI-CNRL 2020", None, {}),
    "vggish": ("MTG-Jamendo baseline (VGG-ish FCN)", None, {}),
    "vqvae_cnn": ("Taiinn 2019 runs 2, 4", None, {}),
    "vqvae_gru": ("Taiinn 2019 runs 1, 3", None, {}),
}

# name -> (how to build the ImageNet classifier, published count as published, where it is published)
IMAGENET_REFERENCES = {
    "mobilenetv2": ("keras:MobileNetV2", "3.5 M", "Keras applications table (MobileNetV2, with top)"),
    "efficientnet_b0": ("keras:EfficientNetB0", "5.3 M", "Keras applications table"),
    "efficientnet_b7": ("keras:EfficientNetB7", "66.7 M", "Keras applications table"),
    "resnet34": ("option", "21.8 M", "torchvision resnet34 (21,797,672)"),
    "rexnet_100": ("option", "4.8 M", "timm rexnet_100 model card (4.8 M); 4.80 M in timm's tables"),
    "mixnet_s": ("option", "4.13 M", "timm mixnet_s (4.13 M; tf_mixnet_s model card: 4.1 M)"),
}


def parameter_counts(model) -> tuple:
    """(trainable, total) parameter counts of a built Keras model."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, int(model.count_params())


def default_input(name) -> tuple:
    """The builder's default `input_shape` (models of other helpers are counted at their own default)."""
    default = inspect.signature(models.MODELS.get(name)).parameters.get("input_shape")
    return tuple(default.default) if default is not None and default.default is not inspect.Parameter.empty \
        else (96, None, 1)


def seed_count(name) -> dict:
    """Parameters of the tagger (56 tags) at the seed's input; the time axis is free, so only bands matter."""
    seed, size, options = SEED_INPUTS.get(name, ("—", None, {}))
    shape = (size[0], None, 1) if size else default_input(name)
    trainable, total = parameter_counts(models.build(name, input_shape=shape, **options))
    keras.backend.clear_session()
    shown = f"{size[0]}x{size[1]}" if size else "x".join("T" if d is None else str(d) for d in shape[:2]) + \
        " (builder default)"
    return dict(name=name, seed=seed, input=shown, trainable=trainable, total=total)


def imagenet_count(name):
    """(our ImageNet-classifier count, published count, source), or None where no reference exists."""
    if name not in IMAGENET_REFERENCES:
        return None
    how, published, source = IMAGENET_REFERENCES[name]
    if how.startswith("keras:"):
        ours = parameter_counts(getattr(keras.applications, how[6:])(weights=None))[1]
    else:
        ours = parameter_counts(models.build(name, input_shape=(224, 224, 3), imagenet_classes=1000))[0]
    keras.backend.clear_session()
    return ours, published, source
