#!/usr/bin/python3
"""mask_check.py: does the uncertainty mask drop the voxels where the teacher is wrong?

For a target store (`dualkd teacher precompute`) and a dataset holding the labels of its
samples (the store's own `label` arrays when it has them, else the dataset's volumes of the
same id), count the voxels where a structure is (in the truth or in the teacher's arg-max):
how many the response mask keeps (entropy below the threshold) and drops, and how often the
teacher's arg-max is right on each.

Usage: bench/mask_check.py STORE.h5 [LABELS.h5] [--thresholds 0.52,0.693]
"""
import argparse

import h5py


def labels_of(store_sample, dataset, name):
    if "label" in store_sample:
        return store_sample["label"][()]
    if dataset is not None and name in dataset["volumes"] and "label" in dataset["volumes"][name]:
        return dataset["volumes"][name]["label"][()]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store")
    p.add_argument("labels", nargs="?")
    p.add_argument("--thresholds", default="0.52,0.693", help="nats (the mask's ramp ends)")
    a = p.parse_args()
    store = h5py.File(a.store, "r")
    dataset = h5py.File(a.labels, "r") if a.labels else None
    for thr in (float(t) for t in a.thresholds.split(",")):
        kept = dropped = kept_right = dropped_right = samples = 0
        for name, g in store["samples"].items():
            truth = labels_of(g, dataset, name)
            if truth is None:
                continue
            pred, u = g["response"][()].argmax(0), g["uncertainty"][()]
            if truth.shape != pred.shape:
                continue
            samples += 1
            structure = (truth > 0) | (pred > 0)
            keep, drop = structure & (u < thr), structure & (u >= thr)
            kept += keep.sum()
            dropped += drop.sum()
            kept_right += (pred[keep] == truth[keep]).sum()
            dropped_right += (pred[drop] == truth[drop]).sum()
        print("threshold %.3f nats, %d samples: kept %d voxels (teacher right on %.3f), "
              "dropped %d (right on %.3f); dropped share %.3f"
              % (thr, samples, kept, kept_right / max(kept, 1), dropped,
                 dropped_right / max(dropped, 1), dropped / max(kept + dropped, 1)))


if __name__ == "__main__":
    main()
