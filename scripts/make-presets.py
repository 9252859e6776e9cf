#!/usr/bin/env python3
"""Writes experiments/reference/*.toml: one preset per row of the reference
experiment table (DML-for-Classification README), with its names and common
settings, and experiments/reference-mobilenet_v2/*.toml: the same rows on the
ImageNet MobileNetV2 that can be installed here (no ImageNet ResNet weights can).
Run from the repository root; the outputs are committed."""
import copy
import os

COMMON = {
    "data": {"path": "data/CUB_200_2011", "split": "stratified", "test_ratio": 0.2,
             "held_out_classes": 20, "image_size": 224, "resize": 224, "augment": False},
    "model": {"backbone": "resnet18", "init": "imagenet", "distance": "cosine", "embedding_dim": 128},
    "loss": {"kind": "epshn_triplet", "margin": 0.05},
    "optimizer": {"kind": "sgd", "lr": 0.03, "momentum": 0.0, "weight_decay": 0.0},
    "schedule": {"kind": "multi_step", "milestones": [0.5, 0.75], "gamma": 0.1},
    "training": {"epochs": 100, "classes_per_batch": 8, "images_per_class": 16, "seed": 42,
                 "device": "cpu", "threads": 2},
}
ADAM = {"optimizer": {"kind": "adam", "lr": 1e-4, "momentum": 0.0, "weight_decay": 0.0},
        "schedule": {"kind": "constant"}}
BASE = "EPSHN_cosine_resnet18_sgd_aug"

# (name, baseline, description, changes relative to COMMON)
ROWS = [
    ("EPSHN_euclidean_resnet18", None, "EPSHN, Euclidean distance, ImageNet ResNet18, Adam, D = 128",
     {**ADAM, "model": {"distance": "euclidean"}}),
    ("EPSHN_cosine_resnet18", "EPSHN_euclidean_resnet18", "as EPSHN_euclidean_resnet18 with cosine distance", ADAM),
    ("EPSHN_cosine_resnet18_sgd", "EPSHN_cosine_resnet18", "SGD instead of Adam", {}),
    (BASE, "EPSHN_cosine_resnet18_sgd", "train and test augmentation (the baseline)", {"data": {"augment": True}}),
    ("EPSHN_cosine_frozenBN_resnet18_sgd_aug", BASE, "every BatchNorm frozen with its ImageNet statistics",
     {"data": {"augment": True}, "model": {"frozen_bn": True}}),
    ("EPSHN_cosine_resnet18_scratch_sgd_aug", BASE, "trained from scratch instead of ImageNet weights",
     {"data": {"augment": True}, "model": {"init": "scratch"}}),
    ("EPSHN_cosine_resnet18_classifier_sgd_aug", BASE, "initialised from a cross-entropy classifier trained first",
     {"data": {"augment": True}, "model": {"init": {"classifier": {"epochs": 30}}}}),
    ("EPSHN_cosine_resnet18x512_sgd_aug", BASE, "embedding dimension 512 instead of 128",
     {"data": {"augment": True}, "model": {"embedding_dim": 512}}),
    ("EPSHN_cosine_resnet18+skipConnHead_sgd_aug", BASE, "skip-connection head on top of the backbone",
     {"data": {"augment": True}, "model": {"skip_connection": True}}),
    ("EPSHN_cosine_resnet18+1dBN_sgd_aug", BASE, "1-D BatchNorm on the embedding",
     {"data": {"augment": True}, "model": {"batch_norm": True}}),
    ("EPSHN_cosine_resnet50_sgd_aug", BASE, "ResNet50 instead of ResNet18",
     {"data": {"augment": True}, "model": {"backbone": "resnet50"}}),
    ("ProxyNCA_cosine_resnet18_sgd_aug", BASE, "ProxyNCA (one learnable proxy per class) instead of EPSHN",
     {"data": {"augment": True}, "loss": {"kind": "proxy_nca", "scale": 1.0}, "optimizer": {"loss_lr": 0.3}}),
    ("ArcFace_cosine_resnet18_sgd_aug", BASE, "ArcFace (learnable class weights) instead of EPSHN",
     {"data": {"augment": True}, "loss": {"kind": "arcface", "margin": 0.5, "scale": 64.0}, "optimizer": {"loss_lr": 0.3}}),
    ("SubCenterArcFace_cosine_resnet18_sgd_aug", "ArcFace_cosine_resnet18_sgd_aug", "SubCenterArcFace (3 sub-centres per class)",
     {"data": {"augment": True}, "loss": {"kind": "sub_center_arcface", "margin": 0.5, "scale": 64.0, "sub_centers": 3},
      "optimizer": {"loss_lr": 0.3}}),
    ("EPSHN_cosine_simclr_resnet18_sgd_aug", BASE, "initialised by SimCLR self-supervised pretraining on the same images",
     {"data": {"augment": True}, "model": {"init": {"simclr": {"epochs": 100}}}}),
]


