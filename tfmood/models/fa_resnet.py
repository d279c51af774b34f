"""CP-JKU's frequency-aware CP ResNet (FA-ResNet), run 2 of CP-JKU at MediaEval 2019.

Koutini et al., MediaEval 2019 (seeds/002_*; systems.md A3), `kkoutini/cpjku_dcase19 : models/cp_faresnet.py`.
The CP ResNet of `cp_resnet.py` where every BasicBlock concatenates a frequency-coordinate channel
2f/F - 1 (F = the current feature map's height) before conv1 and before conv2; stem, shortcuts and head do not
get it, and the residual adds the block input without the extra channel.
Differs from the original: sigmoid scores, the optional input BatchNorm of `cp_resnet`, and no `features_shift`
(it is off by default in the original).
"""

from tfmood.models import register
from tfmood.models.cp_resnet import build_cp_network, check_rho, finish_block, residual_branch
from tfmood.models.layers import FrequencyCoordinate


def with_coordinate(x, name):
    return FrequencyCoordinate(name=name)(x)


def fa_block(x, filters, k1, k2, init, name):
    """A3's block: the BasicBlock with the coordinate channel before both convolutions."""
    branch = residual_branch(x, filters, k1, k2, init, name, coordinate=with_coordinate)
    return finish_block(x, branch, filters, init, name)


@register("fa_resnet")
def build_fa_resnet(input_shape=(256, None, 1), num_tags=56, rho=7, base_channels=128, attention_avg=False,
                    input_norm=True, depth=26):
    """Frequency-aware CP ResNet (coordinate channel before every block conv); CP-JKU 2019 run 2."""
    return build_cp_network(input_shape, num_tags, fa_block, check_rho(rho), base_channels, attention_avg,
                            input_norm, "fa_resnet", depth)
