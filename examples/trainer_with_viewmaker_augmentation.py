"""Fine-tune a small image classifier with `transformers.Trainer`, a trained viewmaker as its data augmentation.

    python examples/trainer_with_viewmaker_augmentation.py --viewmaker outputs/quickstart \
        --output_dir outputs/vit_with_viewmaker_views

`--viewmaker` is a run folder of training/pretrain.py, a viewmaker's own folder or a Hub repository id (published
layout: the viewmaker in `viewmaker/`). The data are the Fashion-MNIST sample that ships with the package (4,000
training and 1,000 test images, offline); the classifier is a small `ViTForImageClassification` built from a config,
so nothing is downloaded.

How the viewmaker joins in:
- the datasets give [0, 1] pixels (the processor saved with the viewmaker, which does not normalise);
- the training collator collates them, replaces them with views and normalises the views (images are normalised
  *after* the viewmaker) with the statistics of that processor, which are the run's;
- evaluation batches go through the same collator without views (`collator.for_evaluation()`): Trainer hands its one
  `data_collator` to every DataLoader, so `TrainerWithTrainingViews` swaps it for the evaluation ones.

The output folder holds the classifier with a processor that normalises (`pipeline("image-classification",
model=output_dir)` classifies images), `train_results.json`, `eval_results.json` and `trainer_state.json`.
"""

import argparse
import functools
import json
from typing import Any

import numpy as np
from transformers import Trainer, TrainingArguments, ViTConfig, ViTForImageClassification, set_seed

from hf_viewmaker import ViewmakerImageProcessor
from hf_viewmaker.augmentation import ViewmakerAugmentation, ViewmakerCollator
from hf_viewmaker.data.packaged import load_fashion_mnist_sample

# Used when the viewmaker folder holds no image processor: the packaged sample's size and statistics.
FASHION_MNIST_SIZE = 28
FASHION_MNIST_MEAN, FASHION_MNIST_STD = [0.286], [0.353]


class TrainerWithTrainingViews(Trainer):
    """A `Trainer` whose evaluation and prediction DataLoaders collate with `data_collator.for_evaluation()`: the
    same batches and normalisation as training, without views."""

    def _with_evaluation_collator(self, make_dataloader, dataset):
        collator = self.data_collator
        if not isinstance(collator, ViewmakerCollator):
            return make_dataloader(dataset)
        # The DataLoader keeps the collate function it is made with: swapping it only while it is made is enough.
        self.data_collator = collator.for_evaluation()
        try:
            return make_dataloader(dataset)
        finally:
            self.data_collator = collator

    def get_eval_dataloader(self, eval_dataset=None):
        return self._with_evaluation_collator(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._with_evaluation_collator(super().get_test_dataloader, test_dataset)


def to_pixel_values(batch: dict[str, list], processor: ViewmakerImageProcessor) -> dict[str, Any]:
    """A batch of the dataset's `image` / `label` columns as [0, 1] `pixel_values` and `labels`."""
    pixel_values = processor(batch["image"], return_tensors="pt")["pixel_values"]
    return {"pixel_values": list(pixel_values), "labels": batch["label"]}


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewmaker", required=True, help="run folder, viewmaker folder or Hub repo id")
    parser.add_argument("--viewmaker_revision", default=None, help="branch, tag or commit of a Hub repo")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--distortion_budget", type=float, default=None, help="default: the viewmaker's own")
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--per_device_train_batch_size", type=int, default=64)
    parser.add_argument("--per_device_eval_batch_size", type=int, default=256)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--logging_steps", type=int, default=10)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--max_eval_samples", type=int, default=None)
    parser.add_argument("--patch_size", type=int, default=4)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--num_hidden_layers", type=int, default=2)
    parser.add_argument("--num_attention_heads", type=int, default=4)
    parser.add_argument("--views_device", default=None, help="make the views there, e.g. cuda (default: the CPU)")
    parser.add_argument("--use_cpu", action="store_true", help="train on the CPU even if a GPU is available")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    set_seed(args.seed)
    augmentation = ViewmakerAugmentation.from_pretrained(
        args.viewmaker, revision=args.viewmaker_revision, distortion_budget=args.distortion_budget
    )
    channels = augmentation.config.num_channels
    # The viewmaker's processor makes its [0, 1] inputs and holds the statistics its run normalised views with.
    processor = augmentation.processor or ViewmakerImageProcessor(
        num_channels=channels,
        size={"height": FASHION_MNIST_SIZE, "width": FASHION_MNIST_SIZE},
        image_mean=FASHION_MNIST_MEAN * channels,
        image_std=FASHION_MNIST_STD * channels,
    )
    statistics = (list(processor.image_mean), list(processor.image_std))

    splits = load_fashion_mnist_sample()
    train, test = splits["train"], splits["test"]
    if args.max_train_samples is not None:
        train = train.select(range(min(args.max_train_samples, len(train))))
    if args.max_eval_samples is not None:
        test = test.select(range(min(args.max_eval_samples, len(test))))
    names = train.features["label"].names
    pixels = functools.partial(to_pixel_values, processor=processor)
    train, test = train.with_transform(pixels), test.with_transform(pixels)

    size = processor.size["height"], processor.size["width"]
    config = ViTConfig(
        image_size=list(size),
        patch_size=args.patch_size,
        num_channels=channels,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        intermediate_size=2 * args.hidden_size,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
    )
    model = ViTForImageClassification(config)
    # The classifier sees normalised images: the processor saved with it normalises.
    classifier_processor = ViewmakerImageProcessor.from_dict({**processor.to_dict(), "do_normalize": True})

    training_args = TrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        learning_rate=args.learning_rate,
        logging_steps=args.logging_steps,
        save_strategy="no",
        report_to="none",
        # The transform reads the `image` column, which Trainer would drop as the model does not take it.
        remove_unused_columns=False,
        # The collator runs the viewmaker: in this process, where it was loaded (and where CUDA may run).
        dataloader_num_workers=0,
        use_cpu=args.use_cpu,
        seed=args.seed,
    )
    trainer = TrainerWithTrainingViews(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=test,
        data_collator=augmentation.collator(then_normalize=statistics, device=args.views_device),
        compute_metrics=accuracy,
        processing_class=classifier_processor,
    )
    train_result = trainer.train()
    trainer.save_metrics("train", train_result.metrics)
    metrics = trainer.evaluate()
    trainer.save_metrics("eval", metrics)
    trainer.save_state()
    trainer.save_model()  # the classifier and its processor
    print(json.dumps({"train_loss": train_result.training_loss, **metrics}))
    return metrics


if __name__ == "__main__":
    main()