def merge(base, changes):
    out = copy.deepcopy(base)
    for table, values in changes.items():
        if isinstance(values, dict) and table in out and "kind" in values and table in ("loss", "schedule", "optimizer") \
                and values.get("kind") != out[table].get("kind") and table != "optimizer":
            out[table] = copy.deepcopy(values)  # a different kind replaces the whole table
        else:
            out[table].update(copy.deepcopy(values))
    return out


def value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
    return repr(v)


def render(name, baseline, description, cfg, note):
    lines = [f"# {note}", f'name = "{name}"', f"description = {value(description)}"]
    if baseline:
        lines.append(f'baseline = "{baseline}"')
    for table in ("data", "model", "loss", "optimizer", "schedule", "training"):
        lines.append("")
        lines.append(f"[{table}]")
        for k, v in cfg[table].items():
            lines.append(f"{k} = {value(v)}")
    return "\n".join(lines) + "\n"


def main():
    ref_note = ("Reference row: CUB-200-2011 (your own download in data/CUB_200_2011), 224², 100 epochs, "
                "batch 128 (8 classes × 16), seed 42, last 20 classes held out. Meant for a GPU: add `--device cuda` to `dmlviz train`.")
    mob_note = ("Reference row with the ImageNet MobileNetV2 (`make weights`) in place of the ImageNet ResNet "
                "that cannot be obtained here; everything else as the reference row.")
    os.makedirs("experiments/reference", exist_ok=True)
    os.makedirs("experiments/reference-mobilenet_v2", exist_ok=True)
    for name, baseline, description, changes in ROWS:
        cfg = merge(COMMON, changes)
        with open(f"experiments/reference/{name}.toml", "w") as f:
            f.write(render(name, baseline, description, cfg, ref_note))
        if cfg["model"]["backbone"] == "resnet18" and cfg["model"]["init"] != "scratch":
            mob = copy.deepcopy(cfg)
            mob["model"]["backbone"] = "mobilenet_v2"
            mob_name = name.replace("resnet18", "mobilenet_v2")
            mob_base = baseline.replace("resnet18", "mobilenet_v2") if baseline else None
            with open(f"experiments/reference-mobilenet_v2/{mob_name}.toml", "w") as f:
                f.write(render(mob_name, mob_base, description, mob, mob_note))


