#!/usr/bin/python3
"""claim_table.py: the method's claim at one site (issue #13), measured.

One clinical site (default clinical-3.3mm, PD-fs contrast) with 2 labelled volumes,
8 unlabelled and 4 held-out validation volumes; the teacher's targets for the site's
profile from a synthetic repository. Every student row trains with the SAME config,
steps and seed and is scored on the SAME held-out volumes with `dualkd eval` at the
end of training (the last checkpoint: no row is chosen on the volumes it is scored
on). Rows:

  teacher zero-shot (eval --resample: run at its training spacing and back)
  supervised-only | + response | + feature | dual | dual + on-premises targets
  supervised-only with 16 labelled volumes (the ceiling; same held-out volumes)

Writes DIR/claim_table.json and DIR/claim_table.md and prints the table. A row whose
evaluation exists is not trained again (rerun to resume).

Usage:
  bench/claim_table.py --dualkd build/dualkd --out /tmp/claim [--teacher T.h5]
      [--steps 240] [--jobs 2] [--contrast pd-fs] [--profile clinical-3.3mm]
"""
import argparse
import concurrent.futures as futures
import json
import os
import subprocess
import sys
import time

import h5py

NETWORK = {"levels": 4, "base_width": 8, "pool": [[1, 2, 2], [1, 2, 2], [2, 2, 2]],
           "kernel": [[3, 3, 3]] * 4, "norm": "instance", "leaky_slope": 0.01,
           "norm_eps": 1e-5}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dualkd", default="build/dualkd")
    p.add_argument("--out", required=True)
    p.add_argument("--teacher", help="teacher checkpoint (default: the shipped one)")
    p.add_argument("--profile", default="clinical-3.3mm")
    p.add_argument("--contrast", default="pd-fs")
    p.add_argument("--site-seed", type=int, default=2)
    p.add_argument("--repository", type=int, default=24, help="transfer volumes")
    p.add_argument("--steps", type=int, default=240)
    p.add_argument("--steps-per-epoch", type=int, default=40)
    p.add_argument("--patch", default="12,96,96")
    p.add_argument("--passes", type=int, default=4)
    p.add_argument("--seed", type=int, default=1, help="student weights and sampling")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (1 thread each)")
    p.add_argument("--nice", type=int, default=10)
    return p.parse_args()


def run(a, cmd, log, stdout=None):
    cmd = ["nice", "-n", str(a.nice), a.dualkd] + cmd
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=stdout or f, stderr=f)
    if r.returncode:
        sys.exit("failed (%d): %s; see %s" % (r.returncode, " ".join(cmd), log))


def site_subset(pool, n_labelled, path, splits=("unlabelled", "validation")):
    """The pool's first n_labelled labelled volumes and its volumes of the given splits."""
    if os.path.exists(path):
        return
    with h5py.File(pool, "r") as src:
        vols = src["volumes"]

        def split(k):
            s = vols[k].attrs["split"]
            return (s.decode() if isinstance(s, bytes) else str(s)).rstrip("\0")
        keep = sorted(k for k in vols if split(k) == "labelled")[:n_labelled]
        keep += sorted(k for k in vols if split(k) in splits)
        tmp = path + ".tmp"
        with h5py.File(tmp, "w", libver=("v110", "v110")) as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            g = dst.create_group("volumes", track_order=True)
            for k in keep:
                src.copy(vols[k], g, name=k)
    os.replace(tmp, path)


def prepare(a):
    o = a.out
    os.makedirs(o, exist_ok=True)
    log = os.path.join(o, "prepare.log")
    repo, pool = os.path.join(o, "repo.h5"), os.path.join(o, "site-pool.h5")
    if not os.path.exists(repo):
        run(a, ["data", "synth", "--profile", "repository", "--n", str(a.repository),
                "--seed", "1", "--quiet", "--out", repo], log)
    if not os.path.exists(pool):
        run(a, ["data", "synth", "--profile", a.profile, "--contrast", a.contrast,
                "--labelled", "16", "--unlabelled", "8", "--validation", "4",
                "--seed", str(a.site_seed), "--quiet", "--out", pool], log)
    site2, site16 = os.path.join(o, "site-L2.h5"), os.path.join(o, "site-L16.h5")
    site_subset(pool, 2, site2)
    site_subset(pool, 16, site16)
    # the on-premises targets: the teacher on the site's unlabelled volumes only (never on
    # the held-out ones the rows are scored on)
    unlabelled = os.path.join(o, "site-unlabelled.h5")
    site_subset(pool, 0, unlabelled, ("unlabelled",))
    teacher = a.teacher or os.path.join(o, "teacher.h5")
    if not a.teacher and not os.path.exists(teacher):
        run(a, ["teacher", "export-default", "--out", teacher], log)
    network = dict(NETWORK, kind="unet3d", in_channels=1, classes=5)
    json.dump(network, open(os.path.join(o, "network.json"), "w"))
    z, y, x = (int(v) for v in a.patch.split(","))
    cfg = {"network": NETWORK, "patch": [z, y, x], "steps": a.steps,
           "steps_per_epoch": a.steps_per_epoch, "checkpoint_every": 0}
    json.dump(cfg, open(os.path.join(o, "student.json"), "w"), indent=1)
    for data, store in ((repo, "store"), (unlabelled, "site-store")):
        target = os.path.join(o, store, a.profile + ".h5")
        if not os.path.exists(target):
            run(a, ["teacher", "precompute", "--teacher", teacher, "--data", data,
                    "--profile", a.profile, "--out", os.path.join(o, store),
                    "--student", os.path.join(o, "network.json"), "--passes",
                    str(a.passes), "--threads", "2"], log)
    return {"teacher": teacher, "site2": site2, "site16": site16,
            "store": os.path.join(o, "store", a.profile + ".h5"),
            "site_store": os.path.join(o, "site-store", a.profile + ".h5")}


