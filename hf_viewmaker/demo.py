"""Make views of real images with a freshly initialised viewmaker, and save them.

    python -m hf_viewmaker.demo --output_dir outputs/demo

writes `views.png` (inputs, views, amplified perturbations) and the viewmaker itself (`viewmaker/`, loadable with
`AutoModel.from_pretrained`). The images are the packaged Fashion-MNIST sample. An untrained viewmaker's
perturbations are unstructured; training (training/pretrain.py) is what makes them useful views.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from .data import load_fashion_mnist_sample
from .models.viewmaker import ViewmakerConfig, ViewmakerModel
from .visualization import make_view_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Make views of packaged Fashion-MNIST images with a viewmaker.")
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--num_images", type=int, default=8)
    parser.add_argument("--distortion_budget", type=float, default=0.05, help="epsilon (docs/method.md §1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f"--num_images must be at least 1, got {args.num_images}")
    if not args.distortion_budget > 0:
        parser.error(f"--distortion_budget must be > 0, got {args.distortion_budget}")

    torch.manual_seed(args.seed)
    sample = load_fashion_mnist_sample()["test"]
    if args.num_images > len(sample):
        parser.error(f"--num_images {args.num_images}: the packaged sample has {len(sample)} test images")
    images = sample.select(range(args.num_images))["image"]
    pixels = torch.from_numpy(np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in images]))[:, None]

    viewmaker = ViewmakerModel(ViewmakerConfig(num_channels=1, distortion_budget=args.distortion_budget)).eval()
    with torch.no_grad():
        out = viewmaker(pixels, generator=torch.Generator().manual_seed(args.seed))

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    make_view_grid(pixels, out.views, out.perturbation).save(output_dir / "views.png")
    viewmaker.save_pretrained(output_dir / "viewmaker")
    mean_abs = out.perturbation.abs().mean(dim=(1, 2, 3))
    print(
        f"mean |perturbation| per image: {[round(v, 4) for v in mean_abs.tolist()]} (budget {args.distortion_budget})"
    )
    print(f"wrote {output_dir / 'views.png'} and {output_dir / 'viewmaker'}")


if __name__ == "__main__":
    main()
