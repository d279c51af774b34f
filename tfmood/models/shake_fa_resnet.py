"""Shake-Shake frequency-aware CP ResNet, CP-JKU's best single run (1_shakefaresnet) at MediaEval 2019.

Koutini et al., MediaEval 2019 (seeds/002_*; systems.md A4) combined with Gastaldi, "Shake-Shake
regularization", arXiv 1705.07485 (2017). **[UNVERIFIED]**: CP-JKU published no code for this run; we use the
standard Shake-Shake-Image scheme: every FA-ResNet block has two parallel residual branches mixed by a per-sample
alpha ~ U(0, 1) forward and an independent beta ~ U(0, 1) backward, 0.5 at inference (`layers.ShakeShake`).
Each branch is the FA-ResNet branch (coordinate channel before both convs); shortcut and head as in `cp_resnet`.
"""

from tfmood.models import register
from tfmood.models.cp_resnet import build_cp_network, check_rho, finish_block, residual_branch
from tfmood.models.fa_resnet import with_coordinate
from tfmood.models.layers import ShakeShake


def shake_block(x, filters, k1, k2, init, name):
    branches = [residual_branch(x, filters, k1, k2, init, f"{name}_branch{i}", coordinate=with_coordinate)
                for i in (1, 2)]
    return finish_block(x, ShakeShake(name=f"{name}_shake")(branches), filters, init, name)


@register("shake_fa_resnet")
def build_shake_fa_resnet(input_shape=(256, None, 1), num_tags=56, rho=7, base_channels=128, attention_avg=False,
                          input_norm=True, depth=26):
    """Shake-Shake FA-ResNet (two branches per block, stochastic mixing); CP-JKU 2019 run 1 [UNVERIFIED design]."""
    return build_cp_network(input_shape, num_tags, shake_block, check_rho(rho), base_channels, attention_avg,
                            input_norm, "shake_fa_resnet", depth)
