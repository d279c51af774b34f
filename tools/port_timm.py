"""Port timm ImageNet weights (ReXNet-100, MixNet-S, EfficientNet-B0) to the tfmood rebuilds, for SELAB-HCMUS 2021.

    python tools/port_timm.py efficientnet_b0 --pretrained --out saved_models/timm_efficientnet_b0.keras   # network
    python tools/port_timm.py rexnet_100 --checkpoint rexnet_100.pth --out saved_models/timm_rexnet_100.keras
    python -m tfmood.train --recipe selab2021-coteach-effb0-rexnet --data records/jamendo-mel \\
        --model-option weights=saved_models/timm_efficientnet_b0.keras \\
        --peer-option weights=saved_models/timm_rexnet_100.keras

Needs torch and timm (`pip install -e ".[torch]"`). --pretrained downloads timm's weights (Hugging Face hub);
--checkpoint reads a local timm file (.safetensors, or .pth / .pth.tar read with weights_only, so no pickled code
runs). The port file is the rebuilt network as timm's ImageNet classifier (.keras): before it is written, its
logits are compared with timm's on a random image and the port is refused above --tolerance. The taggers' weights=
option copies its backbone and keeps their stem and head fresh, as SELAB's create_model(pretrained=True,
num_classes=56). Library code: tfmood.models.timm_port.
"""

import argparse
import os
import sys

NAMES = ("rexnet_100", "mixnet_s", "efficientnet_b0")  # tfmood.models.timm_port.PORTS, without importing TF here


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=NAMES, help="timm model name")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="local timm weights file (.safetensors / .pth / .pth.tar)")
    source.add_argument("--pretrained", action="store_true", help="timm's pretrained=True (needs network)")
    p.add_argument("--out", required=True, help="port file to write (.keras)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted |timm - Keras| logit difference")
    args = p.parse_args(argv)
    if not args.out.endswith(".keras"):
        p.error(f"--out {args.out!r}: the port file must end in .keras")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        p.error(f"--checkpoint {args.checkpoint!r}: no such file")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from tfmood.models import timm_port

    try:
        difference, params = timm_port.write_port(args.name, args.out, args.checkpoint, args.pretrained,
                                                  args.tolerance)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {args.name}, {params:,} weights, max |timm - Keras| logit difference {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
