#!/usr/bin/env python3
"""The demo experiment end to end, dmlviz then the Python stack, back to back.

Both sides do the same work on the same images, split, ImageNet weights and threads:
train both phases with per-epoch evaluation, a UMAP map of phase-all, 16 Grad-CAM
explanations, a site. dmlviz's stages are its commands
(`train`, `project --method umap`, `explain --samples 16 --method gradcam --no-trust`,
`report`); the Python stack's are scripts/python_reference.py's. Each side's stage
seconds, its precision@1 and the load average around it go out as one JSON line, then
one line with the ratio of the totals.

    python3 scripts/bench-experiment.py                    # the whole experiment, seed 42
    python3 scripts/bench-experiment.py --accuracy-only --seed 43 --seed 44 ...   # seed study

`--accuracy-only` trains and evaluates only (no map, explanations or site), for the
seed study's precision@1 table. Needs only the standard library; the Python stack's
venv is `--python` (README, "Benchmarks").
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEMO = "experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml"


def timed(cmd, env=None):
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        sys.exit(f"bench-experiment: {' '.join(map(str, cmd))} exited with {done.returncode}")
    return round(seconds, 2), done.stdout


def final_precision(run, phase):
    """precision@1 of the last epoch of a phase (test images against training images, all
    classes; for phase-seen also the held-out classes' test images alone)."""
    lines = (run / f"phase-{phase}" / "history.jsonl").read_text().splitlines()
    last = json.loads([l for l in lines if l.strip()][-1])
    return {"precision_at_1": last["test_accuracy"], "precision_at_1_unseen": last.get("test_accuracy_unseen")}


def ours(args, seed):
    dmlviz = args.dmlviz.split()
    runs = Path(args.out) / "dmlviz" / f"seed{seed}"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    run = runs / "demo"
    times = {}
    load = [os.getloadavg()[0]]
    times["train_s"], _ = timed(dmlviz + ["train", "--config", args.config, "--out", str(run),
                                          "--seed", str(seed), "--threads", str(args.threads), "--quiet"]
                                + (["--amp"] if args.amp else []))
    if not args.accuracy_only:
        times["umap_s"], _ = timed(dmlviz + ["project", "--run", str(run), "--phase", "all",
                                             "--method", "umap", "--quiet"])
        times["explain_s"], _ = timed(dmlviz + ["explain", "--run", str(run), "--phase", "all",
                                                "--samples", "16", "--method", "gradcam", "--no-trust",
                                                "--quiet"])
        times["site_s"], _ = timed(dmlviz + ["report", "--runs", str(runs), "--out",
                                             str(Path(args.out) / "dmlviz" / f"site{seed}")])
    times["total_s"] = round(sum(times.values()), 2)
    load.append(os.getloadavg()[0])
    metrics = {p: final_precision(run, p) for p in ("all", "seen")}
    return {"side": "dmlviz", "seed": seed, "amp": args.amp, "times": times, "metrics": metrics, "load_average": load}


def python_stack(args, seed):
    cmd = [args.python, "scripts/python_reference.py", "--data", args.data, "--seed", str(seed),
           "--threads", str(args.threads), "--out", str(Path(args.out) / "python" / f"seed{seed}")]
    if args.accuracy_only:
        cmd.append("--accuracy-only")
    if args.python_bf16:
        cmd.append("--bf16")
    load = [os.getloadavg()[0]]
    seconds, stdout = timed(cmd, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    load.append(os.getloadavg()[0])
    report = json.loads(stdout.strip().splitlines()[-1])
    report["wall_s"] = seconds
    report["load_average"] = load
    return report


def summarize(lines):
    """mean ± sample standard deviation of each side's precision@1 over the seeds in `lines`
    (this script's JSON output), as one JSON line per side."""
    import statistics
    rows = {"dmlviz": {}, "python": {}}
    for line in lines:
        r = json.loads(line)
        if r.get("side") == "dmlviz":
            m = r["metrics"]
            got = {"all": m["all"]["precision_at_1"], "seen": m["seen"]["precision_at_1"],
                   "seen_unseen": m["seen"]["precision_at_1_unseen"]}
        elif r.get("side") == "python":
            m = r["metrics"]
            got = {"all": m["all_precision_at_1"], "seen": m["seen_precision_at_1"],
                   "seen_unseen": m["seen_precision_at_1_unseen"]}
        else:
            continue
        for k, v in got.items():
            rows[r["side"]].setdefault(k, {})[r["seed"]] = v
    for side, metrics in rows.items():
        out = {"side": side}
        for k, by_seed in metrics.items():
            v = list(by_seed.values())
            out[k] = {"seeds": sorted(by_seed), "mean": round(statistics.mean(v), 4),
                      "sd": round(statistics.stdev(v), 4) if len(v) > 1 else None}
        print(json.dumps(out))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--summarize", nargs="+", metavar="LOG",
                   help="print mean ± sd of precision@1 per side from earlier outputs, and stop")
    p.add_argument("--seed", type=int, action="append", help="repeatable (default 42)")
    p.add_argument("--accuracy-only", action="store_true")
    p.add_argument("--config", default=DEMO)
    p.add_argument("--data", default="data/emoji-animals")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=".cache/bench-experiment")
    p.add_argument("--dmlviz", default="cargo run --quiet --bin dmlviz --")
    p.add_argument("--python", default=os.path.expanduser("~/.venvs/dmlviz-reference/bin/python"))
    p.add_argument("--amp", action="store_true", help="dmlviz trains with --amp (bfloat16 forward pass)")
    p.add_argument("--python-bf16", action="store_true",
                   help="the Python stack trains under torch.autocast to bfloat16 (python_reference.py --bf16)")
    p.add_argument("--side", choices=["both", "dmlviz", "python"], default="both")
    args = p.parse_args()
    if args.summarize:
        summarize(l for f in args.summarize for l in open(f) if l.startswith("{"))
        return
    for seed in args.seed or [42]:
        sides = {}
        if args.side in ("both", "dmlviz"):
            sides["dmlviz"] = ours(args, seed)
            print(json.dumps(sides["dmlviz"]), flush=True)
        if args.side in ("both", "python"):
            sides["python"] = python_stack(args, seed)
            print(json.dumps(sides["python"]), flush=True)
        if len(sides) == 2:
            a, b = sides["dmlviz"]["times"]["total_s"], sides["python"]["times"]["total_s"]
            print(json.dumps({"seed": seed, "dmlviz_total_s": a, "python_total_s": b,
                              "dmlviz_over_python": round(a / b, 3)}), flush=True)


if __name__ == "__main__":
    main()
