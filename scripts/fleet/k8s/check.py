#!/usr/bin/env python3
"""Offline check of the fleet's Kubernetes manifests (render.sh output), for want of a cluster:
each document is validated against job.schema.json (the batch/v1 Job fields the manifests use,
written from the Kubernetes API reference), then against what the fleet needs: the tuning Jobs
are Indexed, cover every target exactly once (one index per target; a Job pinned to a node pool
by nodeSelector runs that pool's target), mount the shared claim at the --shared path, and the
merge Job merges the same targets.

usage: check.py FILE.yaml...    (the tune and the merge manifests together)
Needs python3-yaml and python3-jsonschema (Debian)."""
import json
import os
import shlex
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    sys.exit("check.py: %s; install python3-yaml and python3-jsonschema "
             "(scripts/install-deps.sh)" % e)

HERE = os.path.dirname(os.path.abspath(__file__))


def opts(args):
    """The --option value pairs of a fleet script command line."""
    words = shlex.split(" ".join(args))
    out = {}
    for i, w in enumerate(words):
        if w.startswith("--") and i + 1 < len(words):
            out[w] = words[i + 1]
    return out, words


def main(files):
    if not files:
        sys.exit(__doc__)
    with open(os.path.join(HERE, "job.schema.json")) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    errors, docs = [], []
    for path in files:
        with open(path) as f:
            for n, d in enumerate(yaml.safe_load_all(f)):
                if d is not None:
                    docs.append(("%s (document %d)" % (path, n + 1), d))
    names = set()
    covered = {}
    merge_targets = None
    tune_targets = None
    for where, d in docs:
        bad = sorted(validator.iter_errors(d), key=lambda e: list(e.absolute_path))
        for e in bad:
            errors.append("%s: %s: %s" % (where, "/".join(map(str, e.absolute_path)) or "(top)",
                                          e.message))
        if bad:
            continue
        name = d["metadata"]["name"]
        if name in names:
            errors.append("%s: Job name '%s' is used twice" % (where, name))
        names.add(name)
        spec = d["spec"]
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        o, words = opts(c.get("command", []) + c.get("args", []))
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        shared = o.get("--shared")
        fleet_vol = [n for n, p in mounts.items() if p == shared]
        if not shared or not fleet_vol or "persistentVolumeClaim" not in vols.get(fleet_vol[0], {}):
            errors.append("%s: --shared %s is not the mount of a persistentVolumeClaim" %
                          (where, shared))
        targets = o.get("--targets", "").split(",")
        if any(w.endswith("fleet-merge.sh") for w in words):
            merge_targets = targets
            continue
        if not any(w.endswith("fleet-task.sh") for w in words):
            errors.append("%s: runs neither fleet-task.sh nor fleet-merge.sh" % where)
            continue
        if tune_targets is not None and targets != tune_targets:
            errors.append("%s: --targets %s differs from the other tuning Jobs' %s" %
                          (where, ",".join(targets), ",".join(tune_targets)))
        tune_targets = targets
        if spec.get("completionMode") != "Indexed":
            errors.append("%s: a tuning Job must be completionMode: Indexed" % where)
        if spec.get("completions") != spec.get("parallelism"):
            errors.append("%s: completions %s != parallelism %s" %
                          (where, spec.get("completions"), spec.get("parallelism")))
        if spec.get("backoffLimit", 6) < 1:
            errors.append("%s: backoffLimit 0 gives a failed or evicted pod no retry to resume"
                          % where)
        local = o.get("--local")
        if local and "emptyDir" not in vols.get(next((n for n, p in mounts.items() if p == local),
                                                     ""), {}):
            errors.append("%s: --local %s is not an emptyDir (node-local) mount" % (where, local))
        index = o.get("--index", "")
        if "JOB_COMPLETION_INDEX" in index:
            if o.get("--place") != "tier":
                errors.append("%s: one Job for several targets only with --place tier (one pod "
                              "template, one node pool)" % where)
            if spec.get("completions") != len(targets):
                errors.append("%s: %s completions for %d targets" %
                              (where, spec.get("completions"), len(targets)))
            idx = range(len(targets))
        else:
            try:
                i = int(index)
            except ValueError:
                errors.append("%s: --index '%s' is neither a number nor $JOB_COMPLETION_INDEX" %
                              (where, index))
                continue
            if not 0 <= i < len(targets):
                errors.append("%s: --index %d outside the %d targets" % (where, i, len(targets)))
                continue
            if spec.get("completions") != 1:
                errors.append("%s: a Job of one target has completions 1" % where)
            sel = pod.get("nodeSelector", {})
            if targets[i] not in sel.values():
                errors.append("%s: target %s (index %d) is not its nodeSelector %s" %
                              (where, targets[i], i, sel))
            idx = [i]
        for i in idx:
            covered[i] = covered.get(i, 0) + 1
    if tune_targets is None:
        errors.append("no tuning Job (fleet-task.sh) in %s" % " ".join(files))
    else:
        for i, t in enumerate(tune_targets):
            if covered.get(i, 0) != 1:
                errors.append("target %s (index %d) is tuned by %d Jobs, want 1" %
                              (t, i, covered.get(i, 0)))
        if merge_targets is None:
            errors.append("no merge Job (fleet-merge.sh) in %s" % " ".join(files))
        elif merge_targets != tune_targets:
            errors.append("the merge Job's --targets %s differ from the tuning Jobs' %s" %
                          (",".join(merge_targets), ",".join(tune_targets)))
    if errors:
        for e in errors:
            print("check.py: " + e)
        return 1
    print("check.py: ok: %d Jobs valid; %d targets (%s), each tuned by one Job index; "
          "merge of the same targets" % (len(docs), len(tune_targets),
                                         ",".join(tune_targets)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