ROWS = [  # name, title, data, flags
    ("supervised", "supervised-only student", "site2", ["--supervised-only"]),
    ("response", "+ response distillation", "site2", ["--no-feature"]),
    ("feature", "+ feature distillation", "site2", ["--no-response"]),
    ("dual", "dual distillation", "site2", []),
    ("dual-site", "dual distillation + on-premises targets", "site2", ["SITE_TARGETS"]),
    ("ceiling", "supervised with 16 labelled volumes (ceiling)", "site16",
     ["--supervised-only"]),
]


def evaluate(a, model, data, out_json, log, extra=()):
    if not os.path.exists(out_json):
        tmp = out_json + ".tmp"
        with open(tmp, "w") as f:
            run(a, ["eval", "--model", model, "--data", data, "--json", "--threads", "1"]
                + list(extra), log, stdout=f)
        os.replace(tmp, out_json)
    return json.load(open(out_json))


def unet_of_last(last):
    """The U-Net of a run's last checkpoint: the site's feature adapter (kept there for
    --resume; `dualkd eval` refuses parameters the network does not have) left out."""
    out = last.replace(".last.h5", ".final.h5")
    if os.path.exists(out):
        return out
    tmp = out + ".tmp"
    with h5py.File(last, "r") as src, h5py.File(tmp, "w", libver=("v110", "v110")) as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        params = dst.create_group("params")
        for name, ds in src["params"].items():
            if not name.startswith("adapter."):
                src.copy(ds, params, name=name)
                for k, v in ds.attrs.items():
                    params[name].attrs[k] = v
    os.replace(tmp, out)
    return out


def train_row(a, paths, row):
    name, title, data, flags = row
    d = os.path.join(a.out, name)
    os.makedirs(d, exist_ok=True)
    out_json, log = os.path.join(d, "eval.json"), os.path.join(d, "run.log")
    model = os.path.join(d, "student.h5")
    if not os.path.exists(out_json):
        args = ["student", "train", "--data", paths[data], "--out", model, "--config",
                os.path.join(a.out, "student.json"), "--threads", "1", "--seed", str(a.seed)]
        for f in flags:
            if f == "SITE_TARGETS":
                args += ["--site-targets", paths["site_store"]]
            else:
                args.append(f)
        if "--supervised-only" not in flags:
            args += ["--store", paths["store"]]
        run(a, args, log)
    wall = sum(json.loads(l).get("seconds", 0) for l in open(model + ".runlog.jsonl")
               if l.strip())  # training time as the run log records it (resumed runs too)
    ev = evaluate(a, unet_of_last(model + ".last.h5"), paths["site2"], out_json, log)
    return name, title, ev, wall


def row_cells(ev):
    s = ev["summary"]
    return {c: {m: s[c][m]["mean"] for m in ("dice", "hd95", "assd")} for c in ev["classes"]}


def main():
    a = parse_args()
    t0 = time.time()
    paths = prepare(a)
    rows = []
    ev = evaluate(a, paths["teacher"], paths["site2"], os.path.join(a.out, "teacher-eval.json"),
                  os.path.join(a.out, "prepare.log"), ["--resample"])
    rows.append(("teacher", "teacher zero-shot (resampled to its grid and back)", ev, None))
    with futures.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        for r in ex.map(lambda row: train_row(a, paths, row), ROWS):
            rows.append(r)
    classes = rows[0][2]["classes"]
    result = {"protocol": vars(a), "classes": classes,
              "rows": [{"name": n, "title": t, "wall_seconds": w, "metrics": row_cells(e)}
                       for n, t, e, w in rows],
              "seconds": time.time() - t0}
    json.dump(result, open(os.path.join(a.out, "claim_table.json"), "w"), indent=1)
    head = "| method | " + " | ".join("%s Dice" % c for c in classes) + \
        " | mean HD95 mm | mean ASSD mm | wall time |"
    lines = [head, "|" + "---|" * (len(classes) + 4)]
    for r in result["rows"]:
        m = r["metrics"]
        dice = " | ".join("%.3f" % m[c]["dice"] if m[c]["dice"] is not None else "–"
                          for c in classes)
        hd = [m[c]["hd95"] for c in classes if m[c]["hd95"] is not None]
        asd = [m[c]["assd"] for c in classes if m[c]["assd"] is not None]
        lines.append("| %s | %s | %s | %s | %s |" % (
            r["title"], dice, "%.2f" % (sum(hd) / len(hd)) if hd else "–",
            "%.2f" % (sum(asd) / len(asd)) if asd else "–",
            "%.0f s" % r["wall_seconds"] if r["wall_seconds"] is not None else "–"))
    text = "\n".join(lines) + "\n"
    open(os.path.join(a.out, "claim_table.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