# The study grid (`make study`): every reference row on data that fits 2 CPU cores.
# ImageNet ResNet weights cannot be obtained here, so rows that need them use the
# ImageNet MobileNetV2; ResNet18 and ResNet50 run from scratch (a depth comparison
# without pretraining). The EPSHN official (softmax) form replaces the triplet form:
# with a few hundred optimiser steps the triplet form does not learn (DESIGN.md).
STUDY_DATASETS = {
    "emoji": ("Animals & Nature emoji of four vendors (157 classes, 3 train / 1 test each), 48 px, last 20 held out",
              {"data": {"path": "data/emoji-animals", "fetch": {"source": "emoji", "category": "Animals & Nature"},
                        "image_size": 48, "resize": 48, "held_out_classes": 20, "augment": False, "cache_images": True},
               "training": {"epochs": 15, "classes_per_batch": 32, "images_per_class": 3}}),
    "cards": ("52 cards of 15 KDE decks (12 train / 3 test each), 64 px, last 12 held out",
              {"data": {"path": "data/cards", "fetch": {"source": "cards", "height": 96},
                        "image_size": 64, "resize": 72, "held_out_classes": 12, "augment": False, "cache_images": True},
               "training": {"epochs": 10, "classes_per_batch": 16, "images_per_class": 4}}),
}
STUDY_COMMON = {
    "data": {"split": "stratified", "test_ratio": 0.2},
    "model": {"backbone": "mobilenet_v2", "init": "imagenet", "distance": "cosine", "embedding_dim": 128},
    "loss": {"kind": "epshn", "sigma": 0.1},
    "optimizer": {"kind": "sgd", "lr": 0.03, "momentum": 0.0, "weight_decay": 0.0},
    "schedule": {"kind": "multi_step", "milestones": [0.5, 0.75], "gamma": 0.1},
    "training": {"seed": 42, "device": "cpu", "threads": 2},
}
STUDY_BASE = "EPSHN_cosine_mobilenet_v2_sgd_aug"
AUG = {"data": {"augment": True}}
# (study row, reference row, baseline, description, changes relative to the dataset's common settings)
STUDY_ROWS = [
    ("EPSHN_euclidean_mobilenet_v2", "EPSHN_euclidean_resnet18", None, "Euclidean distance, Adam",
     {**ADAM, "model": {"distance": "euclidean"}}),
    ("EPSHN_cosine_mobilenet_v2", "EPSHN_cosine_resnet18", "EPSHN_euclidean_mobilenet_v2", "cosine distance, Adam", ADAM),
    ("EPSHN_cosine_mobilenet_v2_sgd", "EPSHN_cosine_resnet18_sgd", "EPSHN_cosine_mobilenet_v2", "SGD instead of Adam", {}),
    (STUDY_BASE, "EPSHN_cosine_resnet18_sgd_aug", "EPSHN_cosine_mobilenet_v2_sgd", "train augmentation (the baseline)", AUG),
    ("EPSHN_cosine_frozenBN_mobilenet_v2_sgd_aug", "EPSHN_cosine_frozenBN_resnet18_sgd_aug", STUDY_BASE,
     "every BatchNorm frozen with its ImageNet statistics", {**AUG, "model": {"frozen_bn": True}}),
    ("EPSHN_cosine_mobilenet_v2_scratch_sgd_aug", "EPSHN_cosine_resnet18_scratch_sgd_aug", STUDY_BASE,
     "MobileNetV2 from scratch instead of ImageNet weights", {**AUG, "model": {"init": "scratch"}}),
    ("EPSHN_cosine_resnet18_scratch_sgd_aug", "EPSHN_cosine_resnet18_scratch_sgd_aug", STUDY_BASE,
     "ResNet18 from scratch", {**AUG, "model": {"backbone": "resnet18", "init": "scratch"}}),
    ("EPSHN_cosine_mobilenet_v2_classifier_sgd_aug", "EPSHN_cosine_resnet18_classifier_sgd_aug", STUDY_BASE,
     "initialised from a cross-entropy classifier trained first (from ImageNet)", {**AUG, "model": {"init": {"classifier": {"epochs": 5}}}}),
    ("EPSHN_cosine_mobilenet_v2x512_sgd_aug", "EPSHN_cosine_resnet18x512_sgd_aug", STUDY_BASE,
     "embedding dimension 512 instead of 128", {**AUG, "model": {"embedding_dim": 512}}),
    ("EPSHN_cosine_mobilenet_v2+skipConnHead_sgd_aug", "EPSHN_cosine_resnet18+skipConnHead_sgd_aug", STUDY_BASE,
     "skip-connection head", {**AUG, "model": {"skip_connection": True}}),
    ("EPSHN_cosine_mobilenet_v2+1dBN_sgd_aug", "EPSHN_cosine_resnet18+1dBN_sgd_aug", STUDY_BASE,
     "1-D BatchNorm on the embedding", {**AUG, "model": {"batch_norm": True}}),
    ("EPSHN_cosine_resnet50_scratch_sgd_aug", "EPSHN_cosine_resnet50_sgd_aug", "EPSHN_cosine_resnet18_scratch_sgd_aug",
     "ResNet50 from scratch (no ImageNet ResNet50 here): depth compared with ResNet18 from scratch",
     {**AUG, "model": {"backbone": "resnet50", "init": "scratch"}}),
    ("ProxyNCA_cosine_mobilenet_v2_sgd_aug", "ProxyNCA_cosine_resnet18_sgd_aug", STUDY_BASE, "ProxyNCA instead of EPSHN",
     {**AUG, "loss": {"kind": "proxy_nca", "scale": 1.0}, "optimizer": {"loss_lr": 0.3}}),
    ("ArcFace_cosine_mobilenet_v2_sgd_aug", "ArcFace_cosine_resnet18_sgd_aug", STUDY_BASE, "ArcFace instead of EPSHN",
     {**AUG, "loss": {"kind": "arcface", "margin": 0.5, "scale": 64.0}, "optimizer": {"loss_lr": 0.3}}),
    ("SubCenterArcFace_cosine_mobilenet_v2_sgd_aug", "SubCenterArcFace_cosine_resnet18_sgd_aug", "ArcFace_cosine_mobilenet_v2_sgd_aug",
     "SubCenterArcFace (3 sub-centres per class)",
     {**AUG, "loss": {"kind": "sub_center_arcface", "margin": 0.5, "scale": 64.0, "sub_centers": 3}, "optimizer": {"loss_lr": 0.3}}),
    ("EPSHN_cosine_simclr_mobilenet_v2_sgd_aug", "EPSHN_cosine_simclr_resnet18_sgd_aug", STUDY_BASE,
     "initialised by SimCLR pretraining on the same images (from scratch)", {**AUG, "model": {"init": {"simclr": {"epochs": 10}}}}),
]


def study():
    for dataset, (about, settings) in STUDY_DATASETS.items():
        folder = f"experiments/study/{dataset}"
        os.makedirs(folder, exist_ok=True)
        common = merge(STUDY_COMMON, settings)
        for name, ref, baseline, description, changes in STUDY_ROWS:
            cfg = merge(common, changes)
            note = f"Study row (reference row {ref}) on {about}. Written by scripts/make-presets.py."
            full = f"{dataset}_{name}"
            with open(f"{folder}/{name}.toml", "w") as f:
                f.write(render(full, f"{dataset}_{baseline}" if baseline else None, description, cfg, note))


if __name__ == "__main__":
    main()
    study()
