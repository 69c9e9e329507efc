#!/usr/bin/env python3
"""Folds new fuzzing inputs into a committed corpus within a byte budget.

  tests/fuzz/cap_corpus.py build-fuzz/tests/fuzz/fuzz_model_load tests/fuzz/corpus/fuzz_model_load NEW_DIR [BUDGET_KB]

libFuzzer's -merge=1 keeps every input that adds a feature, and the model targets' inputs are
whole model files (5-20 KB each): a plain merge of a long run is megabytes. This runs the merge
pass once for its control file (what edges each input covers), then copies in, greedily, the new
input that adds the most uncovered edges per byte, until none adds any or the corpus would pass
BUDGET_KB (default 800). Inputs already in the corpus are kept; their edges count as covered.
"""
import os, shutil, subprocess, sys, tempfile

def main():
    exe, corpus, new = sys.argv[1:4]
    budget = int(sys.argv[4]) * 1024 if len(sys.argv) > 4 else 800 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        control = os.path.join(tmp, "control")
        scratch = os.path.join(tmp, "out")
        os.mkdir(scratch)
        # The merge writes into an empty scratch directory (not the corpus): only its control file is used.
        subprocess.run([exe, "-merge=1", "-use_counters=0", "-merge_control_file=" + control,
                        "-rss_limit_mb=512", "-malloc_limit_mb=512", scratch, corpus, new],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        lines = open(control).read().split("\n")
        n, _ = int(lines[0]), int(lines[1])
        files = lines[2:2 + n]
        cov = {}
        for line in lines[2 + n:]:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "COV":
                cov[int(parts[1])] = set(parts[2:])
    in_corpus = [i for i, f in enumerate(files) if os.path.dirname(os.path.abspath(f)) == os.path.abspath(corpus)]
    covered = set().union(*(cov.get(i, set()) for i in in_corpus))
    used = sum(os.path.getsize(files[i]) for i in in_corpus)
    names = {os.path.basename(files[i]) for i in in_corpus}
    candidates = [i for i in range(n) if i not in set(in_corpus)]
    added = 0
    while True:
        best, best_gain = None, 0.0
        for i in candidates:
            size = os.path.getsize(files[i])
            gain = len(cov.get(i, set()) - covered)
            if gain and used + size <= budget and gain / max(size, 1) > best_gain:
                best, best_gain = i, gain / max(size, 1)
        if best is None:
            break
        covered |= cov[best]
        used += os.path.getsize(files[best])
        candidates.remove(best)
        name = os.path.basename(files[best])
        if name not in names:
            shutil.copy(files[best], os.path.join(corpus, name))
            names.add(name)
            added += 1
    left = sum(1 for i in candidates if cov.get(i, set()) - covered)
    print(f"{corpus}: {added} inputs added, {used // 1024} KB, {len(covered)} edges; "
          f"{left} inputs with uncovered edges left out (budget)")

main()
